"""The `join_scheme` action, and the members of a scheme case (ordningssag).

A scheme case holds a population, such as every active KLAP permit, in `scheme_members`:
one row per member with a snapshot of the member's fields that the scheme's `fields`
mapping names. The bulk run (`engine/runtime/scheme_requests.py`) addresses each request
case from that snapshot, so it never reads the member cases themselves.

    join_scheme   run by a member process once its case qualifies (a permit once granted):
                  finds the open case of the scheme process, adds or refreshes the member
                  with the case's journal number as its key, and links the two cases

Existing permits issued before Sagsflow are imported from a file instead
(`engine/runtime/schemes.py`); both ways go through `upsert_member`.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.action_types import Action, ActionContext, FieldUse, Params
from engine.definitions.model import ProcessId, SchemeDef
from engine.runtime.audit import append_event
from engine.storage.tables import Case, CaseLink, CaseStatus, ProcessVersion, SchemeMember

logger = logging.getLogger(__name__)

SCHEME_LINK = "scheme"


def open_scheme_case(session: Session, process_id: str) -> Case | None:
    """Return the open case of the scheme process `process_id`; with several, the one opened first."""
    query = select(Case).where(Case.process_id == process_id, Case.status == CaseStatus.OPEN).order_by(Case.id).limit(1)
    return session.scalars(query).first()


def scheme_of(session: Session, case: Case) -> SchemeDef | None:
    """Return the `scheme:` section of the process version a case runs on, or None when it has none."""
    definition = session.scalar(select(ProcessVersion.definition).where(ProcessVersion.id == case.process_version_id))
    section = definition.get("scheme") if isinstance(definition, dict) else None
    return SchemeDef.model_validate(section) if section else None


def member_fields(scheme: SchemeDef) -> list[str]:
    """Return the member process's fields that a member's snapshot holds, in a stable order."""
    return sorted(set(scheme.fields.values()))


def snapshot(scheme: SchemeDef, data: dict[str, Any]) -> dict[str, Any]:
    """Take the snapshot of a member case's stored values; a field without a value is left out."""
    return {name: data[name] for name in member_fields(scheme) if data.get(name) is not None}


def upsert_member(
    session: Session,
    scheme_case: Case,
    key: str,
    data: dict[str, Any],
    language: str,
    now: datetime,
    member_case_id: int | None = None,
) -> tuple[SchemeMember, bool]:
    """Add a member with `key`, or refresh and reactivate the one that has it; True when it was added."""
    member = session.scalars(
        select(SchemeMember).where(SchemeMember.scheme_case_id == scheme_case.id, SchemeMember.member_key == key)
    ).one_or_none()
    if member is None:
        member = SchemeMember(
            scheme_case_id=scheme_case.id,
            member_key=key,
            member_case_id=member_case_id,
            data=data,
            language=language,
            active=True,
            joined_at=now,
            left_at=None,
        )
        session.add(member)
        return member, True
    member.data = data
    member.language = language
    member.active = True
    member.left_at = None
    if member_case_id is not None:
        member.member_case_id = member_case_id
    return member, False


# join_scheme -------------------------------------------------------------------------------------


class JoinSchemeParams(Params):
    scheme_process: ProcessId = Field(description="The scheme process whose open case the case joins.")


def _join_uses(params: JoinSchemeParams) -> list[FieldUse]:
    # The snapshot's fields are named by the scheme process, which validation checks (SF341).
    return []


def _join_scheme(context: ActionContext, params: JoinSchemeParams) -> str:
    session, case = context.session, context.case
    scheme_case = open_scheme_case(session, params.scheme_process)
    scheme = scheme_of(session, scheme_case) if scheme_case is not None else None
    if scheme_case is None or scheme is None or scheme.members != context.process.id:
        # The permit stands without the scheme; the caseworker sees the outcome, and an import can add it later.
        logger.warning(
            "Case %s joined no scheme: %s has no open scheme case with members of %s",
            case.journal_number,
            params.scheme_process,
            context.process.id,
        )
        return "no_scheme"

    data = snapshot(scheme, case.data)
    _, added = upsert_member(session, scheme_case, case.journal_number, data, case.language, context.now, case.id)
    linked = session.scalars(
        select(CaseLink.id).where(
            CaseLink.case_id == case.id, CaseLink.linked_case_id == scheme_case.id, CaseLink.kind == SCHEME_LINK
        )
    ).first()
    if linked is None:
        session.add(
            CaseLink(
                case_id=case.id,
                linked_case_id=scheme_case.id,
                kind=SCHEME_LINK,
                created_at=context.now,
                created_by=context.actor.name,
            )
        )
    context.record("scheme", {"scheme": scheme_case.journal_number, "member": case.journal_number, "added": added})
    # The scheme case's own trail records the member too, without raising its version.
    append_event(
        session,
        scheme_case.id,
        context.now,
        context.actor.name,
        "scheme_member",
        {"members": [{"key": case.journal_number, "case": case.journal_number, "added": added}]},
    )
    logger.info(
        "Case %s %s scheme %s", case.journal_number, "joined" if added else "rejoined", scheme_case.journal_number
    )
    return "joined" if added else "updated"


SCHEME_ACTIONS: tuple[Action, ...] = (
    Action(
        name="join_scheme",
        params=JoinSchemeParams,
        run=_join_scheme,
        uses=_join_uses,
        outcomes=("joined", "updated", "no_scheme"),
    ),
)
