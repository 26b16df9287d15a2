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
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from engine import auth, people
from engine.auth import Actor, Scope, require_scope
from engine.calendar import local_date
from engine.definitions.compile import CompiledProcess
from engine.definitions.loader import LoadedDefinitions
from engine.deploy import DeployedVersion, deploy_definitions
from engine.errors import BadRequest, Conflict, FieldError, Forbidden, InvalidInput, NotFound
from engine.i18n import Language, Text, parse_language
from engine.people import Access, UserKind
from engine.runtime.catalog import ProcessCatalog, VersionInfo
from engine.runtime.commands import CaseCommand, Decision
from engine.runtime.input import enforce_checks, parse_values
from engine.runtime.journal import next_journal_number
from engine.runtime.letters import deadline_end, recipient_of, sha256_text
from engine.runtime.outbox import DispatchReport, dispatch_due
from engine.runtime.services import Services
from engine.runtime.views import (
    applicant_view,
    case_summary,
    case_view,
    document_view,
    process_summary,
    process_view,
    shown_to_applicant,
)
from engine.storage.database import Database, busy_conflict
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
    Document.recipient,
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


class _DuplicateRace(Exception):
    """An identical application committed while this one was being created; `key` is their duplicate key."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def duplicate_key(process_id: str, values: list[Any]) -> str:
    """Hash a process's duplicate-key values; text is compared without case or extra white space."""
    normalised = [" ".join(value.split()).casefold() if isinstance(value, str) else value for value in values]
    canonical = json.dumps([process_id, normalised], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


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
    def __init__(
        self,
        database: Database,
        services: Services,
        catalog: ProcessCatalog | None = None,
        access: Access | None = None,
    ) -> None:
        """`access` defaults to the visibility rules with `SAGSFLOW_CROSS_TEAM_ROLES` from the environment."""
        self.database = database
        self.services = services
        self.catalog = catalog or ProcessCatalog()
        self.access = access or Access.from_environment()

    # Tokens ------------------------------------------------------------------------------

    def authenticate(self, token: str | None) -> Actor:
        with self.database.read() as session:
            return auth.authenticate(session, token, self.services.clock())

    def create_token(
        self,
        user: str,
        roles: list[str] | None = None,
        label: str | None = None,
        *,
        scopes: list[str] | None = None,
    ) -> str:
        """Create a token for `user`; without `scopes` it has every right of the user.

        A user that does not exist yet is created with `roles` and no team. For an existing
        user, `roles` may be left out. Given `roles` must equal the user's roles, because a
        token always acts with the user's current roles. Once processes are deployed, every
        role must be one they declare (or admin).
        """
        with self.database.write() as session:
            existing = people.find_user(session, user)
            if existing is None:
                if not roles:
                    raise BadRequest(
                        Text(
                            f"Brugeren '{user}' findes ikke. Opret den med 'sagsflow user add', "
                            "eller angiv dens roller med --role.",
                            f"The user '{user}' does not exist. Create it with 'sagsflow user add', "
                            "or give its roles with --role.",
                        ),
                        code="unknown_user",
                        field="user",
                    )
                existing = people.add_user(
                    session, user, roles, [], self.services.clock(), known_roles=self._known_roles(session)
                )
            elif not existing.active:
                raise Conflict(
                    Text(
                        f"Brugeren '{user}' er deaktiveret; der oprettes ingen nøgle.",
                        f"The user '{user}' is deactivated; no token was created.",
                    ),
                    code="inactive_user",
                    field="user",
                    hint=Text(
                        f"Aktivér brugeren med 'sagsflow user update {user} --activate'.",
                        f"Activate the user with 'sagsflow user update {user} --activate'.",
                    ),
                )
            elif roles and sorted(set(roles)) != sorted(existing.roles):
                current = ", ".join(existing.roles) or "-"
                raise BadRequest(
                    Text(
                        f"Brugeren '{user}' har rollerne {current}; en nøgle har altid brugerens roller.",
                        f"The user '{user}' has the roles {current}; a token always has the user's roles.",
                    ),
                    code="roles_differ",
                    field="role",
                    hint=Text(
                        f"Udelad --role, eller ret rollerne med 'sagsflow user update {user} --role ...'.",
                        f"Leave out --role, or change the roles with 'sagsflow user update {user} --role ...'.",
                    ),
                )
            return auth.create_token(
                session, user, existing.roles, self.services.clock(), label=label, scopes=scopes or ()
            )

    def revoke_tokens(self, user: str) -> int:
        with self.database.write() as session:
            return auth.revoke_tokens(session, user, self.services.clock())

    def _known_roles(self, session: Session) -> set[str]:
        return {role for _, process in self.catalog.latest_versions(session) for role in process.definition.roles}

    # Users -------------------------------------------------------------------------------

    def add_user(
        self,
        actor: Actor,
        name: str,
        roles: list[str],
        teams: list[str] | None = None,
        *,
        integration: bool = False,
        display_name: str | None = None,
    ) -> dict[str, Any]:
        """Create an active user; only an administrator may."""
        self._require_admin(actor)
        with self.database.write() as session:
            kind = UserKind.INTEGRATION if integration else UserKind.PERSON
            user = people.add_user(
                session,
                name,
                roles,
                teams or [],
                self.services.clock(),
                known_roles=self._known_roles(session),
                kind=kind,
                display_name=display_name,
            )
            logger.info("User %s added by %s", user.name, actor.name)
            return people.user_view(user)

    def update_user(
        self,
        actor: Actor,
        name: str,
        *,
        roles: list[str] | None = None,
        teams: list[str] | None = None,
        display_name: str | None = None,
        active: bool | None = None,
    ) -> dict[str, Any]:
        """Change a user's roles, teams, display name or state; the user's tokens follow at once."""
        self._require_admin(actor)
        with self.database.write() as session:
            user = people.get_user(session, name)
            was_administrator = user.active and "admin" in user.roles
            user = people.update_user(
                user,
                known_roles=self._known_roles(session),
                roles=roles,
                teams=teams,
                display_name=display_name,
                active=active,
            )
            if was_administrator:
                people.keep_an_administrator(session, user, actor)
            logger.info("User %s updated by %s", user.name, actor.name)
            return people.user_view(user)

    def deactivate_user(self, actor: Actor, name: str) -> dict[str, Any]:
        """Deactivate a user, so that their tokens are rejected until the user is activated again."""
        return self.update_user(actor, name, active=False)

    def list_users(self, actor: Actor, *, include_inactive: bool = True) -> list[dict[str, Any]]:
        self._require_admin(actor)
        with self.database.read() as session:
            return [people.user_view(user) for user in people.list_users(session, include_inactive=include_inactive)]

    @staticmethod
    def _require_admin(actor: Actor) -> None:
        require_scope(actor, Scope.ADMIN)
        people.require_admin(actor)

    # Processes ---------------------------------------------------------------------------

    def deploy(self, loaded: LoadedDefinitions, deployed_by: str) -> list[DeployedVersion]:
        try:
            with self.database.write() as session:
                return deploy_definitions(session, loaded, self.services.clock(), deployed_by)
        except OperationalError as error:
            raise busy_conflict(error) from error

    def warm_up(self, compiled: Iterable[CompiledProcess] = ()) -> int:
        """Compile the newest version of every deployed process before the first request.

        `compiled` are processes already compiled from the definition files, from the cache
        of `engine/definitions/cache.py`. A deployed version with the same content hash
        takes them as they are. Returns the number of processes ready.
        """
        self.catalog.preload(compiled)
        with self.database.read() as session:
            return len(self.catalog.latest_versions(session))

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
        require_scope(actor, Scope.CASES_SUBMIT)
        case_language = parse_language(language if isinstance(language, str) else None)
        try:
            return self._submit(actor, process_id, data, case_language)
        except _DuplicateRace as race:
            # The unique index let the other application through: name the case it created,
            # now that it is committed.
            with self.database.read() as session:
                reference = self._open_duplicate(session, actor, race.key)
            raise _duplicate(reference or None) from None

    def _submit(
        self, actor: Actor, process_id: str, data: Mapping[str, Any], case_language: Language
    ) -> dict[str, Any]:
        key: str | None = None
        with self._command_errors("new", lambda: key), self.database.write() as session:
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
            key = self._refuse_duplicate(session, actor, process, values)
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
                duplicate_key=key,
                team=people.team_for_new_case(process.definition.team, actor),
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

    def _refuse_duplicate(
        self, session: Session, actor: Actor, process: CompiledProcess, values: Mapping[str, Any]
    ) -> str | None:
        """Return the case's duplicate key, or raise Conflict about the open case that already has it.

        The conflict names the open case only to a user who may see it.
        """
        rule = process.definition.duplicates
        if rule is None or rule.allow:
            return None
        key = duplicate_key(process.id, [values.get(name) for name in rule.key])
        reference = self._open_duplicate(session, actor, key)
        if reference is not None:
            raise _duplicate(reference or None)
        return key

    def _open_duplicate(self, session: Session, actor: Actor, key: str) -> str | None:
        """Return the journal number of the open case with `key`, "" if `actor` may not see it, or None."""
        existing = session.scalars(
            select(Case).where(Case.duplicate_key == key, Case.status == CaseStatus.OPEN)
        ).one_or_none()
        if existing is None:
            return None
        return existing.journal_number if self.may_see(actor, existing) else ""

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
        *,
        scope: Scope = Scope.CASES_WORK,
    ) -> dict[str, Any]:
        """Run `work` as one command on a case: locked, version-checked, audited, in one transaction.

        Feature modules (notes, hearings, handover, ...) build their commands on this. `name`
        is the command recorded in the audit event. `scope` is the scope that a token with
        scopes needs. A case the actor may not see is reported as not found.
        """
        require_scope(actor, scope)
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

    def assign_case(
        self,
        actor: Actor,
        case_ref: str | int,
        assignee: str | None,
        expected_version: int | None,
        language: Language,
    ) -> dict[str, Any]:
        """Hand the case over to `assignee`, an active staff user who may see it; None removes the assignee."""
        return self.run_command(
            actor,
            case_ref,
            expected_version,
            language,
            "assign_case",
            lambda command: people.assign_case(command, self.access, assignee),
        )

    def assign_step(
        self,
        actor: Actor,
        case_ref: str | int,
        step_id: str,
        assignee: str | None,
        expected_version: int | None,
        language: Language,
    ) -> dict[str, Any]:
        """Hand an active step over to `assignee`, who must also hold the step's role; None removes the assignee."""
        return self.run_command(
            actor,
            case_ref,
            expected_version,
            language,
            "assign_step",
            lambda command: people.assign_step(command, self.access, step_id, assignee),
        )

    @contextmanager
    def _command_errors(self, case_ref: str, duplicate: Callable[[], str | None] = lambda: None) -> Iterator[None]:
        """Translate database errors of a command; `duplicate` returns the duplicate key of a submission."""
        try:
            yield
        except StaleDataError:
            raise _stale(case_ref) from None
        except IntegrityError as error:
            # Two identical applications submitted at the same moment: the unique index lets one through.
            if "duplicate_key" in str(error.orig):
                key = duplicate()
                raise (_duplicate(None) if key is None else _DuplicateRace(key)) from None
            raise
        except OperationalError as error:
            raise busy_conflict(error) from error

    # Cases: queries ----------------------------------------------------------------------

    def may_see(self, actor: Actor, case: Case) -> bool:
        """Decide whether `actor` may see `case` at all; callers return 404 when not (`engine.people.Access`)."""
        return self.access.may_see(actor, case)

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
        if actor.is_staff:
            return case_view(case, steps, documents, version, process, language)
        party = recipient_of(case, process)
        shown = [document for document in documents if shown_to_applicant(document, party, actor.name)]
        return applicant_view(case_view(case, steps, shown, version, process, language), process)

    def load_case(
        self, session: Session, actor: Actor, case_ref: str | int, *, scope: Scope = Scope.CASES_READ
    ) -> Case:
        """Load a case by id or journal number, or raise NotFound (also when not visible).

        A token with scopes needs `scope`, or the call raises Forbidden before the case is read.
        """
        require_scope(actor, scope)
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
        require_scope(actor, Scope.CASES_READ)
        limit = max(1, min(limit, MAX_PAGE_SIZE))
        offset = max(0, offset)
        query = select(Case)
        visible = self.access.visible_cases(actor)
        if visible is not None:
            query = query.where(visible)
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
            if document is not None and not actor.is_staff:
                _, process = self.catalog.by_version_id(session, case.process_version_id)
                if not shown_to_applicant(document, recipient_of(case, process), actor.name):
                    document = None
            if document is None:
                raise NotFound(
                    Text(
                        f"Sagen {case.journal_number} har intet dokument nr. {number}.",
                        f"The case {case.journal_number} has no document number {number}.",
                    ),
                    code="unknown_document",
                    field="number",
                    # The message to an applicant leaves out how many documents the case has, because some are internal.
                    hint=Text(
                        f"Sagen har dokument 1 til {case.document_count}.",
                        f"The case has documents 1 to {case.document_count}.",
                    )
                    if actor.is_staff
                    else Text(
                        "Sagen viser de dokumenter, du kan se.",
                        "The case lists the documents that you can see.",
                    ),
                )
            return document_view(document)

    def list_letters(self, actor: Actor, case_ref: str | int) -> list[dict[str, Any]]:
        """Return the case's letters; an applicant gets only those already sent to the case's party."""
        with self.database.read() as session:
            case = self.load_case(session, actor, case_ref)
            query = select(Document).where(Document.case_id == case.id, Document.kind == DocumentKind.LETTER)
            letters = list(session.scalars(query.order_by(Document.number)))
            if not actor.is_staff:
                _, process = self.catalog.by_version_id(session, case.process_version_id)
                party = recipient_of(case, process)
                letters = [letter for letter in letters if shown_to_applicant(letter, party, actor.name)]
            return [document_view(document) for document in letters]

    # Outbox ------------------------------------------------------------------------------

    def dispatch_outbox(self, limit: int = 1000) -> DispatchReport:
        return dispatch_due(self.database, self.services, limit)


def _application_text(process: CompiledProcess, values: Mapping[str, Any]) -> str:
    lines = [f"Ansøgning: {process.title('da')}", ""]
    for name, field in process.fields.items():
        if name in values:
            lines.append(f"{field.label.da}: {values[name]}")
    return "\n".join(lines) + "\n"
