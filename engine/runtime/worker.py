"""The background worker: outbox delivery, timers, hearing deadlines and escalation of overdue work.

Each round of `Worker.run_round` does four things, in this order:

1. delivers the due letters of the outbox (`engine/runtime/outbox.py`);
2. fires due timers: a waiting `timer` step whose time has come is done with the outcome
   `elapsed`, and a waiting `report` step past its deadline with `deadline_passed`, and the
   case settles;
3. closes hearings whose deadline has passed (`engine/runtime/hearings.py`);
4. escalates overdue cases and steps once, as the process's `escalation` rules configure.

Every change to a case is one command with the actor `system`, in its own transaction.
The worker claims the case row with `FOR UPDATE SKIP LOCKED` on PostgreSQL, so several
workers never work on the same case at once, and a case that a user's command holds is
left for the next round. On SQLite one writer runs at a time anyway.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.auth import SYSTEM
from engine.calendar import local_date
from engine.definitions.compile import CompiledProcess
from engine.definitions.model import EscalationRule
from engine.i18n import Language
from engine.runtime.catalog import ProcessCatalog
from engine.runtime.commands import OPEN_STEP_STATUSES, CaseCommand, load_command, lock_case
from engine.runtime.hearings import close_at_deadline
from engine.runtime.outbox import default_worker_name, dispatch_due
from engine.runtime.services import Services
from engine.storage.database import Database
from engine.storage.tables import Case, CaseNote, CaseStatus, CaseStep, Hearing, HearingStatus, StepStatus

logger = logging.getLogger(__name__)

DEFAULT_INTERVAL_SECONDS = 5.0
# Items of each kind one round takes on; the rest wait for the next round.
BATCH_SIZE = 200
# After the first report of an error, the same failing item is logged again only every this many rounds.
REPEAT_LOG_EVERY = 100


@dataclass
class RoundReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    timers: int = 0
    hearings: int = 0
    escalations: int = 0
    errors: int = 0

    def busy(self) -> bool:
        return any(vars(self).values())

    def summary(self) -> str:
        return (
            f"{self.sent} letters sent, {self.retried} to retry, {self.failed} failed, {self.timers} timers fired, "
            f"{self.hearings} hearings closed, {self.escalations} escalations, {self.errors} errors"
        )


class _Skip(Exception):
    """The item no longer needs work, such as a timer another worker has fired; nothing is written."""


class Worker:
    def __init__(
        self,
        database: Database,
        services: Services,
        catalog: ProcessCatalog | None = None,
        *,
        name: str | None = None,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self.database = database
        self.services = services
        self.catalog = catalog or ProcessCatalog()
        self.name = name or default_worker_name()
        self.batch_size = batch_size
        self._stop = threading.Event()
        self._failures: dict[str, int] = defaultdict(int)

    # Running -------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the worker to stop after the item it is working on; safe to call from a signal handler."""
        self._stop.set()

    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self, interval: float = DEFAULT_INTERVAL_SECONDS, *, once: bool = False) -> None:
        """Run rounds every `interval` seconds until `stop` is called, or one round with `once`."""
        logger.info("Worker %s started (%s)", self.name, "one round" if once else f"every {interval:g} s")
        try:
            while not self.stopping():
                self.run_round()
                if once:
                    break
                self._stop.wait(interval)
        finally:
            logger.info("Worker %s stopped", self.name)

    def run_round(self) -> RoundReport:
        report = RoundReport()
        for task in (self.deliver_outbox, self.fire_timers, self.close_hearings, self.escalate):
            if self.stopping():
                break
            try:
                task(report)
            except Exception:
                # The database or an adapter failed outside any one item; the next round tries again.
                report.errors += 1
                self._log_failure(f"round:{task.__name__}", f"Worker {self.name}: {task.__name__} failed")
        level = logging.INFO if report.busy() else logging.DEBUG
        logger.log(level, "Worker %s round: %s", self.name, report.summary())
        return report

    def _log_failure(self, key: str, message: str, *args: Any) -> None:
        """Log a caught error with its traceback, but a failure that repeats only every REPEAT_LOG_EVERY times."""
        self._failures[key] += 1
        count = self._failures[key]
        if count == 1 or count % REPEAT_LOG_EVERY == 0:
            suffix = f" (failed {count} times)" if count > 1 else ""
            logger.exception(message + suffix, *args)

    def _on_case(self, case_id: int, name: str, work: Callable[[CaseCommand], None]) -> bool:
        """Run `work` as one system command on a case; False when the case is busy, closed or needs nothing."""
        try:
            with self.database.write() as session:
                case = lock_case(session, case_id, postgresql=self.database.is_postgresql, skip_locked=True)
                if case is None or case.status != CaseStatus.OPEN:
                    raise _Skip
                _, process = self.catalog.by_version_id(session, case.process_version_id)
                command = load_command(session, self.services, process, case, SYSTEM, name)
                work(command)
                command.finish()
        except _Skip:
            return False
        self._failures.pop(f"{name}:{case_id}", None)
        return True

    def _each(
        self, report: RoundReport, items: list[tuple[int, int]], name: str, work: Callable[[CaseCommand, int], None]
    ) -> int:
        """Run `work` on each (item id, case id) and return how many were done.

        A failing item is logged, counted in `report.errors` and left for the next round.
        """
        done = 0
        for item_id, case_id in items:
            if self.stopping():
                break
            try:
                if self._on_case(case_id, name, partial(_with_item, work, item_id)):
                    done += 1
            except Exception:
                report.errors += 1
                self._log_failure(
                    f"{name}:{case_id}",
                    "Worker %s: %s failed for item %s of case %s",
                    self.name,
                    name,
                    item_id,
                    case_id,
                )
        return done

    # 1. The outbox -----------------------------------------------------------------------------

    def deliver_outbox(self, report: RoundReport) -> None:
        result = dispatch_due(self.database, self.services, self.batch_size, worker=self.name, stopping=self.stopping)
        report.sent += result.sent
        report.retried += result.retried
        report.failed += result.failed

    # 2. Timers ---------------------------------------------------------------------------------

    def fire_timers(self, report: RoundReport) -> None:
        now = self.services.clock()
        with self.database.read() as session:
            due = session.execute(
                select(CaseStep.id, CaseStep.case_id, CaseStep.kind)
                .where(
                    CaseStep.kind.in_(("timer", "report")),
                    CaseStep.status == StepStatus.WAITING,
                    CaseStep.due_at <= now,
                )
                .order_by(CaseStep.due_at, CaseStep.id)
                .limit(self.batch_size)
            ).all()
        for kind, name in (("timer", "timer_elapsed"), ("report", "report_deadline")):
            items = [(row.id, row.case_id) for row in due if row.kind == kind]
            report.timers += self._each(report, items, name, _fire_timer)

    # 3. Hearings -------------------------------------------------------------------------------

    def close_hearings(self, report: RoundReport) -> None:
        now = self.services.clock()
        with self.database.read() as session:
            due = session.execute(
                select(Hearing.id, Hearing.case_id)
                .where(Hearing.status == HearingStatus.OPEN, Hearing.deadline_at <= now)
                .order_by(Hearing.deadline_at, Hearing.id)
                .limit(self.batch_size)
            ).all()
        items = [(row.id, row.case_id) for row in due]
        report.hearings += self._each(report, items, "hearing_deadline", _close_hearing)

    # 4. Escalation -----------------------------------------------------------------------------

    def escalate(self, report: RoundReport) -> None:
        now = self.services.clock()
        with self.database.read() as session:
            case_ids = sorted(self._cases_to_escalate(session, now))
        items = [(case_id, case_id) for case_id in case_ids[: self.batch_size]]
        report.escalations += self._each(report, items, "escalate", _escalate_case)

    def _cases_to_escalate(self, session: Session, now: datetime) -> set[int]:
        """Return the ids of open cases with an overdue case or step that a rule of their process escalates."""
        found: set[int] = set()
        overdue_cases = session.execute(
            select(Case.id, Case.process_version_id).where(
                Case.status == CaseStatus.OPEN, Case.processing_deadline_at < now, Case.escalated_at.is_(None)
            )
        ).all()
        for case_id, version_id in overdue_cases:
            if _rules_for(self._process(session, version_id), "case"):
                found.add(case_id)
        overdue_steps = session.execute(
            select(CaseStep.case_id, CaseStep.step_id, Case.process_version_id)
            .join(Case, Case.id == CaseStep.case_id)
            .where(
                Case.status == CaseStatus.OPEN,
                CaseStep.status.in_(OPEN_STEP_STATUSES),
                CaseStep.due_at < now,
                CaseStep.escalated_at.is_(None),
            )
        ).all()
        for case_id, step_id, version_id in overdue_steps:
            if _rules_for(self._process(session, version_id), step_id):
                found.add(case_id)
        return found

    def _process(self, session: Session, version_id: int) -> CompiledProcess:
        return self.catalog.by_version_id(session, version_id)[1]


