"""The bulk run of a scheme case: one request case with its letter for every active member, per period.

`run_requests` creates, for every active member of the scheme that has no request for the
period yet, one case of the scheme's request process, its request letter with a personal
reply link, and a `scheme_requests` row. The run is

- idempotent per period: the unique constraint on (scheme case, member, period) admits one
  request per member, so a rerun creates nothing new and reports how many exist;
- resumable: members are taken in chunks by id, and each chunk is one transaction, so a
  failure leaves the committed chunks in place and a rerun completes the rest;
- safe against a second run at the same time: each chunk locks the scheme case's row
  (`FOR UPDATE` on PostgreSQL, and SQLite's write lock does the same). Two runs therefore
  take turns chunk by chunk, and each chunk only takes members still without a request;
- fast: a chunk reserves its block of journal numbers at once and writes its cases,
  checklist rows, documents, outbox messages, audit events and requests table by table
  (`insert_rows`), instead of one command per case.

The rows a chunk writes are those the engine writes when such a case is submitted and
enters its first phase (`CaseCommand.enter_phase`): the request process's first phase may
hold only letter steps and one report step (checked as SF343, and again here). Each new
case gets its own audit chain with one event, hashed as `engine/runtime/audit.py` hashes
it, so `verify_chain` accepts it.

A request case gets the duplicate key of the request process's `duplicates` rule, like a
case submitted by hand. A member whose key an open case already has (a request from
another scheme case, or one created by hand) is skipped. NOTE: only open cases hold a
duplicate key, so a closed request for the same member and year does not stop a second
scheme case from asking again.
"""

from __future__ import annotations

import logging
import operator
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from types import SimpleNamespace
from typing import Any, cast

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from sqlalchemy import JSON, Connection, DateTime, Row, Table, func, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.auth import Actor
from engine.calendar import end_of_day, local_date, next_working_day
from engine.definitions.compile import CompiledPhase, CompiledProcess
from engine.definitions.model import SchemeDef
from engine.definitions.templates import BlockCache, RenderedLetter, TemplateProblem, template_names
from engine.errors import Conflict, FieldError, InvalidInput, ProcessFault
from engine.i18n import Language, Text
from engine.runtime.audit import GENESIS_HASH, STATE_KEY, append_event, document_meta_hash, event_hash, state_hash
from engine.runtime.catalog import VersionInfo
from engine.runtime.hearings import TOKEN_BYTES, hash_token
from engine.runtime.journal import format_journal_number, reserve_journal_numbers
from engine.runtime.letters import (
    deadline_end,
    letter_context,
    recipient_of,
    report_context,
    sha256_text,
    shared_letter_context,
)
from engine.runtime.outbox import DIGITAL_POST, REDACTED_TOKEN
from engine.runtime.services import Services
from engine.settings import Authority
from engine.storage.database import Database
from engine.storage.tables import (
    Base,
    Case,
    CaseEvent,
    CaseStatus,
    CaseStep,
    Document,
    DocumentKind,
    DocumentStatus,
    OutboxMessage,
    OutboxStatus,
    SchemeMember,
    SchemeRequest,
    StepStatus,
    UtcDateTime,
)

logger = logging.getLogger(__name__)

# The path of a report link; the outbox puts the token after it when it sends the letter.
REPORT_PATH = "/report-replies/"
# The audit command of a request case's first event.
COMMAND = "scheme_request"
# A chunk's rows and letters are held in memory until it commits, so the chunk size, not the
# number of members, bounds the run's memory.
DEFAULT_CHUNK_SIZE = 200
MAX_CHUNK_SIZE = 5_000
MIN_YEAR = 2000
# A chunk that collides with a racing run is taken again this many times before the run gives up.
MAX_RACE_RETRIES = 5

# The tables a chunk writes with Core INSERTs, bypassing the ORM's unit of work.
_CASES = Base.metadata.tables[Case.__tablename__]
_STEPS = Base.metadata.tables[CaseStep.__tablename__]
_DOCUMENTS = Base.metadata.tables[Document.__tablename__]
_OUTBOX = Base.metadata.tables[OutboxMessage.__tablename__]
_EVENTS = Base.metadata.tables[CaseEvent.__tablename__]
_REQUESTS = Base.metadata.tables[SchemeRequest.__tablename__]

