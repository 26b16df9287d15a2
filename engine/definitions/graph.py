"""Checks of a process's phase graph: reachability, a way out, loops and transition order.

Phases are nodes and `next` transitions are edges. The first phase is where every case
starts; a phase with `final: true` ends it. The checks report:

- SF323: a phase no path from the first phase reaches;
- SF324: a reachable phase from which no path leads to a final phase (cases would stall),
  reported once per group of phases that no transition leaves;
- SF325 (warning): a transition listed after an unconditional one, so never taken;
- SF326 (warning): a phase whose transitions all have conditions, so a case stops with a
  conflict when none holds;
- SF327: a loop of phases without manual steps joined by unconditional transitions,
  which would move a case in circles inside one command;
- SF328 (warning): two transitions from one phase with the same condition.
"""

from __future__ import annotations

from collections.abc import Callable

from engine.definitions.model import AUTOMATIC_KINDS, ResolvedPhase, ResolvedProcess
from engine.definitions.problems import Location
from engine.definitions.resolve import phase_key, transition_key

Report = Callable[..., None]
Locate = Callable[..., Location]


def _reachable(start: str, edges: dict[str, list[str]]) -> set[str]:
    seen = {start}
    pending = [start]
    while pending:
        current = pending.pop()
        for target in edges.get(current, []):
            if target not in seen:
                seen.add(target)
                pending.append(target)
    return seen


def _root_causes(stuck: list[str], edges: dict[str, list[str]]) -> list[str]:
    """Name one phase per group of stuck phases that no transition leaves.

    Every phase upstream of such a group is stuck too, but only because of it, so only the
    group is reported. A lone phase without any transition is left to SF320.
    """
    stuck_set = set(stuck)
    inner = {phase: [t for t in edges.get(phase, []) if t in stuck_set] for phase in stuck}
    reach = {phase: _reachable(phase, inner) for phase in stuck}
    causes: list[str] = []
    covered: set[str] = set()
    for phase in stuck:
        if phase in covered:
            continue
        closed_group = all(phase in reach[other] for other in reach[phase])
        if not closed_group:
            continue
        covered |= reach[phase]
        if not edges.get(phase) and len(reach[phase]) == 1:
            continue
        causes.append(phase)
    return causes


def _is_automatic(phase: ResolvedPhase) -> bool:
    return all(step.kind in AUTOMATIC_KINDS for step in phase.steps)


def _automatic_cycle(process: ResolvedProcess, phases: dict[str, ResolvedPhase]) -> list[str] | None:
    """Find a cycle of automatic phases joined by unconditional transitions, if any."""
    edges = {
        phase.id: [t.to for t in phase.next if t.when is None and t.to in phases and _is_automatic(phases[t.to])]
        for phase in process.phases
        if _is_automatic(phase) and not phase.final
    }
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in edges.get(node, []):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in edges:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def check_graph(process: ResolvedProcess, report: Report, locate: Locate) -> None:
    """Report graph problems through `report(code, location, **params)`."""
    if not process.phases:
        return
    phases = {phase.id: phase for phase in process.phases}
    # A repeated phase id (SF301) is reported at its first occurrence.
    position: dict[str, int] = {}
    for index, phase in enumerate(process.phases):
        position.setdefault(phase.id, index)
    edges = {phase.id: [t.to for t in phase.next if t.to in phases] for phase in process.phases}
    first = process.phases[0].id
    finals = {phase.id for phase in process.phases if phase.final}

    reachable = _reachable(first, edges)
    for index, phase in enumerate(process.phases):
        if phase.id not in reachable:
            report("SF323", locate(phase_key(index), "id"), name=phase.id, first=first)

    reverse: dict[str, list[str]] = {phase_id: [] for phase_id in phases}
    for source, targets in edges.items():
        for target in targets:
            reverse[target].append(source)
    leads_to_end: set[str] = set()
    for final in finals:
        leads_to_end |= _reachable(final, reverse)
    stuck = [phase.id for phase in process.phases if phase.id in reachable and phase.id not in leads_to_end]
    for phase_id in _root_causes(stuck, edges):
        report("SF324", locate(phase_key(position[phase_id]), "id"), name=phase_id)

    for index, phase in enumerate(process.phases):
        _check_transition_order(index, phase, report, locate)

    cycle = _automatic_cycle(process, phases)
    if cycle:
        report("SF327", locate(phase_key(position[cycle[0]]), "next", use_key=True), cycle=" → ".join(cycle))


def _check_transition_order(phase_index: int, phase: ResolvedPhase, report: Report, locate: Locate) -> None:
    unconditional_seen = False
    conditions: dict[str, int] = {}
    for index, transition in enumerate(phase.next):
        key = transition_key(phase_index, index)
        if unconditional_seen:
            report("SF325", locate(key, "to"), name=phase.id, target=transition.to)
            continue
        if transition.when is None:
            unconditional_seen = True
            continue
        normalised = " ".join(transition.when.split())
        if normalised in conditions:
            report("SF328", locate(key, "when"), name=phase.id, expression=transition.when)
        conditions.setdefault(normalised, index)
    if phase.next and not phase.final and not unconditional_seen:
        report("SF326", locate(phase_key(phase_index), "next", use_key=True), name=phase.id)