def _with_item(work: Callable[[CaseCommand, int], None], item_id: int, command: CaseCommand) -> None:
    work(command, item_id)


def _fire_timer(command: CaseCommand, step_row_id: int) -> None:
    row = next((step for step in command.steps if step.id == step_row_id), None)
    if row is None or row.status != StepStatus.WAITING or row.due_at is None or row.due_at > command.now:
        raise _Skip
    # A report step whose deadline has passed ends without the report, and its link has expired.
    command.finish_waiting(row, "deadline_passed" if row.kind == "report" else "elapsed")
    logger.info("Step %s (%s) of case %s reached its due time", row.step_id, row.kind, command.case.journal_number)


def _close_hearing(command: CaseCommand, hearing_id: int) -> None:
    hearing = command.session.scalars(
        select(Hearing).where(Hearing.id == hearing_id).execution_options(populate_existing=True)
    ).one_or_none()
    if hearing is None or hearing.status != HearingStatus.OPEN or hearing.deadline_at > command.now:
        raise _Skip
    outcome = close_at_deadline(command, hearing)
    logger.info("Hearing %s of case %s closed at its deadline: %s", hearing_id, command.case.journal_number, outcome)


def _rules_for(process: CompiledProcess, target: str) -> list[EscalationRule]:
    return [rule for rule in process.definition.escalation if rule.overdue == target]


