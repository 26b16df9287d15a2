"""Drive a case of any process to a final phase through the engine, as staff would.

The driver has no code for any particular process. It builds the application from the process's field
schema (`engine/definitions/examples.py`), submits it with an intake role, and then, for
as long as the case is open, takes whatever its checklist asks for next:

- a task: fills every field of its form with an example value and completes it with the
  step's role;
- an approval: approves with an approver, and with a second one for six eyes;
- a hearing: opens it (a consultation hears one outside party; a party hearing the case's
  own party) and lets its reply period pass;
- a timer or a report step: lets its due time pass.

Automatic steps (letters, actions, intake) run by themselves. When no case can move, the
clock jumps ahead and a worker round runs, so timers fire and hearings close.

A process whose action joins a pool or a scheme gets an open case of that process first,
with the round's opening and closing dates around today. The cases are driven in turns,
because a pool case's ranking waits for its applications' assessment and an
application's commitment waits for the ranking.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import partial
from typing import Any

from engine.auth import Actor
from engine.definitions.compile import CompiledProcess
from engine.definitions.examples import example_application, example_form
from engine.definitions.model import ResolvedStep
from engine.errors import SagsflowError
from engine.runtime.commands import CaseCommand
from engine.runtime.hearings import open_hearing
from engine.runtime.worker import Worker
from engine.service import Sagsflow
from tests.conftest import Clock

# An outside party heard in a consultation: the museum the hearing tests use.
CONSULTED = {"name": "Statens Naturhistoriske Museum", "id_type": "CVR", "id": "29979812"}
# How far the clock jumps when every case waits: past any hearing or reply period.
JUMP = timedelta(days=70)
MAX_TURNS = 400
MAX_JUMPS = 12


class DriveFailed(AssertionError):
    """A case that did not reach a final phase. The message names the phase it stopped in and the last error."""


@dataclass
class Cast:
    """The people who act on the cases: one applicant, one caseworker, two approvers."""

    teams: tuple[str, ...]
    applicant: Actor = field(init=False)
    caseworker: Actor = field(init=False)
    approvers: tuple[Actor, Actor] = field(init=False)

    def __post_init__(self) -> None:
        self.applicant = Actor("driver-ansoeger", frozenset({"applicant"}))
        self.caseworker = Actor("driver-sagsbehandler", frozenset({"caseworker"}), self.teams)
        self.approvers = (
            Actor("driver-godkender", frozenset({"approver"}), self.teams),
            Actor("driver-godkender-2", frozenset({"approver"}), self.teams),
        )

    def for_role(self, role: str | None) -> Actor:
        if role in (None, "caseworker"):
            return self.caseworker
        if role == "applicant":
            return self.applicant
        if role == "approver":
            return self.approvers[0]
        return Actor(f"driver-{role}", frozenset({role}), self.teams)


@dataclass
class Trail:
    """What happened to one case, for the failure message."""

    process: str
    events: list[str] = field(default_factory=list)
    last_error: str | None = None


class ProcessDriver:
    def __init__(self, service: Sagsflow, compiled: dict[str, CompiledProcess], clock: Clock) -> None:
        self.service = service
        self.compiled = compiled
        self.clock = clock
        teams = sorted({process.definition.team for process in compiled.values() if process.definition.team})
        self.cast = Cast(tuple(teams))
        self.worker = Worker(service.database, service.services, service.catalog, name="driver")
        self.trails: dict[int, Trail] = {}
        self.serial = 0
        self.start = clock.now

    def today(self) -> date:
        return self.clock.now.date()

    # Opening cases ---------------------------------------------------------------------------

    def open_case(self, process_id: str, changes: dict[str, Any] | None = None) -> int:
        process = self.compiled[process_id].definition
        data = example_application(process, self.today())
        data.update(changes or {})
        self._make_unique(process_id, data)
        actor = self.cast.applicant if "applicant" in process.intake_roles else self.cast.caseworker
        try:
            view = self.service.submit(actor, process_id, data, "da")
        except SagsflowError as error:
            raise DriveFailed(f"{process_id}: the example application was refused: {describe(error)}") from error
        case_id = int(view["id"])
        self.trails[case_id] = Trail(process_id, [f"submitted as {actor.name}, phase {view['phase']['id']}"])
        return case_id

    def _make_unique(self, process_id: str, data: dict[str, Any]) -> None:
        """Vary the text fields of a duplicate key, so that a second case is not refused as a duplicate."""
        duplicates = self.compiled[process_id].definition.duplicates
        if duplicates is None:
            return
        self.serial += 1
        fields = self.compiled[process_id].definition.fields
        for key in duplicates.key:
            value = data.get(key)
            definition = fields[key]
            if isinstance(value, str) and definition.type == "text" and definition.pattern is None:
                data[key] = f"{value} {self.serial}"[: definition.max_length or None]

    def prepare(self, process_id: str) -> list[int]:
        """Open the pool and scheme cases that `process_id`'s actions join."""
        opened = []
        for step in self.steps(process_id):
            if step.kind != "action":
                continue
            if step.action == "join_pool":
                params = step.params
                window = {
                    params.get("opens_field", "applications_open"): self.today().isoformat(),
                    params.get("closes_field", "applications_close"): (self.today() + timedelta(days=60)).isoformat(),
                }
                opened.append(self.open_case(params["pool_process"], window))
            elif step.action == "join_scheme":
                opened.append(self.open_case(step.params["scheme_process"]))
        return opened

    def steps(self, process_id: str) -> list[ResolvedStep]:
        return [step for phase in self.compiled[process_id].definition.phases for step in phase.steps]

    # Driving ---------------------------------------------------------------------------------

    def run(self, process_id: str) -> dict[str, Any]:
        """Open a case of `process_id` (after the cases it needs) and drive it to a final phase.

        Each run starts at the same moment, so that the example dates of one process do not
        depend on how far the clock jumped for the processes before it.
        """
        self.clock.now = self.start
        helpers = self.prepare(process_id)
        target = self.open_case(process_id)
        return self.drive(target, helpers)

    def drive(self, target: int, others: list[int]) -> dict[str, Any]:
        cases = [target, *others]
        jumps = 0
        for _ in range(MAX_TURNS):
            if self.finished(target):
                return self.view(target)
            moved = False
            for case_id in cases:
                if not self.finished(case_id) and self.take_step(case_id):
                    moved = True
            if not moved:
                if jumps == MAX_JUMPS:
                    break
                jumps += 1
                self.clock.advance(days=JUMP.days)
                self.worker.run_round()
                self.trails[target].events.append(f"clock moved to {self.clock.now:%Y-%m-%d}")
        raise DriveFailed("\n\n".join(self.report(case_id) for case_id in cases if not self.finished(case_id)))

    def finished(self, case_id: int) -> bool:
        view = self.view(case_id)
        process = self.compiled[view["process"]["id"]]
        return bool(view["status"] == "closed" or process.phases[view["phase"]["id"]].definition.final)

    def view(self, case_id: int) -> dict[str, Any]:
        return self.service.get_case(self.cast.caseworker, case_id, "da")

    def take_step(self, case_id: int) -> bool:
        """Take the first active step that staff can take; tell whether the case changed."""
        view = self.view(case_id)
        process = self.compiled[view["process"]["id"]]
        trail = self.trails[case_id]
        for row in view["checklist"]:
            if row["status"] != "active":
                continue
            located = process.step(row["step"])
            if located is None:
                continue
            step = located[1].definition
            try:
                if step.kind == "task":
                    data = example_form(process.definition, step, self.today())
                    self.service.complete_step(self.cast.for_role(step.role), case_id, step.id, data, None, "da")
                elif step.kind == "approval":
                    self.approve(case_id, step.id, step.role)
                elif step.kind in ("hearing", "party_hearing"):
                    parties = None if step.kind == "party_hearing" else [CONSULTED]
                    self.service.run_command(
                        self.cast.for_role(step.role),
                        case_id,
                        None,
                        "da",
                        "open_hearing",
                        partial(_open, step_id=step.id, parties=parties),
                    )
                else:
                    continue
            except SagsflowError as error:
                trail.last_error = f"{step.id}: {describe(error)}"
                continue
            after = self.view(case_id)
            trail.events.append(f"{step.kind} {step.id} -> phase {after['phase']['id']}")
            return True
        return False

    def approve(self, case_id: int, step_id: str, role: str | None) -> None:
        first, second = self.cast.approvers if role in (None, "approver") else (self.cast.for_role(role),) * 2
        before = self.view(case_id)["version"]
        for approver in (first, second):
            try:
                self.service.approve(approver, case_id, step_id, "approve", None, None, "da")
                return
            except SagsflowError:
                # Six eyes: the first approver has already approved; the second one goes next.
                if approver is second or self.view(case_id)["version"] != before:
                    raise

    def report(self, case_id: int) -> str:
        view = self.view(case_id)
        trail = self.trails[case_id]
        pending = [
            f"{row['step']} ({row['kind']}, {row['status']})"
            for row in view["checklist"]
            if row["status"] in ("active", "waiting")
        ]
        lines = [
            f"{trail.process}: the case stopped in the phase '{view['phase']['id']}' at {self.clock.now:%Y-%m-%d}.",
            f"Open steps: {', '.join(pending) or 'none'}.",
            f"Last error: {trail.last_error or 'none'}.",
            "Trail: " + "; ".join(trail.events[-15:]),
        ]
        return "\n".join(lines)


def _open(command: CaseCommand, step_id: str, parties: list[dict[str, str]] | None) -> None:
    open_hearing(command, step_id, parties, {})


def describe(error: SagsflowError) -> str:
    details = [f"{item.field}: {item.text.en}" for item in getattr(error, "errors", [])]
    return "; ".join([f"{error.code}: {error.text.en}", *details])
