"""`Sagsflow`: the one entry point that the API and the CLI call.

Each public method is one use case and one database transaction. Methods take the acting
user (`Actor`) and the language for labels, and return JSON-ready dictionaries from
`engine.runtime.views`. Errors are `engine.errors.SagsflowError` subclasses.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from engine import auth
from engine.auth import Actor
from engine.calendar import local_date
from engine.definitions.compile import CompiledProcess
from engine.definitions.loader import LoadedDefinitions
from engine.deploy import DeployedVersion, deploy_definitions
from engine.errors import BadRequest, Conflict, FieldError, Forbidden, InvalidInput, NotFound
from engine.i18n import Language, Text, parse_language
from engine.runtime.catalog import ProcessCatalog, VersionInfo
from engine.runtime.commands import CaseCommand, Decision
from engine.runtime.input import enforce_checks, parse_values
from engine.runtime.journal import next_journal_number
from engine.runtime.letters import deadline_end, sha256_text
from engine.runtime.outbox import DispatchReport, dispatch_due
from engine.runtime.services import Services
from engine.runtime.views import (
    applicant_view,
    case_summary,
    case_view,
    document_view,
    process_summary,
    process_view,
)
from engine.storage.database import Database
from engine.storage.tables import (
    Case,
    CaseStatus,
    CaseStep,
    Document,
    DocumentKind,
    DocumentStatus,
)

logger = logging.getLogger(__name__)

MAX_PAGE_SIZE = 500
_DOCUMENT_SUMMARY_COLUMNS = (
    Document.id,
    Document.case_id,
    Document.number,
    Document.kind,
    Document.title,
    Document.letter_id,
    Document.language,
    Document.status,
    Document.sha256,
    Document.created_at,
    Document.created_by,
    Document.sent_at,
)


def _stale(case_ref: str, sent: int | None = None, current: int | None = None) -> Conflict:
    versions_da = f" (du sendte version {sent}, sagen er nu på version {current})" if sent and current else ""
    versions_en = f" (you sent version {sent}; the case is now at version {current})" if sent and current else ""
    return Conflict(
        Text(
            f"Sagen {case_ref} er ændret, siden du hentede den{versions_da}; intet er gemt.",
            f"The case {case_ref} has changed since you fetched it{versions_en}; nothing was saved.",
        ),
        code="stale_version",
        field="version",
        hint=Text("Hent sagen igen og gentag handlingen.", "Fetch the case again and repeat the action."),
    )


def _duplicate(journal_number: str | None) -> Conflict:
    reference_da = f" ({journal_number})" if journal_number else ""
    return Conflict(
        Text(
            f"Der er allerede en åben sag om det samme{reference_da}; ansøgningen er ikke oprettet.",
            f"An open case about the same already exists{reference_da}; the application was not created.",
        ),
        code="duplicate_application",
        hint=Text(
            "Følg den åbne sag, eller vent til den er afsluttet.",
            "Follow the open case, or wait until it is closed.",
        ),
        case=journal_number,
    )


def _case_not_found(reference: str) -> NotFound:
    return NotFound(
        Text(f"Sagen '{reference}' findes ikke.", f"The case '{reference}' does not exist."),
        code="unknown_case",
        field="case",
        hint=Text(
            "Angiv sagens id eller journalnummer, fx 2026-000001.",
            "Give the case id or journal number, e.g. 2026-000001.",
        ),
    )


MAX_CASE_ID_DIGITS = 18  # fits a signed 64-bit integer on every database


JOURNAL_NUMBER = re.compile(r"\d{4}-\d{6,}")


def _case_filter(reference: str | int) -> Any:
    """Match a case by numeric id ("42") or by journal number ("2026-000042")."""
    text = str(reference).strip()
    if text.isascii() and text.isdigit() and len(text) <= MAX_CASE_ID_DIGITS:
        return Case.id == int(text)
    if text.isascii() and JOURNAL_NUMBER.fullmatch(text):
        return Case.journal_number == text
    raise _case_not_found(text[:64])


class Sagsflow:
    def __init__(self, database: Database, services: Services, catalog: ProcessCatalog | None = None) -> None:
        self.database = database
        self.services = services
        self.catalog = catalog or ProcessCatalog()

    # Tokens ------------------------------------------------------------------------------

    def authenticate(self, token: str | None) -> Actor:
        with self.database.read() as session:
            return auth.authenticate(session, token, self.services.clock())

    def create_token(self, user: str, roles: list[str], label: str | None = None) -> str:
        """Create a token; once processes are deployed, every role must be one they declare (or admin)."""
        with self.database.write() as session:
            known = {role for _, process in self.catalog.latest_versions(session) for role in process.definition.roles}
            unknown = sorted(set(roles) - known - {"admin"})
            if known and unknown:
                listed = ", ".join(sorted(known | {"admin"}))
                raise BadRequest(
                    Text(
                        f"Ukendt rolle: {', '.join(unknown)}. Kendte roller: {listed}.",
                        f"Unknown role: {', '.join(unknown)}. Known roles: {listed}.",
                    ),
                    code="unknown_role",
                    field="role",
                )
            return auth.create_token(session, user, roles, self.services.clock(), label=label)

    def revoke_tokens(self, user: str) -> int:
        with self.database.write() as session:
            return auth.revoke_tokens(session, user, self.services.clock())

    # Processes ---------------------------------------------------------------------------

    def deploy(self, loaded: LoadedDefinitions, deployed_by: str) -> list[DeployedVersion]:
        try:
            with self.database.write() as session:
                return deploy_definitions(session, loaded, self.services.clock(), deployed_by)
        except OperationalError as error:
            raise self._conflict_from(error) from error

    def list_processes(self, language: Language) -> list[dict[str, Any]]:
        with self.database.read() as session:
            return [
                process_summary(version, process, language)
                for version, process in self.catalog.latest_versions(session)
            ]

    def get_process(self, process_id: str, language: Language) -> dict[str, Any]:
        with self.database.read() as session:
            version, process = self.catalog.latest(session, process_id)
            return process_view(version, process, language)

    # Cases: commands ---------------------------------------------------------------------

    def submit(
        self, actor: Actor, process_id: str, data: Mapping[str, Any], language: Language | str | None = None
    ) -> dict[str, Any]:
        """Create a case from an application, file it, and run its automatic steps."""
        case_language = parse_language(language if isinstance(language, str) else None)
        with self._command_errors("new"), self.database.write() as session:
            version, process = self.catalog.latest(session, process_id)
            allowed_roles = process.definition.intake_roles
            if allowed_roles and not any(actor.has(role) for role in allowed_roles):
                raise Forbidden(
                    Text(
                        f"Du må ikke indgive ansøgninger til '{process_id}'; det kræver en af rollerne "
                        f"{', '.join(allowed_roles)}.",
                        f"You may not submit applications to '{process_id}'; that needs one of the roles "
                        f"{', '.join(allowed_roles)}.",
                    ),
                    code="missing_role",
                )
            if not isinstance(data, Mapping):
                raise InvalidInput(
                    [FieldError("data", "invalid_type", Text("Skal være et JSON-objekt.", "Must be a JSON object."))]
                )
            intake = {name: field.required for name, field in process.fields.items() if field.source == "application"}
            values = parse_values(
                process,
                data,
                intake,
                self.services,
                what=Text(f"ansøgningen til '{process_id}'", f"the application for '{process_id}'"),
            )

            now = self.services.clock()
            enforce_checks(process.application_checks, process.guard_context(values, {}, local_date(now)))
            duplicate_key = self._refuse_duplicate(session, process, values)
            year = local_date(now).year
            sequence, journal_number = next_journal_number(session, year)
            context = process.guard_context(values, {}, local_date(now))
            title = process.case_title.render(context).strip() if process.case_title else ""
            deadline = process.definition.processing_deadline
            case = Case(
                journal_number=journal_number,
                journal_year=year,
                journal_sequence=sequence,
                process_id=process.id,
                process_version_id=version.id,
                phase=process.initial_phase,
                status=CaseStatus.OPEN,
                title=(title or process.title(case_language))[:300],
                language=case_language,
                data=values,
                created_by=actor.name,
                received_at=now,
                updated_at=now,
                processing_deadline_at=deadline_end(deadline, now) if deadline else None,
                document_count=0,
                duplicate_key=duplicate_key,
                version=0,  # the command's finish() makes it 1
            )
            session.add(case)
            session.flush()

            command = CaseCommand(session, self.services, process, case, [], actor, "submit")
            application = _application_text(process, values)
            command.add_document(
                kind=DocumentKind.APPLICATION,
                title=("Application: " if case_language == "en" else "Ansøgning: ") + process.title(case_language),
                letter_id=None,
                language=case_language,
                content_type="text/plain; charset=utf-8",
                body_text=application,
                body_html=None,
                sha256=sha256_text(application),
                status=DocumentStatus.FILED,
                recipient=None,
                step=None,
                sent_at=None,
            )
            command.enter_phase(process.initial_phase, first=True)
            command.settle()
            command.finish({"data": {name: [None, value] for name, value in values.items()}})
            logger.info("Case %s created for process %s version %d", journal_number, process.id, version.version)
            return self.case_view(session, actor, case, command.steps, version, process, case_language)

    @staticmethod
    def _refuse_duplicate(session: Session, process: CompiledProcess, values: Mapping[str, Any]) -> str | None:
        """Return the case's duplicate key, or raise Conflict naming the open case that already has it."""
        rule = process.definition.duplicates
        if rule is None or rule.allow:
            return None
        canonical = json.dumps([process.id, [values.get(name) for name in rule.key]], sort_keys=True, default=str)
        key = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
        existing = session.scalar(
            select(Case.journal_number).where(Case.duplicate_key == key, Case.status == CaseStatus.OPEN)
        )
        if existing is not None:
            raise _duplicate(existing)
        return key

    def complete_step(
        self,
        actor: Actor,
        case_ref: str | int,
        step_id: str,
        data: Mapping[str, Any],
        expected_version: int | None,
        language: Language,
    ) -> dict[str, Any]:
        return self.run_command(
            actor,
            case_ref,
            expected_version,
            language,
            "complete_step",
            lambda command: command.complete_task(step_id, data),
        )

    def approve(
        self,
        actor: Actor,
        case_ref: str | int,
        step_id: str,
        decision: Decision,
        comment: str | None,
        expected_version: int | None,
        language: Language,
    ) -> dict[str, Any]:
        return self.run_command(
            actor,
            case_ref,
            expected_version,
            language,
            "approve",
            lambda command: command.approve(step_id, decision, comment),
        )

    def run_command(
        self,
        actor: Actor,
        case_ref: str | int,
        expected_version: int | None,
        language: Language,
        name: str,
        work: Callable[[CaseCommand], None],
    ) -> dict[str, Any]:
        """Run `work` as one command on a case: locked, version-checked, audited, in one transaction.

        Feature modules (notes, hearings, handover, ...) build their commands on this; `name`
        is the command recorded in the audit event.
        """
        with self._command_errors(str(case_ref)), self.database.write() as session:
            query = select(Case).where(_case_filter(case_ref))
            if self.database.is_postgresql:
                query = query.with_for_update()
            case = session.scalars(query).one_or_none()
            if case is None or not self.may_see(actor, case):
                raise _case_not_found(str(case_ref))
            if expected_version is not None and case.version != expected_version:
                raise _stale(case.journal_number, expected_version, case.version)
            version, process = self.catalog.by_version_id(session, case.process_version_id)
            steps = list(session.scalars(select(CaseStep).where(CaseStep.case_id == case.id).order_by(CaseStep.id)))
            command = CaseCommand(session, self.services, process, case, steps, actor, name)
            work(command)
            command.finish()
            return self.case_view(session, actor, case, command.steps, version, process, language)

    @contextmanager
    def _command_errors(self, case_ref: str) -> Iterator[None]:
        try:
            yield
        except StaleDataError:
            raise _stale(case_ref) from None
        except IntegrityError as error:
            # Two identical applications submitted at the same moment: the unique index lets one through.
            if "duplicate_key" in str(error.orig):
                raise _duplicate(None) from None
            raise
        except OperationalError as error:
            raise self._conflict_from(error) from error

    @staticmethod
    def _conflict_from(error: OperationalError) -> Exception:
        text = str(error.orig).lower()
        name = type(error.orig).__name__
        if "database is locked" in text or name in ("SerializationFailure", "DeadlockDetected", "LockNotAvailable"):
            return Conflict(
                Text(
                    "Sagen er optaget af en anden handling lige nu; intet er gemt.",
                    "The case is busy with another action right now; nothing was saved.",
                ),
                code="busy",
                hint=Text("Prøv igen om et øjeblik.", "Try again in a moment."),
            )
        return error

    # Cases: queries ----------------------------------------------------------------------

    @staticmethod
    def may_see(actor: Actor, case: Case) -> bool:
        """Decide whether `actor` may see `case` at all; callers answer 404 when not."""
        return actor.is_staff or case.created_by == actor.name

    @staticmethod
    def case_view(
        session: Session,
        actor: Actor,
        case: Case,
        steps: list[CaseStep],
        version: VersionInfo,
        process: CompiledProcess,
        language: Language,
    ) -> dict[str, Any]:
        # Summaries only: letter bodies stay in the database until a document is asked for.
        documents = list(
            session.execute(
                select(*_DOCUMENT_SUMMARY_COLUMNS).where(Document.case_id == case.id).order_by(Document.number)
            )
        )
        view = case_view(case, steps, documents, version, process, language)
        return view if actor.is_staff else applicant_view(view, process)

    def load_case(self, session: Session, actor: Actor, case_ref: str | int) -> Case:
        """Load a case by id or journal number for reading, or raise NotFound (also when not visible)."""
        case = session.scalars(select(Case).where(_case_filter(case_ref))).one_or_none()
        if case is None or not self.may_see(actor, case):
            raise _case_not_found(str(case_ref))
        return case

    def get_case(self, actor: Actor, case_ref: str | int, language: Language) -> dict[str, Any]:
        with self.database.read() as session:
            case = self.load_case(session, actor, case_ref)
            version, process = self.catalog.by_version_id(session, case.process_version_id)
            steps = list(session.scalars(select(CaseStep).where(CaseStep.case_id == case.id).order_by(CaseStep.id)))
            return self.case_view(session, actor, case, steps, version, process, language)

    def list_cases(
        self,
        actor: Actor,
        language: Language,
        *,
        process_id: str | None = None,
        phase: str | None = None,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> dict[str, Any]:
        limit = max(1, min(limit, MAX_PAGE_SIZE))
        offset = max(0, offset)
        query = select(Case)
        if not actor.is_staff:
            query = query.where(Case.created_by == actor.name)
        if process_id:
            query = query.where(Case.process_id == process_id)
        if phase:
            query = query.where(Case.phase == phase)
        if status:
            query = query.where(Case.status == status)
        with self.database.read() as session:
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
            cases = list(session.scalars(query.order_by(Case.id.desc()).limit(limit).offset(offset)))
            items = []
            for case in cases:
                _, process = self.catalog.by_version_id(session, case.process_version_id)
                items.append(case_summary(case, process, language))
            return {"total": total, "limit": limit, "offset": offset, "items": items}

    def get_document(self, actor: Actor, case_ref: str | int, number: int) -> dict[str, Any]:
        with self.database.read() as session:
            case = self.load_case(session, actor, case_ref)
            document = session.scalars(
                select(Document).where(Document.case_id == case.id, Document.number == number)
            ).one_or_none()
            hidden = (
                document is not None
                and not actor.is_staff
                and document.kind == DocumentKind.LETTER
                and document.status != DocumentStatus.SENT
            )
            if document is None or hidden:
                raise NotFound(
                    Text(
                        f"Sagen {case.journal_number} har intet dokument nr. {number}.",
                        f"The case {case.journal_number} has no document number {number}.",
                    ),
                    code="unknown_document",
                    field="number",
                    hint=Text(
                        f"Sagen har dokument 1 til {case.document_count}.",
                        f"The case has documents 1 to {case.document_count}.",
                    ),
                )
            return document_view(document)

    def list_letters(self, actor: Actor, case_ref: str | int) -> list[dict[str, Any]]:
        """The case's letters; an applicant sees only those already sent to them."""
        with self.database.read() as session:
            case = self.load_case(session, actor, case_ref)
            query = select(Document).where(Document.case_id == case.id, Document.kind == DocumentKind.LETTER)
            if not actor.is_staff:
                query = query.where(Document.status == DocumentStatus.SENT)
            return [document_view(document) for document in session.scalars(query.order_by(Document.number))]

    # Outbox ------------------------------------------------------------------------------

    def dispatch_outbox(self, limit: int = 1000) -> DispatchReport:
        return dispatch_due(self.database, self.services, limit)


def _application_text(process: CompiledProcess, values: Mapping[str, Any]) -> str:
    lines = [f"Ansøgning: {process.title('da')}", ""]
    for name, field in process.fields.items():
        if name in values:
            lines.append(f"{field.label.da}: {values[name]}")
    return "\n".join(lines) + "\n"