def _escalate_case(command: CaseCommand, case_id: int) -> None:
    """Carry out the escalation rules of every overdue, not yet escalated target of one case."""
    case, now = command.case, command.now
    done: list[dict[str, str]] = []
    if case.processing_deadline_at is not None and case.processing_deadline_at < now and case.escalated_at is None:
        rules = _rules_for(command.process, "case")
        if rules:
            for rule in rules:
                done.append(_apply(command, rule, None))
            case.escalated_at = now
    for row in command.steps:
        overdue = row.status in OPEN_STEP_STATUSES and row.due_at is not None and row.due_at < now
        if not overdue or row.escalated_at is not None:
            continue
        rules = _rules_for(command.process, row.step_id)
        if rules:
            for rule in rules:
                done.append(_apply(command, rule, row))
            row.escalated_at = now
    if not done:
        raise _Skip
    command.changes["escalations"] = done
    logger.info("Escalated case %s: %s", case.journal_number, done)


def _apply(command: CaseCommand, rule: EscalationRule, row: CaseStep | None) -> dict[str, str]:
    """Carry out one rule on the case (row None) or on one of its steps."""
    case = command.case
    language: Language = "en" if case.language == "en" else "da"
    target = "case" if row is None else row.step_id
    if rule.action == "notify":
        text = f"@{rule.to}: {rule.message.get(language)}"
        command.session.add(CaseNote(case_id=case.id, text=text, created_by=SYSTEM.name, created_at=command.now))
    elif row is None:
        command.changes["assignee"] = [case.assignee, rule.to]
        case.assignee = rule.to
    else:
        row.assignee = rule.to
    return {"overdue": target, "action": rule.action, "to": rule.to}


