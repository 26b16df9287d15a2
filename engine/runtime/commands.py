"""Commands on one case: start it from an application, complete a task, approve a draft.

A `CaseCommand` holds what one command loaded (the case row, locked, and its checklist)
and what it changed. After the change it *settles* the case: while every required step
of the current phase is done, it fires the process machine's `advance` trigger, enters
the phase the first matching transition leads to, and runs that phase's automatic
steps. Everything happens inside the caller's transaction, so a failure anywhere leaves
the case as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.actions import ACTIONS
from engine.adapters.cvr import CompanyRegister
from engine.adapters.de_minimis import DeMinimisRegister
from engine.adapters.land_registry import LandRegistry
from engine.adapters.species import SpeciesRegister
from engine.auth import Actor
from engine.calendar import end_of_day, local_date
from engine.definitions.compile import CompiledProcess, CompiledStep
from engine.definitions.fields import FieldValueError, check_text
from engine.definitions.templates import TemplateProblem, escape_markdown
from engine.errors import BadRequest, Conflict, FieldErrors, Forbidden, NotFound, ProcessFault, SagsflowError
from engine.i18n import Language, Text
from engine.runtime.audit import append_event, record_document_hashes
from engine.runtime.input import enforce_checks, parse_values
from engine.runtime.letters import deadline_end, letter_context, recipient_of, sha256_text
from engine.runtime.services import Services
from engine.storage.tables import (
    Case,
    CaseStatus,
    CaseStep,
    Document,
    DocumentKind,
    DocumentStatus,
    OutboxMessage,
    OutboxStatus,
    StepStatus,
)

logger = logging.getLogger(__name__)

# A case passes through at most this many phases in one command; more means a loop of
# phases without manual steps, which validation cannot always rule out.
MAX_PHASE_CHANGES = 50
MAX_COMMENT_LENGTH = 5_000
# A step in one of these states keeps a required step's phase from being left.
OPEN_STEP_STATUSES = frozenset({StepStatus.ACTIVE, StepStatus.WAITING})

Decision = Literal["approve", "reject"]


def wrong_step_kind(step_id: str, kind: str, route: str) -> BadRequest:
    """Build the error for a step sent to a route that does not handle its kind, naming the right way."""
    if kind == "task":
        how = Text("brug /complete.", "use /complete.")
    elif kind == "approval":
        how = Text("brug /approve.", "use /approve.")
    elif kind in ("hearing", "party_hearing"):
        how = Text(
            "åbn høringen med /hearing. Den afsluttes, når parterne har svaret, eller når fristen er udløbet.",
            "open the hearing with /hearing. It ends when the parties have replied or when the deadline has passed.",
        )
    elif kind == "report":
        how = Text(
            "parten indberetter via linket i anmodningen. Trinnet afsluttes, når indberetningen er modtaget, eller "
            "når fristen er udløbet.",
            "the party reports through the link in the request. The step ends when the report has been received "
            "or when the deadline has passed.",
        )
    else:
        how = Text("systemet udfører trinnet selv.", "the system carries out the step itself.")
    return BadRequest(
        Text(
            f"Trinnet '{step_id}' ({kind}) kan ikke afsluttes med {route}; {how.da}",
            f"The step '{step_id}' ({kind}) cannot be completed with {route}; {how.en}",
        ),
        code="wrong_step_kind",
        field="step",
    )


class CaseCommand:
    def __init__(
        self,
        session: Session,
        services: Services,
        process: CompiledProcess,
        case: Case,
        steps: list[CaseStep],
        actor: Actor,
        name: str,
    ) -> None:
        self.session = session
        self.services = services
        self.process = process
        self.case = case
        self.steps = steps
        self.actor = actor
        self.name = name
        self.now: datetime = services.clock()
        self.changes: dict[str, Any] = {"phases": [], "data": {}, "steps": [], "documents": []}
        self.queued_messages = 0

    # What actions see (engine.actions.ActionContext) --------------------------------------

    @property
    def species(self) -> SpeciesRegister:
        return self.services.species

    @property
    def companies(self) -> CompanyRegister:
        return self.services.companies

    @property
    def de_minimis(self) -> DeMinimisRegister:
        return self.services.de_minimis

    @property
    def land_registry(self) -> LandRegistry:
        return self.services.land_registry

    @property
    def case_reference(self) -> str:
        return self.case.journal_number

    @property
    def today(self) -> date:
        return local_date(self.now)

    def value(self, field: str) -> Any:
        return self.case.data.get(field)

    def set_value(self, field: str, value: Any) -> None:
        before = self.case.data.get(field)
        if before == value:
            return
        # Assign a new dict: SQLAlchemy does not see changes made inside a JSON value.
        self.case.data = {**self.case.data, field: value}
        first_before = self.changes["data"].get(field, [before, None])[0]
        self.changes["data"][field] = [first_before, value]

    def record(self, key: str, entry: Any) -> None:
        self.changes.setdefault(key, []).append(entry)

    # The checklist -----------------------------------------------------------------------

    def outcomes(self) -> dict[str, str]:
        latest: dict[str, CaseStep] = {}
        for row in self.steps:
            latest[row.step_id] = row
        return {step_id: row.outcome or row.status for step_id, row in latest.items()}

    def guard_context(self, data: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self.process.guard_context(
            self.case.data if data is None else data, self.outcomes(), local_date(self.now)
        )

    def current_rows(self) -> list[CaseStep]:
        rows = [row for row in self.steps if row.phase == self.case.phase]
        if not rows:
            return []
        current_round = max(row.round for row in rows)
        return [row for row in rows if row.round == current_round]

    def _record_step(self, row: CaseStep) -> None:
        self.changes["steps"].append(
            {
                "step": row.step_id,
                "phase": row.phase,
                "round": row.round,
                "status": row.status,
                "outcome": row.outcome,
            }
        )

    def _finish_step(self, row: CaseStep, status: str, outcome: str | None, by: str) -> None:
        row.status = status
        row.outcome = outcome
        row.completed_at = self.now
        row.completed_by = by
        self._record_step(row)

    def enter_phase(self, phase_id: str, *, first: bool = False) -> None:
        phase = self.process.phases[phase_id]
        previous_rounds = [row.round for row in self.steps if row.phase == phase_id]
        round_number = max(previous_rounds, default=0) + 1
        self.changes["phases"].append([None if first else self.case.phase, phase_id])
        self.case.phase = phase_id
        logger.info("Case %s entered phase %s", self.case.journal_number, phase_id)

        rows = [
            CaseStep(
                case_id=self.case.id,
                phase=phase_id,
                round=round_number,
                position=position,
                step_id=step.id,
                kind=step.definition.kind,
                status="active",
                required=step.definition.required,
                data={},
                started_at=self.now,
                due_at=deadline_end(step.definition.deadline, self.now) if step.definition.deadline else None,
            )
            for position, step in enumerate(phase.steps)
        ]
        self.session.add_all(rows)
        self.steps.extend(rows)

        for step, row in zip(phase.steps, rows, strict=True):
            if step.when is not None and not step.when(self.guard_context()):
                self._finish_step(row, "skipped", "skipped", "system")
            elif step.automatic:
                self.run_automatic(step, row)
            elif step.definition.kind == "timer":
                self.start_timer(step, row)
            elif step.definition.kind == "report":
                # The party's report through the link, or the worker at the deadline, ends it.
                row.status = StepStatus.WAITING
                self._record_step(row)

        if phase.final:
            self.case.status = CaseStatus.CLOSED
            self.case.closed_at = self.now
            self.changes["status"] = [CaseStatus.OPEN, CaseStatus.CLOSED]
            logger.info("Case %s closed", self.case.journal_number)

    def start_timer(self, step: CompiledStep, row: CaseStep) -> None:
        """Set the timer's due time; the worker completes it when the time has come."""
        definition = step.definition
        if definition.until is not None:
            day = self.process.field_types[definition.until].to_context(self.case.data.get(definition.until))
            if day is None:
                # The date is not filled in: nothing to wait for.
                self._finish_step(row, "done", "no_date", "system")
                return
            row.due_at = end_of_day(day)
        row.status = StepStatus.WAITING
        self._record_step(row)

    def run_intake(self, step: CompiledStep, row: CaseStep) -> str:
        """Check the application's completeness by the step's form and record the fee that falls due."""
        context = self.guard_context()
        missing = [
            entry.field
            for entry in step.definition.form
            if self.case.data.get(entry.field) in (None, "", [])
            and (entry.required or (entry.field in step.required_if and step.required_if[entry.field](context)))
        ]
        fee_field = step.definition.params.get("fee_field")
        fee = self.process.definition.fee
        if fee_field and fee is not None:
            self.set_value(str(fee_field), int(fee.amount * 100))
        row.data = {"missing": missing}
        return "incomplete" if missing else "complete"

    def run_automatic(self, step: CompiledStep, row: CaseStep) -> None:
        definition = step.definition
        if definition.kind == "letter":
            self.send_letter(definition.letter or "", row)
            outcome = "sent"
        elif definition.kind == "intake":
            outcome = self.run_intake(step, row)
        else:
            action = ACTIONS[definition.action or ""]
            try:
                outcome = action.run(self, action.params.model_validate(definition.params))
            except SagsflowError:
                raise
            except Exception as error:
                # A bug or an outside register failing: roll the command back with a message, not a 500 page.
                logger.exception("Action %s of case %s failed", definition.action, self.case.journal_number)
                raise ProcessFault(
                    Text(
                        f"Den automatiske handling '{definition.label.da}' mislykkedes ({type(error).__name__}); "
                        "intet er ændret. Prøv igen, og kontakt en administrator, hvis fejlen bliver ved.",
                        f"The automatic action '{definition.label.en}' failed ({type(error).__name__}); nothing "
                        "was changed. Try again, and contact an administrator if it keeps failing.",
                    )
                ) from error
        self._finish_step(row, "done", outcome, "system")

    def settle(self) -> None:
        for _ in range(MAX_PHASE_CHANGES):
            phase = self.process.phases[self.case.phase]
            if phase.final:
                return
            rows = self.current_rows()
            if any(row.required and row.status in OPEN_STEP_STATUSES for row in rows):
                return
            target = self.process.advance(self.case.phase, self.guard_context())
            if target is None:
                raise Conflict(
                    Text(
                        f"Sagen kan ikke gå videre fra fasen '{phase.definition.label.da}', fordi ingen af "
                        "fasens overgange passer på sagens oplysninger.",
                        f"The case cannot leave the phase '{phase.definition.label.en}' because none of its "
                        "transitions matches the case data.",
                    ),
                    code="no_transition",
                    hint=Text(
                        "Ret oplysningerne i fasens trin, eller ret overgangene i procesdefinitionen.",
                        "Correct the data in the phase's steps, or correct the transitions in the process definition.",
                    ),
                )
            for row in rows:
                if row.status in OPEN_STEP_STATUSES:
                    self._finish_step(row, "skipped", "skipped", "system")
            self.enter_phase(target)
        raise ProcessFault(
            Text(
                f"Sagen skiftede fase mere end {MAX_PHASE_CHANGES} gange i én handling; processen har en løkke "
                "uden manuelle trin.",
                f"The case changed phase more than {MAX_PHASE_CHANGES} times in one command; the process has a "
                "loop without manual steps.",
            )
        )

    # Hearings and timers ---------------------------------------------------------------------

    def wait(self, row: CaseStep, due_at: datetime) -> None:
        """Set an opened hearing step waiting for replies until `due_at`."""
        row.due_at = due_at
        row.status = StepStatus.WAITING
        self._record_step(row)

    def finish_waiting(self, row: CaseStep, outcome: str, by: str = "system") -> None:
        """Mark a waiting hearing, timer or report step done by `by` with `outcome`, then settle the case."""
        self._finish_step(row, StepStatus.DONE, outcome, by)
        self.settle()

    def add_done_row(self, beside: CaseStep, step_id: str, kind: str, outcome: str, data: dict[str, Any]) -> CaseStep:
        """Add an optional checklist row, already done by the actor, in the phase round of `beside`.

        Hearing replies are recorded this way: they are not steps of the process definition,
        so `data["label"]` contains their Danish and English label for the views.
        """
        row = CaseStep(
            case_id=self.case.id,
            phase=beside.phase,
            round=beside.round,
            position=beside.position,
            step_id=step_id,
            kind=kind,
            status=StepStatus.DONE,
            required=False,
            data=data,
            started_at=self.now,
            due_at=None,
        )
        self.session.add(row)
        self.steps.append(row)
        self._finish_step(row, StepStatus.DONE, outcome, self.actor.name)
        return row

    # Letters and documents -----------------------------------------------------------------

    def add_document(self, **columns: Any) -> Document:
        self.case.document_count += 1
        document = Document(
            case_id=self.case.id,
            number=self.case.document_count,
            created_at=self.now,
            created_by=self.actor.name,
            **columns,
        )
        self.session.add(document)
        self.changes["documents"].append({"number": document.number, "title": document.title})
        return document

    def send_letter(
        self,
        letter_id: str,
        row: CaseStep,
        *,
        recipient: dict[str, str] | None = None,
        hearing: dict[str, Any] | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> Document:
        """Render a letter, file it and queue it in the outbox.

        A hearing letter passes its party as `recipient` instead of the case's party, its
        `hearing` context (see `letters.hearing_context`) and `payload` entries for the outbox.
        """
        letter = self.process.definition.letters[letter_id]
        language: Language = "en" if self.case.language == "en" and "en" in letter.templates else "da"
        template = letter.templates[language]
        subject = letter.label.get(language)
        context = letter_context(self.case, self.process, self.services, self.now, language)
        # The due dates of the phase's steps, e.g. the reply deadline a hearing letter states.
        context["deadlines"] = {
            row.step_id: local_date(row.due_at) for row in self.current_rows() if row.due_at is not None
        }
        if recipient is not None:
            context["recipient"] = {**recipient, "name": escape_markdown(recipient["name"])}
        if hearing is not None:
            context["hearing"] = hearing
        try:
            rendered = self.process.renderer.render(template, subject, language, context)
        except TemplateProblem as problem:
            logger.error("Letter %s of case %s failed to render: %s", letter_id, self.case.journal_number, problem)
            raise ProcessFault(
                Text(
                    f"Brevet '{subject}' kunne ikke dannes ({problem.detail}); intet er ændret.",
                    f"The letter '{subject}' could not be rendered ({problem.detail}); nothing was changed.",
                )
            ) from None

        recipient = recipient or recipient_of(self.case, self.process)
        document = self.add_document(
            kind=DocumentKind.LETTER,
            title=subject,
            letter_id=letter_id,
            language=language,
            content_type="text/plain; charset=utf-8",
            body_text=rendered.text,
            body_html=rendered.html,
            sha256=sha256_text(rendered.text),
            status=DocumentStatus.QUEUED,
            recipient=recipient,
            step=row,
            sent_at=None,
        )
        self.session.add(
            OutboxMessage(
                case_id=self.case.id,
                document=document,
                channel="digital_post",
                idempotency_key=f"letter:{self.case.journal_number}:{document.number}",
                payload={
                    "letter": letter_id,
                    "recipient": recipient,
                    "classification": self.process.definition.classification,
                    **(payload or {}),
                },
                status=OutboxStatus.PENDING,
                attempts=0,
                next_attempt_at=self.now,
                created_at=self.now,
            )
        )
        self.queued_messages += 1
        return document

    # Caseworker commands --------------------------------------------------------------------

    def require_role(self, role: str | None) -> None:
        if role is not None and not self.actor.has(role):
            label = self.process.definition.roles.get(role)
            name_da = label.label.da if label else role
            name_en = label.label.en if label else role
            raise Forbidden(
                Text(
                    f"Trinnet kræver rollen '{name_da}' ({role}), som du ikke har.",
                    f"The step requires the role '{name_en}' ({role}), which you do not have.",
                ),
                code="missing_role",
                hint=Text(
                    "Bed en administrator om en adgangsnøgle med rollen, eller lad en kollega tage trinnet.",
                    "Ask an administrator for a token with the role, or let a colleague take the step.",
                ),
            )

    def active_step(self, step_id: str) -> tuple[CaseStep, CompiledStep]:
        found = self.process.step(step_id)
        active = [row.step_id for row in self.current_rows() if row.status == "active"]
        listed_da = ", ".join(active) or "ingen"
        listed_en = ", ".join(active) or "none"
        if found is None:
            raise NotFound(
                Text(
                    f"Trinnet '{step_id}' findes ikke i processen.",
                    f"The step '{step_id}' does not exist in the process.",
                ),
                code="unknown_step",
                field="step",
                hint=Text(f"Aktive trin: {listed_da}.", f"Active steps: {listed_en}."),
            )
        rows = [row for row in self.current_rows() if row.step_id == step_id]
        if not rows or rows[0].status != "active":
            done_by = ""
            if rows:
                done_by = (
                    f" ({rows[0].status}, {rows[0].completed_by})" if rows[0].completed_by else f" ({rows[0].status})"
                )
            raise Conflict(
                Text(
                    f"Trinnet '{step_id}' er ikke aktivt{done_by}; sagen er i fasen '{self.case.phase}'.",
                    f"The step '{step_id}' is not active{done_by}; the case is in the phase '{self.case.phase}'.",
                ),
                code="step_not_active",
                field="step",
                hint=Text(
                    f"Aktive trin: {listed_da}. Hent sagen igen.", f"Active steps: {listed_en}. Fetch the case again."
                ),
            )
        return rows[0], found[1]

    def complete_task(self, step_id: str, raw: Mapping[str, Any]) -> None:
        row, step = self.active_step(step_id)
        if step.definition.kind != "task":
            raise wrong_step_kind(step_id, step.definition.kind, "/complete")
        self.require_role(step.definition.role)
        allowed = {entry.field: entry.required for entry in step.definition.form}
        values = parse_values(
            self.process,
            raw,
            allowed,
            self.services,
            existing=self.case.data,
            conditional=step.required_if,
            context=self.guard_context,
            what=Text(f"trinnet '{step_id}'", f"the step '{step_id}'"),
        )
        enforce_checks(step.checks, self.guard_context({**self.case.data, **values}))
        for field, value in values.items():
            self.set_value(field, value)
        row.data = values
        self._finish_step(row, "done", "done", self.actor.name)
        self.settle()

    def approve(self, step_id: str, decision: Decision, comment: str | None) -> None:
        row, step = self.active_step(step_id)
        definition = step.definition
        if definition.kind != "approval":
            raise wrong_step_kind(step_id, definition.kind, "/approve")
        self.require_role(definition.role)
        comment = (comment or "").strip() or None
        errors = FieldErrors()
        if comment is not None:
            try:
                check_text(comment)
            except FieldValueError as error:
                errors.add("comment", error.code, error.text, error.hint)
        if comment is not None and len(comment) > MAX_COMMENT_LENGTH:
            errors.add(
                "comment",
                "too_long",
                Text(
                    f"Kommentaren må højst være {MAX_COMMENT_LENGTH} tegn.",
                    f"The comment may be at most {MAX_COMMENT_LENGTH} characters.",
                ),
            )
        if decision == "reject" and comment is None:
            errors.add(
                "comment",
                "required",
                Text("Skriv en kommentar, når du afviser et udkast.", "Write a comment when you reject a draft."),
                Text("Forklar, hvad der skal rettes.", "Explain what has to be corrected."),
            )
        errors.raise_if_any()

        if self.actor.name in self.preparers(definition.approves or ""):
            raise Forbidden(
                Text(
                    f"Du har selv udført trinnet '{definition.approves}' i denne eller en tidligere runde og kan "
                    "ikke godkende det (fire-øjne-princippet).",
                    f"You completed the step '{definition.approves}' yourself, in this or an earlier round, and "
                    "cannot approve it (four-eyes principle).",
                ),
                code="four_eyes",
                hint=Text(
                    "En anden med rollen godkender skal godkende udkastet.",
                    "Another user with the approver role must approve the draft.",
                ),
            )
        approvals: list[dict[str, Any]] = list(row.data.get("approvals", []))
        if any(entry["by"] == self.actor.name for entry in approvals):
            raise Forbidden(
                Text(
                    "Du har allerede godkendt; seks-øjne-princippet kræver en anden godkender.",
                    "You have already approved; the six-eyes principle requires another approver.",
                ),
                code="six_eyes",
            )
        approvals.append({"by": self.actor.name, "at": self.now.isoformat(), "decision": decision, "comment": comment})
        row.data = {"approvals": approvals}

        needed = 2 if definition.eyes == 6 else 1
        if decision == "reject":
            self._finish_step(row, "done", "rejected", self.actor.name)
        elif sum(1 for entry in approvals if entry["decision"] == "approve") >= needed:
            self._finish_step(row, "done", "approved", self.actor.name)
        else:
            self._record_step(row)
        self.settle()

    def preparers(self, step_id: str) -> set[str]:
        """Return every user who completed `step_id` in any round of the case.

        A task sent back by a rejection keeps its values, so a later round may be completed
        without changing the text. Everyone who ever completed the task may have written
        what the approver signs, so none of them may approve it.
        """
        return {
            row.completed_by
            for row in self.steps
            if row.step_id == step_id and row.status == "done" and row.completed_by is not None
        }

    # Ending the command -------------------------------------------------------------------

    def finish(self, extra: Mapping[str, Any] | None = None) -> None:
        """Append the audit event and write everything in one flush; a stale case version raises here.

        The event records the SHA-256 of each document the command filed and of the case's
        state after the command. The engine flushes nothing before this point unless a
        command does so itself, and the audit code reads without autoflush, so the case
        row, with its new version and audit head, is normally updated once per command,
        with the version check in its WHERE clause.
        """
        self.case.updated_at = self.now
        self.case.version = (self.case.version or 0) + 1
        record_document_hashes(self.session, self.case.id, self.changes["documents"])
        changes = {key: value for key, value in self.changes.items() if value}
        if extra:
            changes.update(extra)
        append_event(self.session, self.case.id, self.now, self.actor.name, self.name, changes)
        self.session.flush()


def lock_case(session: Session, case_id: int, *, postgresql: bool, skip_locked: bool = False) -> Case | None:
    """Load a case row for a command, locked on PostgreSQL; with `skip_locked`, None when another holds it.

    On SQLite the write transaction already holds the database's write lock.
    """
    query = select(Case).where(Case.id == case_id).execution_options(populate_existing=True)
    if postgresql:
        query = query.with_for_update(skip_locked=skip_locked)
    return session.scalars(query).one_or_none()


def load_command(
    session: Session, services: Services, process: CompiledProcess, case: Case, actor: Actor, name: str
) -> CaseCommand:
    """Build a command on a case that the caller has locked, with the case's checklist loaded."""
    steps = list(session.scalars(select(CaseStep).where(CaseStep.case_id == case.id).order_by(CaseStep.id)))
    return CaseCommand(session, services, process, case, steps, actor, name)
