"""The append-only, hash-chained audit log of a case.

Each event stores the SHA-256 of its own canonical content together with the hash of
the case's previous event (64 zeros for the first), so altering or deleting an event
breaks the chain from that point on. Appending must happen while the case row is
locked (every command and the outbox dispatcher lock it first), so two writers never
pick the same sequence number. `verify_chain` recomputes a case's chain and reports the
first event that does not fit.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.i18n import Language, Text
from engine.storage.tables import CaseEvent

GENESIS_HASH = "0" * 64


def event_hash(
    case_id: int, sequence: int, at: datetime, actor: str, command: str, changes: dict[str, Any], previous: str
) -> str:
    canonical = json.dumps(
        {
            "case_id": case_id,
            "sequence": sequence,
            # UTC, because that is how the database returns the time for verification.
            "at": at.astimezone(UTC).isoformat(),
            "actor": actor,
            "command": command,
            "changes": changes,
            "previous_hash": previous,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def append_event(
    session: Session, case_id: int, at: datetime, actor: str, command: str, changes: dict[str, Any]
) -> CaseEvent:
    with session.no_autoflush:
        head = session.execute(
            select(CaseEvent.sequence, CaseEvent.hash)
            .where(CaseEvent.case_id == case_id)
            .order_by(CaseEvent.sequence.desc())
            .limit(1)
        ).one_or_none()
    sequence, previous = (head[0] + 1, head[1]) if head else (1, GENESIS_HASH)
    # Round-trip through JSON so the hash covers exactly what the database stores.
    stored_changes = json.loads(json.dumps(changes, ensure_ascii=False, default=str))
    event = CaseEvent(
        case_id=case_id,
        sequence=sequence,
        at=at,
        actor=actor,
        command=command,
        changes=stored_changes,
        previous_hash=previous,
        hash=event_hash(case_id, sequence, at, actor, command, stored_changes, previous),
    )
    session.add(event)
    return event


# Verification ------------------------------------------------------------------------------

ChainProblemKind = Literal["missing", "reordered", "broken_link", "altered"]


@dataclass(frozen=True)
class ChainProblem:
    """The first event of a case's chain that does not fit, with its sequence number."""

    kind: ChainProblemKind
    sequence: int
    text: Text

    def as_dict(self, language: Language) -> dict[str, Any]:
        return {"kind": self.kind, "sequence": self.sequence, "message": self.text.get(language)}


@dataclass(frozen=True)
class ChainReport:
    """The result of verifying one case's audit chain."""

    case_id: int
    events: int
    problem: ChainProblem | None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def as_dict(self, language: Language) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "problem": self.problem.as_dict(language) if self.problem else None,
        }


def verify_chain(session: Session, case_id: int) -> ChainReport:
    """Recompute every event's hash and its link to the previous event, and report the first problem.

    Events are read in sequence order. For each event, in this order: a sequence number
    above the expected one means events are missing; a `previous_hash` that is the hash
    of another of the case's events means the events were re-ordered; any other wrong
    `previous_hash` is a broken link; a stored hash that differs from the recomputed one
    means the event was altered. A case without events is reported as missing event 1,
    because every case starts with the event of its submission.

    NOTE: the chain is anchored nowhere outside the table, so deleting the newest events,
    or rewriting events and recomputing every later hash, is not detected.
    """
    rows = session.execute(
        select(
            CaseEvent.sequence,
            CaseEvent.at,
            CaseEvent.actor,
            CaseEvent.command,
            CaseEvent.changes,
            CaseEvent.previous_hash,
            CaseEvent.hash,
        )
        .where(CaseEvent.case_id == case_id)
        .order_by(CaseEvent.sequence)
    ).all()
    if not rows:
        return ChainReport(case_id, 0, _missing(1, None))

    sequence_of_hash = {row.hash: row.sequence for row in rows}
    expected_sequence = 1
    expected_previous = GENESIS_HASH
    for row in rows:
        problem: ChainProblem | None = None
        if row.sequence > expected_sequence:
            problem = _missing(expected_sequence, row.sequence)
        elif row.previous_hash != expected_previous:
            linked = sequence_of_hash.get(row.previous_hash)
            problem = _reordered(row.sequence, linked) if linked is not None else _broken_link(row.sequence)
        elif (
            event_hash(case_id, row.sequence, row.at, row.actor, row.command, row.changes, row.previous_hash)
            != row.hash
        ):
            problem = _altered(row.sequence)
        if problem is not None:
            return ChainReport(case_id, len(rows), problem)
        expected_sequence = row.sequence + 1
        expected_previous = row.hash
    return ChainReport(case_id, len(rows), None)


def _missing(sequence: int, next_found: int | None) -> ChainProblem:
    if next_found is None:
        text = Text(
            "Sagen har ingen hændelser i revisionssporet; mindst hændelse 1 (indgivelsen) mangler.",
            "The case has no audit events; at least event 1 (the submission) is missing.",
        )
    elif next_found == sequence + 1:
        text = Text(
            f"Hændelse {sequence} mangler; sporet springer til hændelse {next_found}.",
            f"Event {sequence} is missing; the chain jumps to event {next_found}.",
        )
    else:
        text = Text(
            f"Hændelse {sequence} til {next_found - 1} mangler; sporet springer til hændelse {next_found}.",
            f"Events {sequence} to {next_found - 1} are missing; the chain jumps to event {next_found}.",
        )
    return ChainProblem("missing", sequence, text)


def _reordered(sequence: int, linked: int) -> ChainProblem:
    return ChainProblem(
        "reordered",
        sequence,
        Text(
            f"Hændelse {sequence} peger på hændelse {linked} i stedet for den forrige; hændelserne er byttet om.",
            f"Event {sequence} links to event {linked} instead of the previous one; the events were re-ordered.",
        ),
    )


def _broken_link(sequence: int) -> ChainProblem:
    return ChainProblem(
        "broken_link",
        sequence,
        Text(
            f"Hændelse {sequence} peger ikke på den forrige hændelses hash; den forrige hændelse er ændret "
            "og dens hash beregnet igen, eller henvisningen er ændret.",
            f"Event {sequence} does not link to the previous event's hash; the previous event was altered "
            "and its hash recomputed, or the link was altered.",
        ),
    )


def _altered(sequence: int) -> ChainProblem:
    return ChainProblem(
        "altered",
        sequence,
        Text(
            f"Hændelse {sequence} er ændret: dens indhold passer ikke til dens gemte hash.",
            f"Event {sequence} was altered: its content does not match its stored hash.",
        ),
    )
