"""Compare deployed versions of a process, and move running cases from one version to another.

A running case stays on the version it started with. `migrate_cases` moves the open
cases of a process to another version in one transaction: every case's phase and every
active step must exist in the target version, directly or through the mapping given
(`OLD=NEW`, for phases and steps alike), or nothing is changed at all. Each moved case
gets one audit event and a new case version.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.definitions.model import ResolvedProcess
from engine.errors import BadRequest, Conflict, NotFound
from engine.i18n import Text
from engine.runtime.audit import append_event
from engine.runtime.letters import deadline_end
from engine.storage.tables import Case, CaseStatus, CaseStep, ProcessVersion

logger = logging.getLogger(__name__)

_ID = re.compile(r"^[a-z][a-z0-9_]*$")


# Comparing versions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One difference between two versions: `kind` is "+", "-" or "~"."""

    kind: str
    what: str
    name: str
    detail: str = ""

    def __str__(self) -> str:
        detail = f": {self.detail}" if self.detail else ""
        return f"{self.kind} {self.what} {self.name}{detail}"


def _compare(what: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    changes: list[Change] = []
    for name in old:
        if name not in new:
            changes.append(Change("-", what, name))
    for name, value in new.items():
        if name not in old:
            changes.append(Change("+", what, name))
        elif old[name] != value:
            keys = sorted(
                key for key in set(old[name]) | set(value) if key != "origin" and old[name].get(key) != value.get(key)
            )
            if keys:
                changes.append(Change("~", what, name, ", ".join(keys)))
    return changes


def diff_definitions(old: ResolvedProcess, new: ResolvedProcess) -> list[Change]:
    """List what changed from `old` to `new`: phases, steps, transitions, fields, letters and settings."""
    before = old.model_dump(mode="json")
    after = new.model_dump(mode="json")
    changes = _compare(
        "phase",
        {phase["id"]: {k: v for k, v in phase.items() if k != "steps"} for phase in before["phases"]},
        {phase["id"]: {k: v for k, v in phase.items() if k != "steps"} for phase in after["phases"]},
    )
    changes += _compare(
        "step",
        {step["id"]: {**step, "phase": phase["id"]} for phase in before["phases"] for step in phase["steps"]},
        {step["id"]: {**step, "phase": phase["id"]} for phase in after["phases"] for step in phase["steps"]},
    )
    changes += _compare("field", before["fields"], after["fields"])
    changes += _compare("letter", before["letters"], after["letters"])
    changes += _compare(
        "template",
        {name: {"source": text} for name, text in before["templates"].items()},
        {name: {"source": text} for name, text in after["templates"].items()},
    )
    settings = ("title", "legal_basis", "classification", "fee", "processing_deadline", "appeal", "case_title", "roles")
    for key in settings:
        if before.get(key) != after.get(key):
            changes.append(Change("~", "setting", key))
    return changes


def load_version(session: Session, process_id: str, version: int) -> ProcessVersion:
    row = session.scalars(
        select(ProcessVersion).where(ProcessVersion.process_id == process_id, ProcessVersion.version == version)
    ).one_or_none()
    if row is None:
        known = ", ".join(
            str(number)
            for number in session.scalars(
                select(ProcessVersion.version)
                .where(ProcessVersion.process_id == process_id)
                .order_by(ProcessVersion.version)
            )
        )
        raise NotFound(
            Text(
                f"Processen '{process_id}' har ingen version {version}.",
                f"The process '{process_id}' has no version {version}.",
            ),
            code="unknown_version",
            hint=Text(f"Udrullede versioner: {known or '(ingen)'}.", f"Deployed versions: {known or '(none)'}."),
        )
    return row


# Moving cases ---------------------------------------------------------------------------------


@dataclass
class CaseMove:
    case_id: int
    journal_number: str
    from_version: int
    phase: tuple[str, str]
    renamed_steps: dict[str, str] = field(default_factory=dict)
    added_steps: list[str] = field(default_factory=list)
    problems: list[Text] = field(default_factory=list)


@dataclass
class MigrationReport:
    process_id: str
    to_version: int
    moves: list[CaseMove]
    applied: bool

    @property
    def refused(self) -> list[CaseMove]:
        return [move for move in self.moves if move.problems]


def parse_mapping(pairs: list[str]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for pair in pairs:
        old, separator, new = (part.strip() for part in pair.partition("="))
        if not separator or not _ID.fullmatch(old) or not _ID.fullmatch(new):
            raise BadRequest(
                Text(
                    f"'{pair}' er ikke en oversættelse; skriv GAMMEL=NY med to id'er, fx hoering=consultation.",
                    f"'{pair}' is not a mapping; write OLD=NEW with two ids, e.g. hoering=consultation.",
                ),
                field="map",
            )
        if old in mapping and mapping[old] != new:
            raise BadRequest(
                Text(
                    f"'{old}' er oversat to gange: til '{mapping[old]}' og til '{new}'. Angiv kun én.",
                    f"'{old}' is mapped twice: to '{mapping[old]}' and to '{new}'. Give only one.",
                ),
                field="map",
            )
        mapping[old] = new
    return mapping


def check_mapping(mapping: Mapping[str, str], sources: list[ResolvedProcess], target: ResolvedProcess) -> None:
    """Refuse a mapping whose old id is in no source version, or whose new id is not in the target."""

    def ids(process: ResolvedProcess) -> set[str]:
        return {phase.id for phase in process.phases} | {step.id for phase in process.phases for step in phase.steps}

    known_old = set().union(*(ids(source) for source in sources)) if sources else set()
    known_new = ids(target)
    for old, new in mapping.items():
        if sources and old not in known_old:
            raise BadRequest(
                Text(
                    f"'{old}' i --map {old}={new} er hverken en fase eller et trin i sagernes nuværende versioner.",
                    f"'{old}' in --map {old}={new} is neither a phase nor a step of the cases' current versions.",
                ),
                field="map",
            )
        if new not in known_new:
            raise BadRequest(
                Text(
                    f"'{new}' i --map {old}={new} er hverken en fase eller et trin i målversionen.",
                    f"'{new}' in --map {old}={new} is neither a phase nor a step of the target version.",
                ),
                field="map",
            )


def _plan_move(
    case: Case,
    rows: list[CaseStep],
    from_version: int,
    target: ResolvedProcess,
    mapping: Mapping[str, str],
) -> CaseMove:
    phases = {phase.id: phase for phase in target.phases}
    new_phase = mapping.get(case.phase, case.phase)
    move = CaseMove(case.id, case.journal_number, from_version, (case.phase, new_phase))
    if new_phase not in phases:
        if case.phase in mapping:
            move.problems.append(
                Text(
                    f"sagen er i fasen '{case.phase}', og '{new_phase}' er ikke en fase i målversionen",
                    f"the case is in the phase '{case.phase}', and '{new_phase}' is not a phase of the target version",
                )
            )
        else:
            move.problems.append(
                Text(
                    f"fasen '{case.phase}' findes ikke i målversionen; angiv --map {case.phase}=NY_FASE",
                    f"the phase '{case.phase}' does not exist in the target version; give --map {case.phase}=NEW_PHASE",
                )
            )
        return move

    current = [row for row in rows if row.phase == case.phase]
    round_number = max((row.round for row in current), default=1)
    current = [row for row in current if row.round == round_number]
    target_steps = {step.id: step for step in phases[new_phase].steps}
    for row in current:
        if row.status != "active":
            continue
        new_step = mapping.get(row.step_id, row.step_id)
        if new_step not in target_steps and row.step_id in mapping:
            move.problems.append(
                Text(
                    f"det aktive trin '{row.step_id}' er oversat til '{new_step}', som ikke er et trin i fasen "
                    f"'{new_phase}' i målversionen",
                    f"the active step '{row.step_id}' is mapped to '{new_step}', which is not a step of the phase "
                    f"'{new_phase}' in the target version",
                )
            )
        elif new_step not in target_steps:
            move.problems.append(
                Text(
                    f"det aktive trin '{row.step_id}' findes ikke i fasen '{new_phase}' i målversionen; "
                    f"angiv --map {row.step_id}=NYT_TRIN",
                    f"the active step '{row.step_id}' does not exist in the phase '{new_phase}' of the target "
                    f"version; give --map {row.step_id}=NEW_STEP",
                )
            )
        elif new_step != row.step_id:
            move.renamed_steps[row.step_id] = new_step
    present = {move.renamed_steps.get(row.step_id, mapping.get(row.step_id, row.step_id)) for row in current}
    move.added_steps = [
        step.id for step in phases[new_phase].steps if step.id not in present and step.kind in ("task", "approval")
    ]
    return move


def migrate_cases(
    session: Session,
    process_id: str,
    to_version: int,
    mapping: Mapping[str, str],
    now: datetime,
    actor: str,
    *,
    dry_run: bool,
) -> MigrationReport:
    """Plan, and unless `dry_run`, carry out the move of every open case of a process to `to_version`.

    Raises `Conflict` and changes nothing when any case cannot be moved.
    """
    target_row = load_version(session, process_id, to_version)
    target = ResolvedProcess.model_validate(target_row.definition)
    query = select(Case).where(
        Case.process_id == process_id,
        Case.status == CaseStatus.OPEN,
        Case.process_version_id != target_row.id,
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    cases = list(session.scalars(query.order_by(Case.id)))
    version_rows = session.execute(
        select(ProcessVersion.id, ProcessVersion.version).where(ProcessVersion.process_id == process_id)
    ).all()
    versions: dict[int, int] = dict(version_rows)
    steps_by_case: dict[int, list[CaseStep]] = {case.id: [] for case in cases}
    if cases:
        for row in session.scalars(
            select(CaseStep).where(CaseStep.case_id.in_(list(steps_by_case))).order_by(CaseStep.id)
        ):
            steps_by_case[row.case_id].append(row)

    source_ids = {case.process_version_id for case in cases}
    sources = [
        ResolvedProcess.model_validate(row.definition)
        for row in session.scalars(select(ProcessVersion).where(ProcessVersion.id.in_(source_ids)))
    ]
    check_mapping(mapping, sources, target)
    moves = [
        _plan_move(case, steps_by_case[case.id], versions[case.process_version_id], target, mapping) for case in cases
    ]
    report = MigrationReport(process_id, to_version, moves, applied=False)
    if report.refused and not dry_run:
        first = report.refused[0]
        raise Conflict(
            Text(
                f"{len(report.refused)} sager kan ikke flyttes, fx {first.journal_number}: {first.problems[0].da}. "
                "Ingen sager er flyttet.",
                f"{len(report.refused)} cases cannot be moved, e.g. {first.journal_number}: {first.problems[0].en}. "
                "No case was moved.",
            ),
            code="unmapped_cases",
        )
    if dry_run:
        return report

    target_phases = {phase.id: phase for phase in target.phases}
    for case, move in zip(cases, moves, strict=True):
        _apply_move(session, case, steps_by_case[case.id], move, target_row, target_phases, now, actor)
    session.flush()
    report.applied = True
    logger.info("Moved %d cases of %s to version %d", len(moves), process_id, to_version)
    return report


def _apply_move(
    session: Session,
    case: Case,
    rows: list[CaseStep],
    move: CaseMove,
    target_row: ProcessVersion,
    target_phases: Mapping[str, Any],
    now: datetime,
    actor: str,
) -> None:
    old_phase, new_phase = move.phase
    current = [row for row in rows if row.phase == old_phase]
    old_round = max((row.round for row in current), default=1)
    # Moved into another phase, the rows start a new round there, after any earlier visit.
    round_number = old_round
    if new_phase != old_phase:
        round_number = max((row.round for row in rows if row.phase == new_phase), default=0) + 1
    for row in current:
        if row.round != old_round:
            continue
        row.phase = new_phase
        row.round = round_number
        if row.step_id in move.renamed_steps:
            row.step_id = move.renamed_steps[row.step_id]

    positions = {step.id: index for index, step in enumerate(target_phases[new_phase].steps)}
    for step_id in move.added_steps:
        step = next(step for step in target_phases[new_phase].steps if step.id == step_id)
        session.add(
            CaseStep(
                case_id=case.id,
                phase=new_phase,
                round=round_number,
                position=positions[step_id],
                step_id=step_id,
                kind=step.kind,
                status="active",
                required=step.required,
                data={},
                started_at=now,
                due_at=deadline_end(step.deadline, now) if step.deadline else None,
            )
        )

    changes = {
        "process_version": [move.from_version, target_row.version],
        "phases": [[old_phase, new_phase]] if old_phase != new_phase else [],
        "renamed_steps": move.renamed_steps,
        "added_steps": move.added_steps,
    }
    case.process_version_id = target_row.id
    case.phase = new_phase
    case.updated_at = now
    case.version += 1
    append_event(session, case.id, now, actor, "migrate_case", {key: value for key, value in changes.items() if value})