# Called after each committed chunk with the period's requests so far and the active members.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class RunReport:
    """The outcome of one bulk run: `created` new requests, beside `existing` ones from earlier runs."""

    scheme: str
    period: str
    reply_by: date
    members: int
    created: int
    existing: int
    chunks: int
    # The first and last journal number the run took; a run may create thousands.
    first_journal_number: str | None = None
    last_journal_number: str | None = None

    def as_dict(self) -> dict[str, Any]:
        report = asdict(self)
        report["reply_by"] = self.reply_by.isoformat()
        return report


def parse_period(raw: Any, today: date) -> tuple[str, int]:
    """Check a period, a calendar year such as "2026", and return it as text and as a year.

    A year that has not begun is rejected; the current year may be asked for, so that the
    requests can go out in December.
    """
    text = str(raw).strip() if isinstance(raw, str | int) and not isinstance(raw, bool) else ""
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
    year = int(text)
    if not MIN_YEAR <= year <= today.year:
        raise InvalidInput(
            [
                FieldError(
                    "period",
                    "out_of_range",
                    Text(
                        f"Året skal ligge fra {MIN_YEAR} til {today.year}, ikke {year}.",
                        f"The year must be from {MIN_YEAR} to {today.year}, not {year}.",
                    ),
                    Text(
                        "Anmodningerne gælder et år, der er begyndt; de sendes normalt i januar for året før.",
                        "The requests cover a year that has begun. They usually go out in January for the year before.",
                    ),
                )
            ]
        )
    return text, year


def reply_deadline(scheme: SchemeDef, year: int, override: date | None = None) -> datetime:
    """Return the end of the day the reports on `year` are due, moved to a working day.

    The scheme's `reply_by` falls in the year after the period; `override` replaces it.
    """
    day = override or date(year + 1, scheme.reply_by.month, scheme.reply_by.day)
    return end_of_day(next_working_day(day))


# Planning ------------------------------------------------------------------------------------------


@dataclass
class _Built:
    """The rows of one request case before the chunk inserts them; the chunk adds the ids of steps and documents."""

    case: dict[str, Any]
    steps: list[dict[str, Any]] = field(default_factory=list)
    documents: list[dict[str, Any]] = field(default_factory=list)
    # For each document, the index of its step in `steps`.
    document_steps: list[int] = field(default_factory=list)
    # For each document, its outbox message.
    outbox: list[dict[str, Any]] = field(default_factory=list)
    request: dict[str, Any] = field(default_factory=dict)
    event: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Moment:
    """The values that every request case of a chunk shares, because they follow from the chunk's time `now` alone."""

    now: datetime
    authority: Authority
    today: date
    processing_deadline_at: datetime | None
    # The due times of the first phase's steps, in the phase's order, and their dates by step id.
    due_at: list[datetime | None]
    deadlines: dict[str, date]
    # The part of the letter context that is the same for every case, by language, built when first needed.
    letters: dict[Language, dict[str, Any]] = field(default_factory=dict)


