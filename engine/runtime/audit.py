"""The append-only, hash-chained audit log of a case.

Each event stores the SHA-256 of its own canonical content together with the hash of
the case's previous event (64 zeros for the first), so altering or deleting an event
breaks the chain from that point on. Appending must happen while the case row is
locked (every command and the outbox dispatcher lock it first), so two writers never
pick the same sequence number.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.storage.tables import CaseEvent

GENESIS_HASH = "0" * 64


def event_hash(
    case_id: int, sequence: int, at: datetime, actor: str, command: str, changes: dict[str, Any], previous: str
) -> str:
    canonical = json.dumps(
        {
            "case_id": case_id,
            "sequence": sequence,
            "at": at.isoformat(),
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
