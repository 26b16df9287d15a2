"""A member's report through the link in a scheme's request letter.

The bulk run (`engine/runtime/scheme_requests.py`) gives each request case a reply link,
`/report-replies/{token}`, whose token works once and only until the reply deadline; only
its SHA-256 is stored, in `scheme_requests.token_hash`. The member needs no login: the
token is the proof.

`submit_report` checks the values against the form of the case's waiting `report` step
and the field types, fills the case's fields, files the report as a document, completes
the step with the outcome `submitted` and settles the case, whose next phase then sends
the receipt. A used link gets 409, an unknown one 404, an expired one 410, and invalid
values 422 naming each field; in every case nothing is changed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.auth import Actor
from engine.definitions.compile import CompiledProcess, CompiledStep
from engine.definitions.templates import format_moment
from engine.errors import Conflict, FieldError, InvalidInput, NotFound
from engine.i18n import Language, Text
from engine.runtime.catalog import ProcessCatalog
from engine.runtime.commands import CaseCommand, load_command, lock_case
from engine.runtime.hearings import Gone, hash_token
from engine.runtime.input import parse_values
from engine.runtime.letters import recipient_of, sha256_text
from engine.runtime.services import Services
from engine.runtime.views import field_view
from engine.storage.database import Database, lock_errors_as_conflicts
from engine.storage.tables import Case, CaseStep, DocumentKind, DocumentStatus, SchemeMember, SchemeRequest, StepStatus

logger = logging.getLogger(__name__)

# Tokens are `secrets.token_urlsafe(32)`: 43 characters. Anything far from that is no token.
MAX_TOKEN_LENGTH = 100


def _unknown_link() -> NotFound:
    return NotFound(
        Text("Indberetningslinket findes ikke.", "The report link does not exist."),
        code="unknown_report_link",
        hint=Text(
            "Brug linket fra brevet præcis, som det står. Kontakt myndigheden, hvis det ikke virker.",
            "Use the link from the letter exactly as written. Contact the authority if it does not work.",
        ),
    )


def _expired_link(deadline: datetime) -> Gone:
    return Gone(
        Text(
            f"Fristen for indberetningen udløb {format_moment(deadline, 'da')}, og linket kan ikke bruges længere.",
            f"The deadline for the report passed on {format_moment(deadline, 'en')}, and the link can no longer "
            "be used.",
        ),
        code="report_link_expired",
        hint=Text(
            "Kontakt myndigheden, hvis I stadig vil indberette.",
            "Contact the authority if you still want to report.",
        ),
    )


def _already_reported(request: SchemeRequest, journal_number: str, replied_at: datetime) -> Conflict:
    return Conflict(
        Text(
            f"Indberetningen for {request.period} er allerede modtaget ({format_moment(replied_at, 'da')}); der kan "
            "kun indberettes én gang for hvert år.",
            f"The report on {request.period} was already received ({format_moment(replied_at, 'en')}); a year can "
            "be reported on only once.",
        ),
        code="already_reported",
        hint=Text(
            f"Skriv til myndigheden med journalnummer {journal_number}, hvis indberetningen skal rettes.",
            f"Write to the authority quoting the journal number {journal_number} if the report needs correcting.",
        ),
    )


def _find_request(session: Session, token: str, *, lock: bool = False) -> SchemeRequest:
    if not token or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        raise _unknown_link()
    query = select(SchemeRequest).where(SchemeRequest.token_hash == hash_token(token))
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    request = session.scalars(query).one_or_none()
    if request is None:
        raise _unknown_link()
    return request


def _waiting_row(steps: list[CaseStep]) -> CaseStep | None:
    """Return the case's report step while it waits for the report, or None once it has ended."""
    waiting = [row for row in steps if row.kind == "report" and row.status == StepStatus.WAITING]
    return waiting[-1] if waiting else None


def _check_usable(request: SchemeRequest, case: Case, row: CaseStep | None, now: datetime) -> None:
    if request.replied_at is not None:
        raise _already_reported(request, case.journal_number, request.replied_at)
    if request.expires_at <= now or row is None:
        # A report step that ended without the report was closed at its deadline.
        raise _expired_link(min(request.expires_at, now))


def _report_step(process: CompiledProcess, row: CaseStep) -> CompiledStep:
    found = process.step(row.step_id)
    if found is None:  # pragma: no cover - a case's rows come from its own process version
        raise LookupError(f"step {row.step_id} is not in process {process.id}")
    return found[1]


_WHOLE_NUMBER = re.compile(r"[+-]?\d+")


def text_value(process: CompiledProcess, name: str, value: Any) -> Any:
    """Return a value typed as text, from a CSV cell or an HTML form, as the JSON value its field type takes.

    A whole number becomes an integer for an integer field, and true or false a boolean for
    a boolean field. Anything else stays as it is, so the field type reports what is wrong.
    """
    if not isinstance(value, str) or name not in process.fields:
        return value
    field_type = process.fields[name].type
    if field_type == "integer" and _WHOLE_NUMBER.fullmatch(value.strip()):
        return int(value)
    if field_type == "boolean" and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return value