class RequestPlan:
    """The plan of the rows the bulk run writes for each member, worked out once per run."""

    def __init__(
        self,
        scheme: SchemeDef,
        scheme_case: Case,
        version: VersionInfo,
        process: CompiledProcess,
        *,
        period: str,
        year: int,
        due: datetime,
        actor: Actor,
        services: Services,
    ) -> None:
        self.scheme = scheme
        self.scheme_case_id = scheme_case.id
        self.scheme_journal_number = scheme_case.journal_number
        self.version = version
        self.process = process
        self.period = period
        self.year = year
        self.due = due
        self.actor = actor
        self.services = services
        self.team = process.definition.team or scheme_case.team
        self.phase = self._first_phase()
        self.report_step = next(step.id for step in self.phase.steps if step.definition.kind == "report")
        self.reply_url = f"{services.public_url}{REPORT_PATH}{REDACTED_TOKEN}"
        title = process.definition.case_title
        self.title_fields = sorted(template_names("case_title", title).names & set(process.fields) if title else set())
        self.letter_fields = {
            step.definition.letter: self._fields_read(step.definition.letter)
            for step in self.phase.steps
            if step.definition.letter is not None
        }
        # The letters share most of their paragraphs, so each is converted from Markdown once per chunk.
        self.blocks: BlockCache | None = BlockCache()
        # Set for the first letter of each chunk, which is also rendered without the cache.
        self.check_blocks = False
        self._moment: _Moment | None = None
        # The fields and duplicate key of each member that `member_values` filled for the
        # duplicate check, for `build` to take over, with the snapshot they came from.
        self._filled: dict[int, tuple[Any, dict[str, Any], str | None]] = {}
        self._check_fields()

    def _first_phase(self) -> CompiledPhase:
        phase = self.process.phases[self.process.initial_phase]
        kinds = [step.definition.kind for step in phase.steps]
        if kinds.count("report") != 1 or any(kind not in ("report", "letter") for kind in kinds):
            raise ProcessFault(
                Text(
                    f"Den første fase i '{self.process.id}' skal have præcis ét indberetningstrin og ellers kun "
                    "breve, før ordningen kan sende anmodninger; intet er oprettet.",
                    f"The first phase of '{self.process.id}' must have exactly one report step and otherwise only "
                    "letters before the scheme can send requests; nothing was created.",
                )
            )
        return phase

    def _fields_read(self, letter_id: str) -> frozenset[str]:
        """Return the case fields that a letter's templates, and the templates they use, may read.

        A field that a template names but assigns itself is also included, which changes no
        letter, because the template's own value hides the context's.
        """
        templates = self.process.definition.templates
        names: set[str] = set()
        pending = list(self.process.definition.letters[letter_id].templates.values())
        seen: set[str] = set()
        while pending:
            name = pending.pop()
            if name in seen or name not in templates:
                continue
            seen.add(name)
            info = template_names(name, templates[name])
            names |= info.names
            pending += info.referenced
        return frozenset(names & set(self.process.fields))

    def _check_fields(self) -> None:
        """Check that the deployed request process still has every field the scheme fills."""
        targets = [*self.scheme.fields, self.scheme.period_field, self.scheme.member_field, self.scheme.scheme_field]
        missing = sorted({name for name in targets if name is not None and name not in self.process.fields})
        if missing:
            listed = ", ".join(missing)
            raise ProcessFault(
                Text(
                    f"Den udrullede proces '{self.process.id}' mangler felterne {listed}, som ordningen udfylder; "
                    "intet er oprettet.",
                    f"The deployed process '{self.process.id}' lacks the fields {listed}, which the scheme fills; "
                    "nothing was created.",
                )
            )

    def moment(self, now: datetime) -> _Moment:
        """Return the values that every case created at `now` shares, computed once for each `now`.

        A chunk takes its time from the clock, so the values are computed again when the time
        or the authority's settings differ from those of the previous chunk.
        """
        authority = self.services.authority
        cached = self._moment
        if cached is not None and cached.now == now and cached.authority == authority:
            return cached
        processing = self.process.definition.processing_deadline
        due_at = [
            self.due
            if step.definition.kind == "report"
            else (deadline_end(step.definition.deadline, now) if step.definition.deadline else None)
            for step in self.phase.steps
        ]
        self._moment = _Moment(
            now=now,
            authority=authority,
            today=local_date(now),
            processing_deadline_at=deadline_end(processing, now) if processing else None,
            due_at=due_at,
            deadlines={
                step.id: local_date(due) for step, due in zip(self.phase.steps, due_at, strict=True) if due is not None
            },
        )
        return self._moment

    def shared_letter_context(self, moment: _Moment, language: Language) -> dict[str, Any]:
        """Return the letter context that every case of `moment` shares in `language`; callers copy it."""
        shared = moment.letters.get(language)
        if shared is None:
            shared = shared_letter_context(self.process, self.services, moment.now, language)
            shared["report"] = report_context(self.period, self.due, self.reply_url)
            moment.letters[language] = shared
        return shared

    def duplicate_key(self, values: Mapping[str, Any]) -> str | None:
        """Return the request case's duplicate key by the request process's rule, or None without one."""
        from engine.service import duplicate_key  # noqa: PLC0415 - the service imports this module's callers

        rule = self.process.definition.duplicates
        if rule is None or rule.allow:
            return None
        return duplicate_key(self.process.id, [values.get(name) for name in rule.key])

    def member_values(self, member: Row[Any], *, keep: bool = False) -> tuple[dict[str, Any], str | None]:
        """Return a member's request fields (`values`) and their duplicate key.

        With `keep`, the next `build` of the member takes both over instead of filling them
        again, as long as the member's snapshot is the same object.
        """
        filled = self._filled.pop(member.id, None)
        if filled is not None and filled[0] is member.data:
            return filled[1], filled[2]
        values = self.values(member.data, member.member_key)
        key = self.duplicate_key(values)
        if keep:
            self._filled[member.id] = (member.data, values, key)
        return values, key

    def forget_members(self) -> None:
        """Drop what `member_values` kept, so that the members a chunk skipped take no memory."""
        self._filled.clear()

    def values(self, member: Mapping[str, Any], member_key: str) -> dict[str, Any]:
        """Fill a request case's fields from a member's snapshot, the period and the two journal numbers."""
        values = {
            target: member[source] for target, source in self.scheme.fields.items() if member.get(source) is not None
        }
        if self.scheme.period_field is not None:
            values[self.scheme.period_field] = self.year
        if self.scheme.member_field is not None:
            values[self.scheme.member_field] = member_key
        if self.scheme.scheme_field is not None:
            values[self.scheme.scheme_field] = self.scheme_journal_number
        return values

    def build(self, member: Row[Any], journal_year: int, sequence: int, case_id: int, now: datetime) -> _Built:
        """Build the rows of one member's request case, `case_id`, with its letters rendered and its audit event."""
        process = self.process
        moment = self.moment(now)
        values, duplicate_key = self.member_values(member)
        title = ""
        if process.case_title is not None:
            # The title reads fields only (SF312), so the fields it names are enough.
            context = {name: process.field_types[name].to_context(values.get(name)) for name in self.title_fields}
            title = process.case_title.render(context).strip()
        journal_number = format_journal_number(journal_year, sequence)
        language: Language = "en" if member.language == "en" else "da"
        case_row: dict[str, Any] = {
            "journal_number": journal_number,
            "journal_year": journal_year,
            "journal_sequence": sequence,
            "process_id": process.id,
            "process_version_id": self.version.id,
            "phase": self.phase.id,
            "status": CaseStatus.OPEN.value,
            "title": (title or process.title(language))[:300],
            "language": language,
            "data": values,
            "created_by": self.actor.name,
            "received_at": now,
            "updated_at": now,
            "closed_at": None,
            "processing_deadline_at": moment.processing_deadline_at,
            "document_count": 0,
            "team": self.team,
            "assignee": None,
            "duplicate_key": duplicate_key,
            "escalated_at": None,
            "version": 1,
            "audit_events": 1,
            "audit_head": GENESIS_HASH,
        }
        # The functions that read a case (letters, recipients, the state hash) read only its
        # attributes, so they get a plain object, which is cheaper to build than an ORM instance.
        case = cast(Case, SimpleNamespace(**case_row))
        token = secrets.token_urlsafe(TOKEN_BYTES)
        built = _Built(case_row)
        recorded, filed = self._enter_first_phase(built, case, token, moment)
        case_row["document_count"] = len(built.documents)
        built.request = {
            "case_id": case_id,
            "scheme_case_id": self.scheme_case_id,
            "member_id": member.id,
            "period": self.period,
            "token_hash": hash_token(token),
            "expires_at": self.due,
            "created_at": now,
            "replied_at": None,
            "reply_document_id": None,
        }
        changes = {
            "phases": [[None, self.phase.id]],
            "data": {name: [None, value] for name, value in values.items()},
            "steps": recorded,
            "documents": filed,
            "scheme": {"case": self.scheme_journal_number, "member": member.member_key, "period": self.period},
        }
        # `append_event` round-trips the changes through JSON so that the hash covers what the
        # database stores. These values already are JSON: the snapshot comes from a JSON column.
        stored = {**changes, STATE_KEY: state_hash(case)}
        digest = event_hash(case_id, 1, now, self.actor.name, COMMAND, stored, GENESIS_HASH)
        built.event = {
            "case_id": case_id,
            "sequence": 1,
            "at": now,
            "actor": self.actor.name,
            "command": COMMAND,
            "changes": stored,
            "previous_hash": GENESIS_HASH,
            "hash": digest,
        }
        case_row.update(id=case_id, audit_head=digest)
        return built

    def _enter_first_phase(
        self, built: _Built, case: Case, token: str, moment: _Moment
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Write the first phase's checklist as `CaseCommand.enter_phase` does: skip, wait or send each step.

        Returns what the audit event records: each step's state, and the hashes of each letter filed.
        """
        steps = self.phase.steps
        now = moment.now
        due_at = moment.due_at
        # A guard reads `active` for the steps that the phase has not reached yet.
        outcomes = {step.id: StepStatus.ACTIVE.value for step in steps}
        recorded: list[dict[str, Any]] = []
        documents: list[dict[str, Any]] = []
        today = moment.today
        for position, step in enumerate(steps):
            definition = step.definition
            row: dict[str, Any] = {
                "phase": self.phase.id,
                "round": 1,
                "position": position,
                "step_id": step.id,
                "kind": definition.kind,
                "status": StepStatus.ACTIVE.value,
                "required": definition.required,
                "outcome": None,
                "data": {},
                "started_at": now,
                "due_at": due_at[position],
                "completed_at": None,
                "completed_by": None,
                "assignee": None,
                "escalated_at": None,
            }
            if step.when is not None and not step.when(self.process.guard_context(case.data, outcomes, today)):
                row.update(status=StepStatus.SKIPPED.value, outcome="skipped", completed_at=now, completed_by="system")
            elif definition.kind == "report":
                row["status"] = StepStatus.WAITING.value
            else:
                documents.append(self._letter(built, case, definition.letter or "", position, token, moment))
                row.update(status=StepStatus.DONE.value, outcome="sent", completed_at=now, completed_by="system")
            outcomes[step.id] = row["outcome"] or row["status"]
            recorded.append(
                {
                    "step": step.id,
                    "phase": self.phase.id,
                    "round": 1,
                    "status": row["status"],
                    "outcome": row["outcome"],
                }
            )
            built.steps.append(row)
        return recorded, documents

    def _check_blocks(
        self, rendered: RenderedLetter, template: str, subject: str, language: Language, context: dict[str, Any]
    ) -> RenderedLetter:
        """Compare a letter with its rendering without the cache, and return the one to file.

        On a difference the run stops using the cache, because its letters must be exactly
        what `CaseCommand.send_letter` would render.
        """
        self.check_blocks = False
        plain = self.process.renderer.render(template, subject, language, context)
        if (plain.text, plain.html) != (rendered.text, rendered.html):
            logger.error("Letter parts from the cache differ from a full rendering of %s; rendering in full", template)
            self.blocks = None
        return plain

    def _letter(
        self,
        built: _Built,
        case: Case,
        letter_id: str,
        step_index: int,
        token: str,
        moment: _Moment,
    ) -> dict[str, Any]:
        """Render one letter for the case, as `CaseCommand.send_letter` does, and add its document and message.

        Returns the letter's entry for the audit event, with the hashes that
        `record_document_hashes` records for a letter that a command files.
        """
        process = self.process
        letter = process.definition.letters[letter_id]
        language: Language = "en" if case.language == "en" and "en" in letter.templates else "da"
        subject = letter.label.get(language)
        now = moment.now
        shared = self.shared_letter_context(moment, language)
        context = letter_context(case, process, self.services, now, language, self.letter_fields[letter_id], shared)
        context["deadlines"] = dict(moment.deadlines)
        try:
            rendered = process.renderer.render(letter.templates[language], subject, language, context, self.blocks)
            if self.check_blocks:
                rendered = self._check_blocks(rendered, letter.templates[language], subject, language, context)
        except TemplateProblem as problem:
            logger.error("Letter %s of case %s failed to render: %s", letter_id, case.journal_number, problem)
            raise ProcessFault(
                Text(
                    f"Brevet '{subject}' til sag {case.journal_number} kunne ikke dannes ({problem.detail}); "
                    "denne del af udsendelsen er ikke oprettet.",
                    f"The letter '{subject}' of case {case.journal_number} could not be rendered ({problem.detail}); "
                    "this part of the run was not created.",
                )
            ) from None

        recipient = recipient_of(case, process)
        number = len(built.documents) + 1
        document = {
            "number": number,
            "kind": DocumentKind.LETTER.value,
            "title": subject,
            "letter_id": letter_id,
            "language": language,
            "content_type": "text/plain; charset=utf-8",
            "body_text": rendered.text,
            "body_html": rendered.html,
            "content": None,
            "filename": None,
            "size": None,
            "sha256": sha256_text(rendered.text),
            "status": DocumentStatus.QUEUED.value,
            "recipient": recipient,
            "created_at": now,
            "created_by": self.actor.name,
            "sent_at": None,
        }
        built.documents.append(document)
        built.document_steps.append(step_index)
        built.outbox.append(
            {
                "channel": DIGITAL_POST,
                "idempotency_key": f"letter:{case.journal_number}:{number}",
                "payload": {
                    "letter": letter_id,
                    "recipient": recipient,
                    "classification": process.definition.classification,
                    "reply_token": token,
                    "reply_path": REPORT_PATH,
                },
                "status": OutboxStatus.PENDING.value,
                "attempts": 0,
                "next_attempt_at": now,
                "last_error": None,
                "receipt": None,
                "created_at": now,
                "sent_at": None,
            }
        )
        meta = cast(
            Document,
            SimpleNamespace(
                kind=document["kind"],
                title=subject,
                letter_id=letter_id,
                created_by=self.actor.name,
                recipient=recipient,
            ),
        )
        return {
            "number": number,
            "title": subject,
            "sha256": document["sha256"],
            "meta_sha256": document_meta_hash(meta),
            "html_sha256": sha256_text(rendered.html),
        }


# Writing a chunk -----------------------------------------------------------------------------------


def pending_members(
    session: Session, scheme_case_id: int, period: str, after_id: int, limit: int
) -> tuple[list[Row[Any]], int | None]:
    """Read up to `limit` active members after id `after_id`; return those without a request, and the last id read.

    The last id is None when no member is left. The requests are looked up by the members'
    ids through the unique index on (scheme case, member, period), so a chunk costs the
    same however many requests the period has.
    """
    members = session.execute(
        select(SchemeMember.id, SchemeMember.member_key, SchemeMember.data, SchemeMember.language)
        .where(
            SchemeMember.scheme_case_id == scheme_case_id,
            SchemeMember.active.is_(True),
            SchemeMember.id > after_id,
        )
        .order_by(SchemeMember.id)
        .limit(limit)
    ).all()
    if not members:
        return [], None
    requested = set(
        session.scalars(
            select(SchemeRequest.member_id).where(
                SchemeRequest.scheme_case_id == scheme_case_id,
                SchemeRequest.member_id.in_([member.id for member in members]),
                SchemeRequest.period == period,
            )
        )
    )
    return [member for member in members if member.id not in requested], members[-1].id


def write_chunk(session: Session, plan: RequestPlan, members: Sequence[Row[Any]], now: datetime) -> list[str]:
    """Create the request cases of `members` in the session's transaction; return their journal numbers.

    The chunk takes its journal numbers and the ids of its rows in blocks first, so that each
    case's rows can refer to each other and its audit event can be hashed before anything is
    inserted. Each table's rows then go in at once (`insert_rows`).
    """
    journal_year = local_date(now).year
    first = reserve_journal_numbers(session, journal_year, len(members))
    if plan.blocks is not None:
        # A fresh cache per chunk keeps the memory of a run independent of its number of members.
        plan.blocks = BlockCache()
        plan.check_blocks = True
    case_ids = reserve_ids(session, _CASES, len(members))
    built = [
        plan.build(member, journal_year, first + index, case_id, now)
        for index, (member, case_id) in enumerate(zip(members, case_ids, strict=True))
    ]

    step_ids = iter(reserve_ids(session, _STEPS, sum(len(entry.steps) for entry in built)))
    document_ids = iter(reserve_ids(session, _DOCUMENTS, sum(len(entry.documents) for entry in built)))
    steps: list[dict[str, Any]] = []
    documents: list[dict[str, Any]] = []
    outbox: list[dict[str, Any]] = []
    for entry, case_id in zip(built, case_ids, strict=True):
        ids = [next(step_ids) for _ in entry.steps]
        steps += [dict(row, id=step_id, case_id=case_id) for row, step_id in zip(entry.steps, ids, strict=True)]
        for document, message, index in zip(entry.documents, entry.outbox, entry.document_steps, strict=True):
            document_id = next(document_ids)
            documents.append(dict(document, id=document_id, case_id=case_id, step_instance_id=ids[index]))
            outbox.append(dict(message, case_id=case_id, document_id=document_id))

    for table, rows in (
        (_CASES, [entry.case for entry in built]),
        (_STEPS, steps),
        (_DOCUMENTS, documents),
        (_OUTBOX, outbox),
        (_EVENTS, [entry.event for entry in built]),
        (_REQUESTS, [entry.request for entry in built]),
    ):
        insert_rows(session, table, rows)
    return [entry.case["journal_number"] for entry in built]


def insert_rows(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert `rows`, which all have the same keys, into `table` in the session's transaction.

    On SQLite the rows go in as one executemany of their values, converted by the columns'
    own SQLAlchemy types (`_executemany`). On PostgreSQL, psycopg would send an executemany
    as one INSERT per row, so the rows go in one COPY instead (`_copy`).
    """
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        _copy(connection, table, rows)
    else:
        _executemany(connection, table, rows)


def _executemany(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows with the driver's executemany, converting each value as SQLAlchemy's INSERT would.

    Each column's bind processor comes from its type for the connection's dialect, as in
    SQLAlchemy's own INSERT. Converting the values column by column here skips SQLAlchemy's
    per-row work, and converts a time that many rows share, such as the chunk's `now`, once.
    """
    dialect = connection.dialect
    columns = list(rows[0])
    compiled = insert(table).compile(dialect=dialect, column_keys=columns)
    order = compiled.positiontup
    if order is None or sorted(order) != sorted(columns):
        # A column default that SQLAlchemy would fill in, or a named paramstyle: leave the INSERT to it.
        connection.execute(insert(table), rows)
        return
    pick = operator.itemgetter(*order)
    values: list[Sequence[Any]] = list(zip(*[pick(row) for row in rows], strict=True))
    for index, name in enumerate(order):
        column_type = table.c[name].type.dialect_impl(dialect)
        processor = column_type.bind_processor(dialect)
        if processor is None:
            continue
        if isinstance(column_type, DateTime | UtcDateTime):
            converted = {value: processor(value) for value in set(values[index])}
            values[index] = [converted[value] for value in values[index]]
        else:
            values[index] = [processor(value) for value in values[index]]
    connection.exec_driver_sql(compiled.string, list(zip(*values, strict=True)))


def _copy(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    columns = list(rows[0])
    json_columns = {name for name in columns if isinstance(table.c[name].type, JSON)}
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(sql.Identifier(name) for name in columns)
    )
    # The driver's connection runs the session's transaction, so the rows commit or roll back with it.
    driver = cast(psycopg.Connection[Any], connection.connection.driver_connection)
    with driver.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row([_copy_value(row[name], name in json_columns) for name in columns])


def _copy_value(value: Any, is_json: bool) -> Any:
    return Jsonb(value) if is_json and value is not None else value


def reserve_ids(session: Session, table: Table, count: int) -> list[int]:
    """Take `count` ids for new rows of `table`, so that rows can refer to each other before they are inserted.

    PostgreSQL hands them out from the table's sequence. SQLite gives a new row the highest
    id plus one, and the chunk's transaction holds the database's write lock, so the ids
    after the highest are free until it commits.
    """
    if count == 0:
        return []
    if session.get_bind().dialect.name == "postgresql":
        query = text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :count)")
        return [int(value) for value in session.scalars(query, {"table": table.name, "count": count})]
    highest = int(session.scalar(select(func.max(table.c.id))) or 0)
    return list(range(highest + 1, highest + 1 + count))


# The run -------------------------------------------------------------------------------------------


@dataclass
class Run:
    """One bulk run's settings, as `engine.runtime.schemes.Schemes.run_requests` prepared them."""

    scheme_case_id: int
    plan: RequestPlan
    members: int
    existing: int
    chunk_size: int = DEFAULT_CHUNK_SIZE


def execute_run(
    database: Database,
    services: Services,
    run: Run,
    lock: Callable[[Session], Case],
    progress: Progress | None = None,
) -> RunReport:
    """Create the pending requests chunk by chunk, each chunk in its own transaction.

    `lock` locks the scheme case's row in a chunk's transaction and returns it, or raises
    when the scheme can no longer take requests.
    """
    plan = run.plan
    created = 0
    first_number: str | None = None
    last_number: str | None = None
    chunks = 0
    after_id = 0
    retries = 0
    while True:
        now = services.clock()
        try:
            with database.write() as session:
                scheme_case = lock(session)
                members, last_id = pending_members(session, run.scheme_case_id, plan.period, after_id, run.chunk_size)
                if last_id is None:
                    break
                numbers = _write_chunk(session, plan, members, now) if members else []
                if numbers:
                    append_scheme_event(session, scheme_case, plan, numbers, now)
        except (IntegrityError, psycopg.errors.IntegrityError):
            # Another run wrote a request for one of these members after this chunk read them.
            retries += 1
            if retries > MAX_RACE_RETRIES:
                raise Conflict(
                    Text(
                        "En anden udsendelse for samme periode skriver samtidig; prøv igen om lidt.",
                        "Another run for the same period is writing at the same time; try again shortly.",
                    ),
                    code="busy",
                ) from None
            logger.info("Bulk run for scheme case %s met a racing run; taking the chunk again", run.scheme_case_id)
            continue
        after_id = last_id
        if not numbers:
            continue
        created += len(numbers)
        first_number = first_number or numbers[0]
        last_number = numbers[-1]
        chunks += 1
        logger.info(
            "Scheme case %s: %d requests for %s created (%s to %s)",
            plan.scheme_journal_number,
            len(numbers),
            plan.period,
            numbers[0],
            numbers[-1],
        )
        if progress is not None:
            progress(run.existing + created, run.members)
    return RunReport(
        scheme=plan.scheme_journal_number,
        period=plan.period,
        reply_by=local_date(plan.due),
        members=run.members,
        created=created,
        existing=run.existing,
        chunks=chunks,
        first_journal_number=first_number,
        last_journal_number=last_number,
    )


def _write_chunk(session: Session, plan: RequestPlan, members: Sequence[Row[Any]], now: datetime) -> list[str]:
    # A seam of its own, so that a test can make one chunk fail half-way through a run.
    members = _without_open_duplicates(session, plan, members)
    return write_chunk(session, plan, members, now) if members else []


def _without_open_duplicates(session: Session, plan: RequestPlan, members: Sequence[Row[Any]]) -> list[Row[Any]]:
    """Leave out the members whose request an open case already is, by the request process's duplicate key."""
    plan.forget_members()
    keys = {member.id: plan.member_values(member, keep=True)[1] for member in members}
    wanted = [key for key in keys.values() if key is not None]
    if not wanted:
        return list(members)
    taken = set(
        session.scalars(
            select(Case.duplicate_key).where(Case.duplicate_key.in_(wanted), Case.status == CaseStatus.OPEN)
        )
    )
    return [member for member in members if keys[member.id] not in taken]


def append_scheme_event(
    session: Session, scheme_case: Case, plan: RequestPlan, numbers: list[str], now: datetime
) -> None:
    """Record a chunk on the scheme case's own trail, without raising its version."""
    changes = {"requests": {"period": plan.period, "created": len(numbers), "first": numbers[0], "last": numbers[-1]}}
    append_event(session, scheme_case.id, now, plan.actor.name, "scheme_requests", changes)