# Overdue work --------------------------------------------------------------------------------


def list_overdue(
    session: Session,
    catalog: ProcessCatalog,
    now: datetime,
    language: Language,
    visible: Callable[[Case], bool],
    limit: int = 100,
) -> dict[str, Any]:
    """List the open cases past their processing deadline and the open steps past their due time.

    Only cases for which `visible(case)` holds are listed, and steps of such cases; each list
    holds at most `limit` entries, the most overdue first.
    """
    cases: list[dict[str, Any]] = []
    query = (
        select(Case)
        .where(Case.status == CaseStatus.OPEN, Case.processing_deadline_at < now)
        .order_by(Case.processing_deadline_at, Case.id)
    )
    for case in _visible_rows(session, query, visible, limit, lambda row: row):
        process = catalog.by_version_id(session, case.process_version_id)[1]
        cases.append(_overdue_case(case, process, now, language))

    steps: list[dict[str, Any]] = []
    step_query = (
        select(CaseStep, Case)
        .join(Case, Case.id == CaseStep.case_id)
        .where(Case.status == CaseStatus.OPEN, CaseStep.status.in_(OPEN_STEP_STATUSES), CaseStep.due_at < now)
        .order_by(CaseStep.due_at, CaseStep.id)
    )
    for row, case in _visible_rows(session, step_query, visible, limit, lambda pair: pair[1]):
        process = catalog.by_version_id(session, case.process_version_id)[1]
        steps.append(_overdue_step(row, case, process, now, language))
    return {"cases": cases, "steps": steps}


def _visible_rows(
    session: Session, query: Any, visible: Callable[[Case], bool], limit: int, case_of: Callable[[Any], Case]
) -> list[Any]:
    """Page through `query` until `limit` rows whose case is visible are found."""
    found: list[Any] = []
    page, offset = 500, 0
    while len(found) < limit:
        rows = list(session.execute(query.limit(page).offset(offset)).all())
        rows = [row[0] if len(row) == 1 else row for row in rows]
        found.extend(row for row in rows if visible(case_of(row)))
        if len(rows) < page:
            break
        offset += page
    return found[:limit]


def _overdue_days(deadline: datetime, now: datetime) -> int:
    return (local_date(now) - local_date(deadline)).days


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _overdue_case(case: Case, process: CompiledProcess, now: datetime, language: Language) -> dict[str, Any]:
    phase = process.phases.get(case.phase)
    deadline = case.processing_deadline_at
    return {
        "id": case.id,
        "journal_number": case.journal_number,
        "title": case.title,
        "process": case.process_id,
        "phase": {"id": case.phase, "label": phase.definition.label.get(language) if phase else case.phase},
        "processing_deadline": _iso(deadline),
        "days_overdue": _overdue_days(deadline, now) if deadline else 0,
        "assignee": case.assignee,
        "escalated_at": _iso(case.escalated_at),
    }


def _overdue_step(
    row: CaseStep, case: Case, process: CompiledProcess, now: datetime, language: Language
) -> dict[str, Any]:
    found = process.step(row.step_id)
    return {
        "case": {"id": case.id, "journal_number": case.journal_number, "title": case.title},
        "step": row.step_id,
        "label": found[1].definition.label.get(language) if found else row.step_id,
        "kind": row.kind,
        "status": row.status,
        "role": found[1].definition.role if found else None,
        "due_at": _iso(row.due_at),
        "days_overdue": _overdue_days(row.due_at, now) if row.due_at else 0,
        "assignee": row.assignee,
        "escalated_at": _iso(row.escalated_at),
    }