def report_form(process: CompiledProcess, step: CompiledStep, language: Language) -> list[dict[str, Any]]:
    """Describe the report's form: each field with its label, type, schema and whether it is required."""
    return [
        {
            **field_view(process, entry.field, language, entry.required),
            "required_if": entry.required_if,
            "multiline": process.fields[entry.field].multiline,
        }
        for entry in step.definition.form
    ]


def report_request(
    database: Database, services: Services, catalog: ProcessCatalog, token: str, language: Language
) -> dict[str, Any]:
    """Describe the request a report link belongs to: the case, the period, the deadline and the form."""
    with database.read() as session:
        request = _find_request(session, token)
        case = session.get(Case, request.case_id)
        if case is None:  # pragma: no cover - the foreign key keeps it
            raise _unknown_link()
        steps = list(session.scalars(select(CaseStep).where(CaseStep.case_id == case.id).order_by(CaseStep.id)))
        row = _waiting_row(steps)
        _check_usable(request, case, row, services.clock())
        _, process = catalog.by_version_id(session, case.process_version_id)
        step = _report_step(process, row) if row is not None else None
        return {
            "journal_number": case.journal_number,
            "process": process.title(language),
            "party": recipient_of(case, process)["name"],
            "period": request.period,
            "deadline": request.expires_at.isoformat(),
            "form": report_form(process, step, language) if step is not None else [],
        }


def submit_report(
    database: Database, services: Services, catalog: ProcessCatalog, token: str, raw: Any, *, from_form: bool = False
) -> dict[str, Any]:
    """File a member's report on its request case in one command; the link works once.

    With `from_form`, the values are text from an HTML form, and numbers and booleans are
    read from it (`text_value`).
    """
    if not isinstance(raw, Mapping):
        raise InvalidInput(
            [FieldError("data", "invalid_type", Text("Skal være et JSON-objekt.", "Must be a JSON object."))]
        )
    with lock_errors_as_conflicts(), database.write() as session:
        request = _find_request(session, token)
        case = lock_case(session, request.case_id, postgresql=database.is_postgresql)
        if case is None:  # pragma: no cover - the foreign key keeps it
            raise _unknown_link()
        # Read again under the case lock: a report through the same link may just have committed.
        request = _find_request(session, token, lock=database.is_postgresql)
        member_key = session.scalar(select(SchemeMember.member_key).where(SchemeMember.id == request.member_id))
        now = services.clock()

        _, process = catalog.by_version_id(session, case.process_version_id)
        actor = Actor(name=f"scheme-member:{member_key}", roles=frozenset())
        command = load_command(session, services, process, case, actor, "report")
        row = _waiting_row(command.steps)
        _check_usable(request, case, row, now)
        if row is None:  # pragma: no cover - _check_usable raises then
            raise _expired_link(now)
        values = {name: text_value(process, name, value) for name, value in raw.items()} if from_form else raw
        number = _file_report(command, row, _report_step(process, row), request, values)
        command.finish()
        logger.info("Case %s: report on %s filed as document %d", case.journal_number, request.period, number)
        return {
            "journal_number": case.journal_number,
            "period": request.period,
            "received_at": now.isoformat(),
            "document": number,
        }


def _file_report(
    command: CaseCommand, row: CaseStep, step: CompiledStep, request: SchemeRequest, raw: Mapping[str, Any]
) -> int:
    """Check and store the values, file them as a document and complete the step; return the document's number."""
    process, case = command.process, command.case
    allowed = {entry.field: entry.required for entry in step.definition.form}
    values = parse_values(
        process,
        raw,
        allowed,
        command.services,
        conditional=step.required_if,
        context=command.guard_context,
        what=Text("indberetningen", "the report"),
    )
    for name, value in values.items():
        command.set_value(name, value)

    english = case.language == "en"
    party = recipient_of(case, process)["name"]
    title = f"Report on {request.period} from {party}" if english else f"Indberetning for {request.period} fra {party}"
    text = _report_text(process, values, title, "en" if english else "da")
    document = command.add_document(
        kind=DocumentKind.REPORT,
        title=title[:300],
        letter_id=None,
        language=case.language,
        content_type="text/plain; charset=utf-8",
        body_text=text,
        body_html=None,
        sha256=sha256_text(text),
        status=DocumentStatus.FILED,
        recipient=None,
        step=row,
        sent_at=None,
    )
    # The request refers to the document by id.
    command.session.flush()
    request.replied_at = command.now
    request.reply_document_id = document.id
    row.data = {**row.data, "documents": [document.number]}
    command.changes["report"] = {"step": row.step_id, "period": request.period, "document": document.number}
    command.finish_waiting(row, "submitted", by=command.actor.name)
    return document.number


def _report_text(process: CompiledProcess, values: Mapping[str, Any], title: str, language: Language) -> str:
    lines = [title, ""]
    for name, value in values.items():
        lines.append(f"{process.fields[name].label.get(language)}: {value}")
    return "\n".join(lines) + "\n"
