"""Scheme cases (ordningssager): members, imports, bulk requests, the overview and its exports.

`Schemes` works on a `Sagsflow` engine, as `engine.records.CaseRecords` does. A scheme
case is a case whose process has a `scheme:` section; it is named by its id or journal
number. Staff who may see the scheme case read its members and overview. Changing the
population or sending requests also needs the role `caseworker` and an open scheme case.

    members          the population, with each member's snapshot
    import_members   permits issued before Sagsflow, from CSV or JSON, all or nothing
    run_requests     the bulk run for a period (engine/runtime/scheme_requests.py)
    overview         requests, replies and missing replies per period
    export           one period's requests as CSV or XLSX

A member's report through its link is in `engine/runtime/scheme_reports.py`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from sqlalchemy import case as when_then
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from engine.auth import Actor, Scope, require_scope
from engine.calendar import COPENHAGEN, local_date
from engine.definitions.compile import CompiledProcess
from engine.definitions.fields import FieldValueError, check_text
from engine.definitions.model import SchemeDef
from engine.errors import Conflict, FieldError, Forbidden, InvalidInput, NotFound
from engine.i18n import Language, Text
from engine.records import MAX_UPLOAD_BYTES, PayloadTooLarge, upload_limit_text
from engine.runtime.audit import append_event
from engine.runtime.commands import lock_case
from engine.runtime.input import parse_values
from engine.runtime.scheme_reports import text_value
from engine.runtime.scheme_requests import (
    DEFAULT_CHUNK_SIZE,
    MAX_CHUNK_SIZE,
    Progress,
    RequestPlan,
    Run,
    RunReport,
    execute_run,
    parse_period,
    reply_deadline,
)
from engine.scheme_actions import member_fields, upsert_member
from engine.storage.database import lock_errors_as_conflicts
from engine.storage.tables import Base, Case, CaseStatus, SchemeMember, SchemeRequest

if TYPE_CHECKING:
    from engine.service import Sagsflow

logger = logging.getLogger(__name__)

MAX_PAGE_SIZE = 1000
MAX_IMPORT_ROWS = 50_000
# An import with more problems than this reports the first ones and how many more there are.
MAX_IMPORT_ERRORS = 100
MAX_MEMBER_KEY_LENGTH = 64
KEY_COLUMN = "member_key"
LANGUAGE_COLUMN = "language"

ExportFormat = Literal["csv", "xlsx"]
MEDIA_TYPES: dict[str, str] = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
# The status of a request in the overview and the exports.
_STATUS_LABELS = {
    "replied": Text("indberettet", "reported"),
    "awaiting": Text("afventer", "awaiting"),
    "overdue": Text("mangler, fristen er udløbet", "missing, deadline passed"),
}


@dataclass(frozen=True)
class Export:
    filename: str
    media_type: str
    content: bytes


@dataclass(frozen=True)
class _Scheme:
    case: Case
    process: CompiledProcess
    definition: SchemeDef


def _staff_only() -> Forbidden:
    return Forbidden(
        Text(
            "Kun myndighedens medarbejdere kan arbejde med ordningssager.",
            "Only the authority's staff can work with scheme cases.",
        ),
        code="staff_only",
        hint=Text(
            "Det kræver rollen caseworker, approver eller admin.",
            "This requires the role caseworker, approver or admin.",
        ),
    )


def _caseworker_only() -> Forbidden:
    return Forbidden(
        Text(
            "Kun en sagsbehandler kan ændre ordningens medlemmer og sende anmodninger.",
            "Only a caseworker can change the scheme's members and send requests.",
        ),
        code="missing_role",
        hint=Text(
            "Bed en administrator om rollen caseworker i ordningssagens team.",
            "Ask an administrator for the role caseworker in the scheme case's team.",
        ),
    )


class Schemes:
    def __init__(self, service: Sagsflow) -> None:
        self.service = service
        self.database = service.database
        self.services = service.services
        self.catalog = service.catalog

    # Access --------------------------------------------------------------------------------------

    def _scheme(self, session: Session, actor: Actor, scheme_ref: str | int, *, write: bool) -> _Scheme:
        """Load the scheme case that `actor` may work on, or raise 403, 404 or 409.

        The role is checked before the case is looked up, so a user without it learns
        nothing about which cases exist.
        """
        scope = Scope.CASES_WORK if write else Scope.CASES_READ
        require_scope(actor, scope)
        if not actor.is_staff:
            raise _staff_only()
        if write and not actor.has("caseworker"):
            raise _caseworker_only()
        case = self.service.load_case(session, actor, scheme_ref, scope=scope)
        _, process = self.catalog.by_version_id(session, case.process_version_id)
        definition = process.definition.scheme
        if definition is None:
            raise NotFound(
                Text(
                    f"Sagen {case.journal_number} er ikke en ordningssag.",
                    f"The case {case.journal_number} is not a scheme case.",
                ),
                code="not_a_scheme",
                field="case",
                hint=Text(
                    "Angiv journalnummeret på ordningssagen, fx sagen for klaptilladelserne.",
                    "Give the journal number of the scheme case, such as the case of the KLAP permits.",
                ),
            )
        if write and case.status != CaseStatus.OPEN:
            raise Conflict(
                Text(
                    f"Ordningssagen {case.journal_number} er lukket; den kan ikke få medlemmer eller sende "
                    "anmodninger.",
                    f"The scheme case {case.journal_number} is closed; it cannot take members or send requests.",
                ),
                code="scheme_closed",
            )
        return _Scheme(case, process, definition)

    def _lock(self, session: Session, case_id: int) -> Case:
        """Lock the scheme case's row for a write, and check that it is still open."""
        case = lock_case(session, case_id, postgresql=self.database.is_postgresql)
        if case is None or case.status != CaseStatus.OPEN:
            raise Conflict(
                Text(
                    "Ordningssagen er lukket undervejs; resten er ikke oprettet.",
                    "The scheme case was closed meanwhile; the rest was not created.",
                ),
                code="scheme_closed",
            )
        return case

    # Members -------------------------------------------------------------------------------------

    def members(
        self,
        actor: Actor,
        scheme_ref: str | int,
        *,
        include_inactive: bool = False,
        limit: int = 100,
        offset: int = 0,
    ) -> dict[str, Any]:
        """List the scheme's members with their snapshots, the oldest first."""
        limit = max(1, min(limit, MAX_PAGE_SIZE))
        with self.database.read() as session:
            scheme = self._scheme(session, actor, scheme_ref, write=False)
            member_case = Case.__table__.alias("member_case")
            query = (
                select(SchemeMember, member_case.c.journal_number)
                .outerjoin(member_case, member_case.c.id == SchemeMember.member_case_id)
                .where(SchemeMember.scheme_case_id == scheme.case.id)
            )
            if not include_inactive:
                query = query.where(SchemeMember.active.is_(True))
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            rows = session.execute(query.order_by(SchemeMember.id).limit(limit).offset(offset)).all()
            return {
                "scheme": _scheme_summary(scheme),
                "total": total,
                "limit": limit,
                "offset": offset,
                "items": [
                    {
                        "key": member.member_key,
                        "case": journal_number,
                        "active": member.active,
                        "language": member.language,
                        "joined_at": member.joined_at.isoformat(),
                        "left_at": member.left_at.isoformat() if member.left_at else None,
                        "data": member.data,
                    }
                    for member, journal_number in rows
                ],
            }

    def import_members(self, actor: Actor, scheme_ref: str | int, content: bytes, file_format: str) -> dict[str, Any]:
        """Add or refresh members from a CSV or JSON file: every row is checked first, and one bad row stops all.

        Each row has `member_key` (the permit's reference in the earlier system), the member
        process's fields that the scheme's snapshot holds, and optionally `language` (da or
        en). A key that is already a member refreshes that member's snapshot.
        """
        rows = read_rows(content, file_format)
        with lock_errors_as_conflicts(), self.database.write() as session:
            scheme = self._scheme(session, actor, scheme_ref, write=True)
            scheme_case = self._lock(session, scheme.case.id)
            _, members_process = self.catalog.latest(session, scheme.definition.members)
            _, requests_process = self.catalog.latest(session, scheme.definition.requests)
            checked = _check_rows(rows, scheme.definition, members_process, requests_process, self.services)

            now = self.services.clock()
            existing = dict(
                session.execute(
                    select(SchemeMember.member_key, SchemeMember.id).where(
                        SchemeMember.scheme_case_id == scheme_case.id
                    )
                ).all()
            )
            # A permit granted in Sagsflow keeps the snapshot its own case gave it; a file may not replace it.
            own = set(
                session.scalars(
                    select(SchemeMember.member_key).where(
                        SchemeMember.scheme_case_id == scheme_case.id, SchemeMember.member_case_id.is_not(None)
                    )
                )
            )
            taken = [row.key for row in checked if row.key in own]
            if taken:
                raise Conflict(
                    Text(
                        f"Filen indeholder medlemmer, der er sager i Sagsflow ({', '.join(taken[:10])}); deres "
                        "oplysninger kommer fra sagen og kan ikke indlæses. Intet er indlæst.",
                        f"The file contains members that are cases in Sagsflow ({', '.join(taken[:10])}); their "
                        "details come from the case and cannot be imported. Nothing was imported.",
                    ),
                    code="member_is_case",
                    hint=Text("Fjern rækkerne fra filen.", "Remove the rows from the file."),
                )
            new = [row for row in checked if row.key not in existing]
            if new:
                session.execute(
                    insert(Base.metadata.tables[SchemeMember.__tablename__]),
                    [
                        {
                            "scheme_case_id": scheme_case.id,
                            "member_key": row.key,
                            "member_case_id": None,
                            "data": row.data,
                            "language": row.language,
                            "active": True,
                            "joined_at": now,
                            "left_at": None,
                        }
                        for row in new
                    ],
                )
            for row in checked:
                if row.key in existing:
                    upsert_member(session, scheme_case, row.key, row.data, row.language, now)
            summary = {
                "rows": len(checked),
                "added": len(new),
                "updated": len(checked) - len(new),
                "sha256": hashlib.sha256(content).hexdigest(),
            }
            append_event(session, scheme_case.id, now, actor.name, "scheme_import", {"import": summary})
            logger.info(
                "Scheme case %s: import of %d members (%d added)", scheme_case.journal_number, len(checked), len(new)
            )
            return {"scheme": scheme_case.journal_number, **summary}

    # The bulk run --------------------------------------------------------------------------------

    def run_requests(
        self,
        actor: Actor,
        scheme_ref: str | int,
        period: Any,
        *,
        reply_by: date | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        progress: Progress | None = None,
    ) -> RunReport:
        """Create a request case and its letter for every active member without a request for `period`.

        `reply_by` replaces the scheme's reply deadline, for a run that goes out late.
        `progress` is called after each chunk with the period's requests so far and the
        number of active members.
        """
        now = self.services.clock()
        period_text, year = parse_period(period, local_date(now))
        if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
            raise InvalidInput(
                [
                    FieldError(
                        "chunk_size",
                        "out_of_range",
                        Text(
                            f"Antallet pr. portion skal være fra 1 til {MAX_CHUNK_SIZE}.",
                            f"The chunk size must be from 1 to {MAX_CHUNK_SIZE}.",
                        ),
                    )
                ]
            )
        if reply_by is not None and reply_by <= local_date(now):
            raise InvalidInput(
                [
                    FieldError(
                        "reply_by",
                        "out_of_range",
                        Text(
                            "Svarfristen skal ligge efter i dag.",
                            "The reply deadline must be after today.",
                        ),
                    )
                ]
            )
        with self.database.read() as session:
            scheme = self._scheme(session, actor, scheme_ref, write=True)
            version, requests_process = self.catalog.latest(session, scheme.definition.requests)
            due = reply_deadline(scheme.definition, year, reply_by)
            if due <= now:
                raise Conflict(
                    Text(
                        f"Svarfristen for {period_text} ({local_date(due).isoformat()}) er udløbet, så "
                        "anmodningerne kan ikke sendes med den.",
                        f"The reply deadline for {period_text} ({local_date(due).isoformat()}) has passed, so the "
                        "requests cannot be sent with it.",
                    ),
                    code="reply_deadline_passed",
                    field="reply_by",
                    hint=Text(
                        "Angiv en senere svarfrist (reply_by, --reply-by).",
                        "Give a later reply deadline (reply_by, --reply-by).",
                    ),
                )
            plan = RequestPlan(
                scheme.definition,
                scheme.case,
                version,
                requests_process,
                period=period_text,
                year=year,
                due=due,
                actor=actor,
                services=self.services,
            )
            members = _count(session, scheme.case.id)
            existing = _count(session, scheme.case.id, period_text)
        run = Run(scheme.case.id, plan, members, existing, chunk_size)
        with lock_errors_as_conflicts():
            return execute_run(self.database, self.services, run, lambda s: self._lock(s, scheme.case.id), progress)

    # The overview and the exports ----------------------------------------------------------------

    def overview(
        self,
        actor: Actor,
        scheme_ref: str | int,
        language: Language,
        *,
        period: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> dict[str, Any]:
        """Count requests, replies and missing replies per period; with `period`, also list its requests."""
        limit = max(1, min(limit, MAX_PAGE_SIZE))
        now = self.services.clock()
        with self.database.read() as session:
            scheme = self._scheme(session, actor, scheme_ref, write=False)
            active = _count(session, scheme.case.id)
            inactive = _count(session, scheme.case.id, active=False)
            result: dict[str, Any] = {
                "scheme": _scheme_summary(scheme),
                "members": {"active": active, "inactive": inactive},
                "periods": _period_counts(session, scheme.case.id, active, now),
            }
            if period is not None:
                period_text = _known_period(period)
                _, process = self.catalog.latest(session, scheme.definition.requests)
                rows = list(_request_rows(session, scheme.case.id, period_text, limit=limit, offset=offset))
                result["period"] = period_text
                result["requests"] = {
                    "total": _count(session, scheme.case.id, period_text, active=None),
                    "limit": limit,
                    "offset": offset,
                    "items": [_request_view(row, process, language, now) for row in rows],
                }
            return result

    def export(self, actor: Actor, scheme_ref: str | int, period: str, file_format: str, language: Language) -> Export:
        """Export one period's requests, with each member's reported values, as CSV or XLSX."""
        if file_format not in MEDIA_TYPES:
            raise InvalidInput(
                [
                    FieldError(
                        "format",
                        "invalid_value",
                        Text("Formatet skal være csv eller xlsx.", "The format must be csv or xlsx."),
                    )
                ]
            )
        period_text = _known_period(period)
        now = self.services.clock()
        with self.database.read() as session:
            scheme = self._scheme(session, actor, scheme_ref, write=False)
            _, process = self.catalog.latest(session, scheme.definition.requests)
            form = _report_fields(process)
            header = [label.get(language) for label in _EXPORT_COLUMNS] + [
                process.fields[name].label.get(language) for name in form
            ]
            rows = (
                _export_row(row, period_text, process, form, language, now)
                for row in _request_rows(session, scheme.case.id, period_text)
            )
            content = _xlsx(header, rows, period_text) if file_format == "xlsx" else _csv(header, rows)
            filename = f"ordningssag-{scheme.case.journal_number}-{period_text}.{file_format}"
            return Export(filename, MEDIA_TYPES[file_format], content)


# Reading an import file ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _ImportRow:
    line: int
    key: str
    data: dict[str, Any]
    language: str


def _import_error(line: int, field: str, code: str, text: Text, hint: Text | None = None) -> FieldError:
    return FieldError(f"lines.{line}.{field}", code, Text(f"Linje {line}: {text.da}", f"Line {line}: {text.en}"), hint)


def read_rows(content: bytes, file_format: str) -> list[tuple[int, dict[str, Any]]]:
    """Read an import file into (line number, row) pairs; `file_format` is csv or json.

    CSV has a header row and may be separated by commas or semicolons, as Danish
    spreadsheets write it; an empty cell counts as no value. JSON is a list of objects.
    """
    if len(content) > MAX_UPLOAD_BYTES:
        raise PayloadTooLarge(upload_limit_text())
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = content.count(b"\n", 0, error.start) + 1
        raise InvalidInput(
            [_import_error(line, "file", "not_utf8", Text("Filen er ikke gyldig UTF-8.", "The file is not UTF-8."))]
        ) from None
    if file_format == "csv":
        rows = _csv_rows(text)
    elif file_format == "json":
        rows = _json_rows(text)
    else:
        raise InvalidInput(
            [
                FieldError(
                    "format",
                    "invalid_value",
                    Text("Formatet skal være csv eller json.", "The format must be csv or json."),
                )
            ]
        )
    if not rows:
        raise InvalidInput([FieldError("file", "empty", Text("Filen har ingen rækker.", "The file has no rows."))])
    if len(rows) > MAX_IMPORT_ROWS:
        raise InvalidInput(
            [
                FieldError(
                    "file",
                    "too_many_rows",
                    Text(
                        f"Filen har {len(rows)} rækker; højst {MAX_IMPORT_ROWS} kan indlæses ad gangen.",
                        f"The file has {len(rows)} rows; at most {MAX_IMPORT_ROWS} can be imported at a time.",
                    ),
                    Text("Del filen op.", "Split the file."),
                )
            ]
        )
    return rows


def _csv_rows(text: str) -> list[tuple[int, dict[str, Any]]]:
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        return []
    except csv.Error as error:
        raise InvalidInput([_import_error(1, "file", "invalid_csv", Text(str(error), str(error)))]) from None
    if len(set(header)) != len(header) or "" in header:
        raise InvalidInput(
            [
                _import_error(
                    1,
                    "header",
                    "invalid_header",
                    Text(
                        "Kolonnenavnene skal være udfyldt og forskellige.", "The column names must be set and differ."
                    ),
                )
            ]
        )
    rows: list[tuple[int, dict[str, Any]]] = []
    try:
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            line = reader.line_num
            if len(cells) != len(header):
                raise InvalidInput(
                    [
                        _import_error(
                            line,
                            "row",
                            "wrong_column_count",
                            Text(
                                f"rækken har {len(cells)} felter, men overskriften har {len(header)}",
                                f"the row has {len(cells)} cells, but the header has {len(header)}",
                            ),
                        )
                    ]
                )
            rows.append((line, {name: cell.strip() for name, cell in zip(header, cells, strict=True) if cell.strip()}))
    except csv.Error as error:
        raise InvalidInput(
            [_import_error(reader.line_num, "file", "invalid_csv", Text(str(error), str(error)))]
        ) from None
    return rows


def _json_rows(text: str) -> list[tuple[int, dict[str, Any]]]:
    """Read a JSON list of objects, keeping the line on which each object starts."""
    decoder = json.JSONDecoder()
    position = _skip_blank(text, 0)
    if position >= len(text) or text[position] != "[":
        raise InvalidInput(
            [
                _import_error(
                    1, "file", "invalid_json", Text("Filen skal være en JSON-liste.", "The file must be a JSON list.")
                )
            ]
        )
    position = _skip_blank(text, position + 1)
    rows: list[tuple[int, dict[str, Any]]] = []
    while position < len(text) and text[position] != "]":
        line = text.count("\n", 0, position) + 1
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            raise InvalidInput(
                [_import_error(error.lineno, "file", "invalid_json", Text(error.msg, error.msg))]
            ) from None
        if not isinstance(value, dict):
            raise InvalidInput(
                [_import_error(line, "row", "invalid_type", Text("skal være et JSON-objekt", "must be a JSON object"))]
            )
        rows.append((line, value))
        position = _skip_blank(text, position)
        if position < len(text) and text[position] == ",":
            position = _skip_blank(text, position + 1)
    if position >= len(text) or _skip_blank(text, position + 1) != len(text):
        line = text.count("\n", 0, min(position, len(text))) + 1
        raise InvalidInput(
            [
                _import_error(
                    line,
                    "file",
                    "invalid_json",
                    Text("listen er ikke afsluttet korrekt", "the list does not end correctly"),
                )
            ]
        )
    return rows


def _skip_blank(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def _check_rows(
    rows: Sequence[tuple[int, dict[str, Any]]],
    scheme: SchemeDef,
    members: CompiledProcess,
    requests: CompiledProcess,
    services: Any,
) -> list[_ImportRow]:
    """Check every row against the member process's field types; raise one InvalidInput listing every problem.

    A member field is required when the request field it fills is required, because each
    request case needs that value.
    """
    fields = member_fields(scheme)
    required_targets = {name for name, field in requests.fields.items() if field.required}
    required_targets.add(requests.definition.party.name or "applicant_name")
    required = {source for target, source in scheme.fields.items() if target in required_targets}
    allowed = {name: name in required for name in fields if name in members.fields}
    columns = {KEY_COLUMN, LANGUAGE_COLUMN, *allowed}

    errors: list[FieldError] = []
    checked: list[_ImportRow] = []
    first_line: dict[str, int] = {}
    for line, raw in rows:
        unknown = sorted(str(name) for name in raw if name not in columns)
        if unknown:
            listed = ", ".join(unknown)
            known = ", ".join(sorted(columns))
            errors.append(
                _import_error(
                    line,
                    unknown[0],
                    "unknown_field",
                    Text(f"ukendte kolonner: {listed}", f"unknown columns: {listed}"),
                    Text(f"Kendte kolonner: {known}.", f"Known columns: {known}."),
                )
            )
            continue
        key = _member_key(line, raw.get(KEY_COLUMN), first_line, errors)
        language = str(raw.get(LANGUAGE_COLUMN) or "da")
        if language not in ("da", "en"):
            errors.append(
                _import_error(line, LANGUAGE_COLUMN, "invalid_value", Text("skal være da eller en", "must be da or en"))
            )
        values = {name: text_value(members, name, value) for name, value in raw.items() if name in allowed}
        try:
            data = parse_values(members, values, allowed, services, what=Text(f"linje {line}", f"line {line}"))
        except InvalidInput as invalid:
            errors += [
                _import_error(line, error.field.removeprefix("data."), error.code, error.text, error.hint)
                for error in invalid.errors
            ]
            continue
        if key is not None and language in ("da", "en"):
            checked.append(_ImportRow(line, key, data, language))
        if len(errors) > MAX_IMPORT_ERRORS:
            break
    if errors:
        shown = errors[:MAX_IMPORT_ERRORS]
        if len(errors) > MAX_IMPORT_ERRORS:
            shown.append(
                FieldError(
                    "file",
                    "too_many_errors",
                    Text(
                        f"Indlæsningen stoppede efter {MAX_IMPORT_ERRORS} fejl; ret dem, og prøv igen.",
                        f"The import stopped after {MAX_IMPORT_ERRORS} errors; correct them and try again.",
                    ),
                )
            )
        raise InvalidInput(shown)
    return checked


def _member_key(line: int, raw: Any, first_line: dict[str, int], errors: list[FieldError]) -> str | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        errors.append(
            _import_error(line, KEY_COLUMN, "required", Text("member_key skal udfyldes", "member_key is required"))
        )
        return None
    if not isinstance(raw, str | int) or isinstance(raw, bool):
        errors.append(_import_error(line, KEY_COLUMN, "invalid_type", Text("skal være tekst", "must be text")))
        return None
    try:
        key = check_text(str(raw)).strip()
    except FieldValueError as error:
        errors.append(_import_error(line, KEY_COLUMN, error.code, error.text, error.hint))
        return None
    if len(key) > MAX_MEMBER_KEY_LENGTH:
        errors.append(
            _import_error(
                line,
                KEY_COLUMN,
                "too_long",
                Text(f"højst {MAX_MEMBER_KEY_LENGTH} tegn", f"at most {MAX_MEMBER_KEY_LENGTH} characters"),
            )
        )
        return None
    if key in first_line:
        errors.append(
            _import_error(
                line,
                KEY_COLUMN,
                "duplicate",
                Text(f"'{key}' står også på linje {first_line[key]}", f"'{key}' is also on line {first_line[key]}"),
            )
        )
        return None
    first_line[key] = line
    return key


# Counting and listing requests ---------------------------------------------------------------------


def _count(session: Session, scheme_case_id: int, period: str | None = None, *, active: bool | None = True) -> int:
    """Count the members, or with `period` the requests; `active` filters on the member's state."""
    if period is None:
        query = select(func.count(SchemeMember.id)).where(SchemeMember.scheme_case_id == scheme_case_id)
    else:
        query = (
            select(func.count(SchemeRequest.id))
            .join(SchemeMember, SchemeMember.id == SchemeRequest.member_id)
            .where(SchemeRequest.scheme_case_id == scheme_case_id, SchemeRequest.period == period)
        )
    if active is not None:
        query = query.where(SchemeMember.active.is_(active))
    return int(session.scalar(query) or 0)


def _period_counts(session: Session, scheme_case_id: int, active: int, now: datetime) -> list[dict[str, Any]]:
    overdue = when_then((SchemeRequest.replied_at.is_(None) & (SchemeRequest.expires_at <= now), 1), else_=0)
    of_active = when_then((SchemeMember.active.is_(True), 1), else_=0)
    query = (
        select(
            SchemeRequest.period,
            func.count(SchemeRequest.id),
            func.count(SchemeRequest.replied_at),
            func.sum(overdue),
            func.sum(of_active),
            func.min(SchemeRequest.expires_at),
        )
        .join(SchemeMember, SchemeMember.id == SchemeRequest.member_id)
        .where(SchemeRequest.scheme_case_id == scheme_case_id)
        .group_by(SchemeRequest.period)
        .order_by(SchemeRequest.period.desc())
    )
    periods = []
    for period, requests, replies, overdue_count, requested_active, deadline in session.execute(query).all():
        periods.append(
            {
                "period": period,
                "requests": int(requests),
                "replies": int(replies),
                "missing": int(requests) - int(replies),
                "overdue": int(overdue_count or 0),
                "not_requested": max(active - int(requested_active or 0), 0),
                "reply_by": local_date(deadline).isoformat() if deadline else None,
            }
        )
    return periods


def _known_period(period: str) -> str:
    text = str(period).strip()
    if not (len(text) == 4 and text.isascii() and text.isdigit()):
        raise InvalidInput(
            [
                FieldError(
                    "period",
                    "invalid_value",
                    Text("Perioden skal være et årstal, fx 2026.", "The period must be a year, e.g. 2026."),
                )
            ]
        )
    return text


def _request_rows(
    session: Session, scheme_case_id: int, period: str, *, limit: int | None = None, offset: int = 0
) -> Iterator[Any]:
    """Yield one period's requests with their member and case, by journal number, a page at a time."""
    query = (
        select(
            SchemeRequest.expires_at,
            SchemeRequest.replied_at,
            SchemeRequest.created_at,
            SchemeMember.member_key,
            Case.journal_number,
            Case.title,
            Case.data,
            Case.phase,
            Case.status,
        )
        .join(SchemeMember, SchemeMember.id == SchemeRequest.member_id)
        .join(Case, Case.id == SchemeRequest.case_id)
        .where(SchemeRequest.scheme_case_id == scheme_case_id, SchemeRequest.period == period)
        .order_by(Case.journal_number)
    )
    if limit is not None:
        yield from session.execute(query.limit(limit).offset(offset))
        return
    # Streamed, so that an export of many requests does not hold every row in memory at once.
    yield from session.execute(query.execution_options(yield_per=1000))


def _status(row: Any, now: datetime) -> str:
    if row.replied_at is not None:
        return "replied"
    return "overdue" if row.expires_at <= now else "awaiting"


def _report_fields(process: CompiledProcess) -> list[str]:
    """Return the fields of the request process's report form, which a member's report fills."""
    for phase in process.definition.phases:
        for step in phase.steps:
            if step.kind == "report":
                return [entry.field for entry in step.form]
    return []


def _party_name(process: CompiledProcess, data: dict[str, Any]) -> str:
    return str(data.get(process.definition.party.name or "applicant_name") or "")


def _request_view(row: Any, process: CompiledProcess, language: Language, now: datetime) -> dict[str, Any]:
    status = _status(row, now)
    return {
        "member": row.member_key,
        "party": _party_name(process, row.data),
        "journal_number": row.journal_number,
        "title": row.title,
        "phase": row.phase,
        "status": status,
        "status_label": _STATUS_LABELS[status].get(language),
        "reply_by": local_date(row.expires_at).isoformat(),
        "replied_at": row.replied_at.isoformat() if row.replied_at else None,
        "report": {name: row.data.get(name) for name in _report_fields(process)} if row.replied_at else None,
    }


_EXPORT_COLUMNS = (
    Text("Periode", "Period"),
    Text("Medlem", "Member"),
    Text("Navn", "Name"),
    Text("Journalnummer", "Journal number"),
    Text("Status", "Status"),
    Text("Svarfrist", "Reply by"),
    Text("Indberettet", "Reported at"),
)


def _export_row(
    row: Any, period: str, process: CompiledProcess, form: list[str], language: Language, now: datetime
) -> list[Any]:
    status = _status(row, now)
    # Spreadsheets hold no time zone, so the time is written as Copenhagen time.
    replied = row.replied_at.astimezone(COPENHAGEN).replace(tzinfo=None, microsecond=0) if row.replied_at else None
    cells: list[Any] = [
        period,
        row.member_key,
        _party_name(process, row.data),
        row.journal_number,
        _STATUS_LABELS[status].get(language),
        local_date(row.expires_at),
        replied,
    ]
    return cells + [row.data.get(name) if row.replied_at else None for name in form]


def _csv(header: list[str], rows: Iterator[list[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for cells in rows:
        writer.writerow([_csv_cell(cell) for cell in cells])
    # The byte order mark makes spreadsheet programs read the file as UTF-8.
    return buffer.getvalue().encode("utf-8-sig")


# A cell starting with one of these is a formula to a spreadsheet program. Reports come from
# outside (the holder's link), so their text must never run as a formula in the caseworker's sheet.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def inert_cell(cell: Any) -> Any:
    """Return text that a spreadsheet would read as a formula with a leading apostrophe, as plain text."""
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS):
        return "'" + cell
    return cell


def _csv_cell(cell: Any) -> Any:
    if cell is None:
        return ""
    if isinstance(cell, date):
        return cell.isoformat()
    return inert_cell(cell)


def _xlsx_cell(sheet: Any, cell: Any) -> Any:
    """Write text as a text cell: openpyxl stores a string starting with "=" as a formula otherwise."""
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS):
        text = WriteOnlyCell(sheet, value=cell)
        text.data_type = "s"
        return text
    return cell


def _xlsx(header: list[str], rows: Iterator[list[Any]], period: str) -> bytes:
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=period)
    sheet.append(header)
    for cells in rows:
        sheet.append([_xlsx_cell(sheet, cell) for cell in cells])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _scheme_summary(scheme: _Scheme) -> dict[str, Any]:
    case = scheme.case
    return {
        "id": case.id,
        "journal_number": case.journal_number,
        "title": case.title,
        "process": case.process_id,
        "status": case.status,
        "members_process": scheme.definition.members,
        "requests_process": scheme.definition.requests,
    }
