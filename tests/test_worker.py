"""The worker: outbox delivery by racing workers, retries, physical mail, timers, escalation, overdue work.

Most tests run on SQLite and on PostgreSQL (the `database` fixture). The CLI tests run the
`sagsflow` commands on a temporary SQLite database, as in tests/test_cli.py.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select, text
from typer.testing import CliRunner

from api.app import create_app
from cli.main import app as cli_app
from engine.adapters.cvr import FakeCompanyRegister
from engine.adapters.digital_post import (
    DeliveryError,
    MailboxDigitalPost,
    MemoryDigitalPost,
    Party,
    PostMessage,
    RecipientExempt,
)
from engine.adapters.physical_mail import FolderPhysicalMail, MemoryPhysicalMail
from engine.adapters.species import OfflineSpeciesPlus
from engine.auth import Actor
from engine.definitions.loader import LoadedDefinitions, load_definitions
from engine.people import Access
from engine.runtime.audit import verify_chain
from engine.runtime.outbox import (
    CLAIM_LEASE,
    INTERRUPTED,
    MAX_ATTEMPTS,
    DeliveryResult,
    claim_next,
    deliver,
    dispatch_once,
    record_result,
)
from engine.runtime.services import Services
from engine.runtime.worker import RoundReport, Worker
from engine.service import Sagsflow
from engine.settings import Settings
from engine.storage.database import Database
from engine.storage.tables import Case, CaseEvent, CaseNote, CaseStep, OutboxAttempt, OutboxMessage
from tests.conftest import Clock
from tests.helpers import ADMIN, APPLICANT, CASEWORKER, REPOSITORY, Tokens, example

# A small skeleton with a timer, a task with a deadline and both kinds of escalation rule.
# The party may have a CVR number, a CPR number or neither. Without either, letters go by
# physical mail.
FRISTER_SKELETON = """
skeleton: frister
title: {da: Frister, en: Deadlines}
roles:
  applicant: {label: {da: Ansøger, en: Applicant}}
  caseworker: {label: {da: Sagsbehandler, en: Caseworker}}
intake_roles: [applicant, caseworker]
case_title: "{{ subject }}"
processing_deadline: {value: 10, unit: calendar_days}
fields:
  applicant_name: {type: text, label: {da: Navn, en: Name}, required: true, max_length: 200}
  applicant_cvr: {type: cvr, label: {da: CVR-nummer, en: CVR number}}
  applicant_cpr: {type: cpr, label: {da: CPR-nummer, en: CPR number}}
  applicant_address: {type: text, label: {da: Adresse, en: Address}, max_length: 200}
  applicant_postcode: {type: postcode, label: {da: Postnummer, en: Postcode}}
  applicant_city: {type: text, label: {da: By, en: City}, max_length: 100}
  subject: {type: text, label: {da: Emne, en: Subject}, required: true, max_length: 200}
  review_note: {type: text, source: caseworker, label: {da: Notat, en: Note}}
letters:
  receipt:
    label: {da: Kvittering, en: Receipt}
    template: {da: letters/receipt.da.md.j2}
phases:
  - id: received
    label: {da: Modtaget, en: Received}
    steps:
      - {id: receipt_letter, kind: letter, letter: receipt, label: {da: Send kvittering, en: Send receipt}}
    next: [{to: cooling_off}]
  - id: cooling_off
    label: {da: Betænkningstid, en: Cooling-off}
    steps:
      - id: cooling_off_timer
        kind: timer
        label: {da: Vent, en: Wait}
        deadline: {value: 3, unit: calendar_days}
    next: [{to: review}]
  - id: review
    label: {da: Gennemgang, en: Review}
    steps:
      - id: review
        kind: task
        role: caseworker
        label: {da: Gennemgå sagen, en: Review the case}
        deadline: {value: 2, unit: calendar_days}
        form: [{field: review_note, required: true}]
    next: [{to: closed}]
  - id: closed
    label: {da: Afsluttet, en: Closed}
    final: true
escalation:
  - overdue: case
    action: notify
    to: caseworker
    message: {da: Sagen er over fristen., en: The case is overdue.}
  - overdue: review
    action: reassign
    to: lead
    message: {da: Gennemgangen er over fristen., en: The review is overdue.}
"""

FRISTER_PROCESS = """
process: frist-demo
extends: frister
title: {da: Fristdemo, en: Deadline demo}
legal_basis: [{title: {da: Testlov, en: Test act}, reference: § 3}]
classification: "01.02.05"
"""

RECEIPT_TEMPLATE = "Kvittering til {{ applicant_name }} om {{ subject }}, journalnummer {{ case.journal_number }}.\n"

# Friday 4 December 2026, 09:30 UTC, as the `clock` fixture starts.
START = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)

runner = CliRunner()


def load_frister(root: Path) -> LoadedDefinitions:
    (root / "skeletons" / "letters").mkdir(parents=True)
    (root / "processes" / "frister").mkdir(parents=True)
    (root / "skeletons" / "frister.yaml").write_text(FRISTER_SKELETON, encoding="utf-8")
    (root / "skeletons" / "letters" / "receipt.da.md.j2").write_text(RECEIPT_TEMPLATE, encoding="utf-8")
    (root / "processes" / "frister" / "frist-demo.yaml").write_text(FRISTER_PROCESS, encoding="utf-8")
    loaded = load_definitions(root)
    assert not loaded.errors, [problem.format("en") for problem in loaded.errors]
    return loaded


@pytest.fixture
def frister(tmp_path: Path, database: Database, services: Services) -> Sagsflow:
    """The engine with the `frist-demo` process deployed. Only the role admin can see every team's cases."""
    engine = Sagsflow(database, services, access=Access())
    engine.deploy(load_frister(tmp_path / "frister"), "test")
    return engine


# Helpers --------------------------------------------------------------------------------------


def submit_cites(service: Sagsflow, variant: int | None = None, actor: Any = APPLICANT) -> dict[str, Any]:
    application = example("01", variant)
    return service.submit(actor, application["process"], application["data"], "da")


OLES_ADDRESS = {"applicant_address": "Kajgade 1", "applicant_postcode": "8600", "applicant_city": "Silkeborg"}
POSTAL = {"address": "Kajgade 1", "postcode": "8600", "city": "Silkeborg"}


def submit_frister(service: Sagsflow, actor: Actor = CASEWORKER, **party: str) -> dict[str, Any]:
    """Submit a `frist-demo` case. The process names no team, so the case gets the submitter's first team."""
    data = {"applicant_name": "Ole Hansen", "subject": "Hegn mod naboen", **OLES_ADDRESS, **party}
    return service.submit(actor, "frist-demo", data, "da")


def worker_for(service: Sagsflow, name: str = "worker-1") -> Worker:
    return Worker(service.database, service.services, service.catalog, name=name)


def outbox_row(database: Database, case_id: int) -> OutboxMessage:
    with database.read() as session:
        return session.scalars(select(OutboxMessage).where(OutboxMessage.case_id == case_id)).one()


def attempts_of(database: Database, message_id: int) -> list[OutboxAttempt]:
    with database.read() as session:
        query = select(OutboxAttempt).where(OutboxAttempt.message_id == message_id).order_by(OutboxAttempt.id)
        return list(session.scalars(query))


def events_of(database: Database, case_id: int, command: str) -> list[CaseEvent]:
    with database.read() as session:
        query = select(CaseEvent).where(CaseEvent.case_id == case_id, CaseEvent.command == command)
        return list(session.scalars(query.order_by(CaseEvent.sequence)))


def notes_of(database: Database, case_id: int) -> list[str]:
    with database.read() as session:
        return list(session.scalars(select(CaseNote.text).where(CaseNote.case_id == case_id).order_by(CaseNote.id)))


def step_row(database: Database, case_id: int, step_id: str) -> CaseStep:
    with database.read() as session:
        query = select(CaseStep).where(CaseStep.case_id == case_id, CaseStep.step_id == step_id)
        return session.scalars(query.order_by(CaseStep.id.desc())).first() or pytest.fail(f"no step {step_id}")


def case_row(database: Database, case_id: int) -> Case:
    with database.read() as session:
        return session.get(Case, case_id) or pytest.fail(f"no case {case_id}")


def letter_status(service: Sagsflow, case_id: int, number: int) -> str:
    letters = {letter["number"]: letter for letter in service.list_letters(CASEWORKER, case_id)}
    status: str = letters[number]["status"]
    return status


def document_number(row: OutboxMessage) -> int:
    """Return the document number from an idempotency key of the form letter:<journal number>:<number>."""
    return int(row.idempotency_key.rsplit(":", 1)[1])


def run_racing(workers: list[Worker]) -> list[RoundReport]:
    """Run one round of each worker in its own thread, all started together, and re-raise a thread's error."""
    start = threading.Barrier(len(workers))
    reports: list[RoundReport | None] = [None] * len(workers)
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            start.wait(timeout=30)
            reports[index] = workers[index].run_round()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(index,)) for index in range(len(workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a worker thread did not finish within 120 s"
    if errors:
        raise errors[0]
    return [report for report in reports if report is not None]


@pytest.fixture
def second_database(database: Database) -> Iterator[Database]:
    """A second engine on the same database, as a second worker process would have."""
    other = Database(database.url)
    yield other
    other.dispose()


def record_sql(database: Database) -> list[str]:
    statements: list[str] = []

    def before_cursor_execute(_connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(database.engine, "before_cursor_execute", before_cursor_execute)
    return statements


# Two workers racing over one outbox -----------------------------------------------------------


class RecordingPost:
    """Digital post shared by racing workers: counts sends per message id and delays each send a moment.

    The first send of each thread waits until every worker is inside a send, so the test
    proves that the workers sent at the same time. If dispatch were serialised, the
    barrier would time out after 30 s and the letter would be retried, which the test sees.
    """

    def __init__(self, workers: int, hold_seconds: float = 0.005) -> None:
        self.sends: Counter[str] = Counter()
        self.senders: dict[str, set[str]] = {}
        self.hold_seconds = hold_seconds
        self._lock = threading.Lock()
        self._all_sending = threading.Barrier(workers, timeout=30)
        self._thread = threading.local()

    def is_exempt(self, id_type: str, number: str) -> bool:
        return False

    def send(self, message: PostMessage) -> str:
        if not getattr(self._thread, "started", False):
            self._thread.started = True
            self._all_sending.wait()
        with self._lock:
            self.sends[message.message_id] += 1
            self.senders.setdefault(message.message_id, set()).add(threading.current_thread().name)
        time.sleep(self.hold_seconds)
        return f"recorded-{message.message_id}"


LETTERS_IN_RACE = 30


def test_two_workers_send_each_letter_once(
    service: Sagsflow, database: Database, second_database: Database, services: Services
) -> None:
    cases = [submit_cites(service, variant) for variant in range(LETTERS_IN_RACE)]
    post = RecordingPost(workers=2)
    shared = dataclasses.replace(services, digital_post=post)
    statements = [record_sql(database), record_sql(second_database)]
    workers = [
        Worker(database, shared, name="worker-1"),
        Worker(second_database, shared, name="worker-2"),
    ]

    reports = run_racing(workers)

    with database.read() as session:
        rows = list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
        attempts = list(session.scalars(select(OutboxAttempt)))
    keys = {row.idempotency_key for row in rows}
    assert len(rows) == LETTERS_IN_RACE
    assert post.sends == Counter(dict.fromkeys(keys, 1))
    assert [row.status for row in rows] == ["sent"] * LETTERS_IN_RACE
    assert [row.attempts for row in rows] == [1] * LETTERS_IN_RACE
    assert sum(report.sent for report in reports) == LETTERS_IN_RACE
    assert sum(report.errors + report.retried + report.failed for report in reports) == 0
    assert Counter(attempt.message_id for attempt in attempts) == Counter(dict.fromkeys((row.id for row in rows), 1))
    assert all(attempt.succeeded and attempt.error is None for attempt in attempts)
    assert {attempt.worker for attempt in attempts} == {"worker-1", "worker-2"}
    for case in cases:
        assert len(events_of(database, case["id"], "letter_sent")) == 1
    claims = [statement for found in statements for statement in found if "FROM outbox" in statement]
    if database.is_postgresql:
        assert any("FOR UPDATE SKIP LOCKED" in statement for statement in claims)
    else:
        # SQLite has no row locks: each claim is a BEGIN IMMEDIATE transaction, so claims take turns.
        assert all("FOR UPDATE" not in statement for statement in claims)
        assert any(statement.startswith("BEGIN IMMEDIATE") for found in statements for statement in found)


def test_claim_skips_row_locked_by_another_worker(service: Sagsflow, database: Database, services: Services) -> None:
    if not database.is_postgresql:
        pytest.skip("SQLite has no row locks; BEGIN IMMEDIATE lets one claim run at a time")
    first, second = submit_cites(service, 1), submit_cites(service, 2)
    locked_id = outbox_row(database, first["id"]).id
    claimed: list[Any] = []

    with database.engine.connect() as other_worker, other_worker.begin():
        other_worker.execute(text("SELECT id FROM outbox WHERE id = :id FOR UPDATE"), {"id": locked_id})
        # Without SKIP LOCKED the claim would wait for the lock above, and the thread would not finish.
        thread = threading.Thread(target=lambda: claimed.append(claim_next(database, services, "worker-2")))
        thread.start()
        thread.join(timeout=20)
        assert not thread.is_alive(), "the claim waited for a locked outbox row"

    assert claimed[0] is not None
    assert claimed[0].message_id == outbox_row(database, second["id"]).id
    assert outbox_row(database, first["id"]).attempts == 0


def test_racing_workers_escalate_each_case_once(
    service: Sagsflow, database: Database, second_database: Database, services: Services, clock: Clock
) -> None:
    cases = [submit_cites(service, variant) for variant in range(10)]
    clock.advance(days=60)
    workers = [
        Worker(database, services, name="worker-1"),
        Worker(second_database, services, name="worker-2"),
    ]

    reports = run_racing(workers)
    again = workers[0].run_round()

    assert sum(report.escalations for report in reports) == len(cases)
    assert sum(report.errors for report in reports) == 0
    assert again.escalations == 0
    for case in cases:
        assert len(events_of(database, case["id"], "escalate")) == 1
        assert len(notes_of(database, case["id"])) == 1


# Failing adapters -----------------------------------------------------------------------------


class FlakyPost(MemoryDigitalPost):
    """Digital post that raises `error` for the first `failures` calls, then delivers."""

    def __init__(self, error: Exception, failures: int) -> None:
        super().__init__()
        self.error = error
        self.failures = failures

    def send(self, message: PostMessage) -> str:
        if self.failures > 0:
            self.failures -= 1
            self.calls += 1
            self.sends[message.message_id] = self.sends.get(message.message_id, 0) + 1
            raise self.error
        return super().send(message)


@pytest.mark.parametrize(
    "error",
    [
        DeliveryError("digital post answered 503 Service Unavailable"),
        TimeoutError("digital post did not answer within 30 seconds"),
    ],
    ids=["raises", "times-out"],
)
def test_failing_adapter_keeps_letter_queued(service: Sagsflow, clock: Clock, error: Exception) -> None:
    post = FlakyPost(error, failures=3)
    service.services.digital_post = post
    case = submit_cites(service)
    worker = worker_for(service)
    row = outbox_row(service.database, case["id"])
    delays: list[timedelta] = []

    for attempt in range(1, 4):
        report = worker.run_round()
        row = outbox_row(service.database, case["id"])
        assert (report.retried, report.sent, report.errors) == (1, 0, 0)
        assert row.status == "pending"
        assert row.attempts == attempt
        assert row.last_error == f"{type(error).__name__}: {error}"
        assert letter_status(service, case["id"], document_number(row)) == "queued"
        delays.append(row.next_attempt_at - clock.now)
        # One second before the backoff has passed, a round leaves the letter alone.
        clock.now = row.next_attempt_at - timedelta(seconds=1)
        assert worker.run_round().retried == 0
        assert post.calls == attempt
        clock.now = row.next_attempt_at

    report = worker.run_round()
    again = worker.run_round()

    assert delays == [timedelta(seconds=30), timedelta(seconds=60), timedelta(seconds=120)]
    assert report.sent == 1
    assert again.sent == 0
    assert post.sends == {row.idempotency_key: 4}
    assert list(post.delivered) == [row.idempotency_key]
    assert outbox_row(service.database, case["id"]).status == "sent"
    assert letter_status(service, case["id"], document_number(row)) == "sent"
    attempts = attempts_of(service.database, row.id)
    assert [attempt.succeeded for attempt in attempts] == [False, False, False, True]
    assert all(type(error).__name__ in (attempt.error or "") for attempt in attempts[:3])
    assert len(events_of(service.database, case["id"], "letter_sent")) == 1


def test_gives_up_after_max_attempts(service: Sagsflow, clock: Clock) -> None:
    post = FlakyPost(DeliveryError("digital post is down"), failures=10 * MAX_ATTEMPTS)
    service.services.digital_post = post
    case = submit_cites(service)
    worker = worker_for(service)

    reports = []
    for _ in range(MAX_ATTEMPTS):
        reports.append(worker.run_round())
        clock.advance(hours=2)
    after = worker.run_round()

    row = outbox_row(service.database, case["id"])
    assert [report.retried for report in reports] == [1] * (MAX_ATTEMPTS - 1) + [0]
    assert reports[-1].failed == 1
    assert row.status == "failed"
    assert row.attempts == MAX_ATTEMPTS
    assert row.last_error == "DeliveryError: digital post is down"
    assert after.failed == 0
    assert post.calls == MAX_ATTEMPTS
    assert len(attempts_of(service.database, row.id)) == MAX_ATTEMPTS


class WorkerKilled(BaseException):
    """Stands for the worker process dying. `deliver` catches only `Exception`, so this escapes the round."""


class DiesAfterAccept(MemoryDigitalPost):
    """Digital post that accepts the first message, then kills the worker before it records the result."""

    def __init__(self) -> None:
        super().__init__()
        self.kills_left = 1

    def send(self, message: PostMessage) -> str:
        receipt = super().send(message)
        if self.kills_left:
            self.kills_left -= 1
            raise WorkerKilled
        return receipt


def test_restart_after_crash_mid_send_delivers_once(service: Sagsflow, second_database: Database, clock: Clock) -> None:
    post = DiesAfterAccept()
    service.services.digital_post = post
    case = submit_cites(service)

    with pytest.raises(WorkerKilled):
        worker_for(service, "worker-1").run_round()
    row = outbox_row(service.database, case["id"])
    interrupted = attempts_of(service.database, row.id)
    restarted = Worker(second_database, service.services, name="worker-1-restarted")
    during_lease = restarted.run_round()
    clock.now += CLAIM_LEASE
    after_lease = restarted.run_round()
    later = restarted.run_round()

    assert row.status == "pending"
    assert [(attempt.succeeded, attempt.error) for attempt in interrupted] == [(False, INTERRUPTED)]
    assert during_lease.sent == 0
    assert after_lease.sent == 1
    assert later.sent == 0
    assert post.sends == {row.idempotency_key: 2}
    assert list(post.delivered) == [row.idempotency_key]
    sent = outbox_row(service.database, case["id"])
    assert sent.status == "sent"
    assert sent.receipt == f"memory-{row.idempotency_key}"
    attempts = attempts_of(service.database, row.id)
    assert [(attempt.worker, attempt.succeeded) for attempt in attempts] == [
        ("worker-1", False),
        ("worker-1-restarted", True),
    ]
    assert len(events_of(service.database, case["id"], "letter_sent")) == 1


@pytest.mark.parametrize("slow_result", ["accepted", "timed out"])
def test_send_past_lease_is_superseded(
    service: Sagsflow, post: MemoryDigitalPost, clock: Clock, slow_result: str
) -> None:
    """A send that outlasts the claim's lease lets another worker take the letter over, and it is still sent once."""
    case = submit_cites(service)
    slow_claim = claim_next(service.database, service.services, "slow-worker")
    assert slow_claim is not None
    clock.now += CLAIM_LEASE

    taken_over = dispatch_once(service.database, service.services, "fast-worker")
    if slow_result == "accepted":
        slow_delivery = deliver(slow_claim, service.services)
    else:
        slow_delivery = DeliveryResult("digital_post", None, "TimeoutError: no answer within 30 seconds", 30_000)
    slow_outcome = record_result(service.database, service.services, slow_claim, slow_delivery)

    row = outbox_row(service.database, case["id"])
    assert taken_over == "sent"
    assert slow_outcome == "superseded"
    assert row.status == "sent"
    assert row.attempts == 2
    assert row.last_error is None
    assert list(post.delivered) == [row.idempotency_key]
    assert [attempt.worker for attempt in attempts_of(service.database, row.id)] == ["slow-worker", "fast-worker"]
    assert len(events_of(service.database, case["id"], "letter_sent")) == 1


# Adapters ------------------------------------------------------------------------------------


def memo_message(message_id: str = "letter:2026-000001:2", **recipient: str) -> PostMessage:
    party = {"id_type": "CVR", "id": "90131443", "name": "Kragelund Terrarieimport ApS", **recipient}
    return PostMessage(
        message_id=message_id,
        label="Kvittering",
        sender=Party("CVR", "25798376", "Miljøstyrelsen"),
        recipient=Party(party["id_type"], party["id"], party["name"], **POSTAL),
        case_reference="2026-000001",
        classification="09.05.02",
        created=START.isoformat(),
        main_document_title="Kvittering",
        main_document_text="Vi har modtaget din ansøgning.",
        main_document_html=None,
    )


def test_mailbox_writes_each_message_once(tmp_path: Path) -> None:
    mailbox = MailboxDigitalPost(tmp_path / "post")
    message = memo_message()

    first = mailbox.send(message)
    second = mailbox.send(dataclasses.replace(message, main_document_text="changed"))

    files = list((tmp_path / "post").iterdir())
    assert first == second
    assert [path.name for path in files] == ["letter_2026-000001_2.json"]
    stored = json.loads(files[0].read_text(encoding="utf-8"))
    assert stored["MessageBody"]["MainDocument"]["File"][0]["content"] == "Vi har modtaget din ansøgning."


def test_mailbox_rejects_exempt_recipients(tmp_path: Path) -> None:
    exempt_file = tmp_path / "exempt.txt"
    exempt_file.write_text("# fritaget for digital post\n\n010190-1234\n", encoding="utf-8")
    mailbox = MailboxDigitalPost(tmp_path / "post", exempt_file)

    with pytest.raises(RecipientExempt, match="exempt from digital post"):
        mailbox.send(memo_message(id_type="CPR", id="0101901234"))
    with pytest.raises(RecipientExempt, match="no CVR or CPR number"):
        mailbox.send(memo_message(id_type="NONE", id=""))
    receipt = mailbox.send(memo_message())

    assert receipt == "fake-letter:2026-000001:2"
    assert [path.name for path in (tmp_path / "post").iterdir()] == ["letter_2026-000001_2.json"]


def test_print_service_rejects_letter_without_address(tmp_path: Path) -> None:
    printer = FolderPhysicalMail(tmp_path / "print")
    message = memo_message(id_type="NONE", id="", name="Ole Hansen")
    unaddressed = dataclasses.replace(message, recipient=Party("NONE", "", "Ole Hansen"))

    with pytest.raises(DeliveryError, match="no postal address"):
        printer.send(unaddressed)

    assert not (tmp_path / "print").exists()


def test_print_folder_writes_each_job_once(tmp_path: Path) -> None:
    printer = FolderPhysicalMail(tmp_path / "print")
    message = memo_message(id_type="NONE", id="", name="Ole Hansen")

    first = printer.send(message)
    second = printer.send(message)

    files = list((tmp_path / "print").iterdir())
    job = json.loads(files[0].read_text(encoding="utf-8"))
    assert first == second == "print-letter:2026-000001:2"
    assert len(files) == 1
    assert job["recipient"] == {"id": "", "idType": "NONE", "name": "Ole Hansen", **POSTAL}
    assert job["caseReference"] == "2026-000001"
    assert job["text"] == "Vi har modtaget din ansøgning."


# The MeMo-shaped message ------------------------------------------------------------------------


def test_memo_message_has_header_and_body(service: Sagsflow, post: MemoryDigitalPost) -> None:
    case = submit_cites(service)
    row = outbox_row(service.database, case["id"])

    worker_for(service).run_round()

    document = service.get_document(CASEWORKER, case["id"], document_number(row))
    memo = post.delivered[row.idempotency_key].as_memo()
    header: dict[str, Any] = memo["MessageHeader"]  # type: ignore[assignment]
    body: dict[str, Any] = memo["MessageBody"]  # type: ignore[assignment]
    assert header["messageUUID"] == row.idempotency_key
    assert header["label"] == document["title"]
    assert header["Sender"] == {"senderID": "25798376", "idType": "CVR", "label": "Miljøstyrelsen"}
    assert header["Recipient"] == {
        "recipientID": "90131443",
        "idType": "CVR",
        "label": "Kragelund Terrarieimport ApS",
    }
    assert header["ContentData"] == {"caseReference": case["journal_number"], "classification": "09.05.02"}
    main = body["MainDocument"]
    assert main["label"] == document["title"]
    assert main["File"][0] == {"encodingFormat": "text/plain", "language": "da", "content": document["text"]}
    assert main["File"][1]["encodingFormat"] == "text/html"
    assert main["File"][1]["content"] == document["html"]
    assert case["journal_number"] in document["text"]


def test_cpr_recipient_gets_digital_post(frister: Sagsflow, post: MemoryDigitalPost) -> None:
    case = submit_frister(frister, applicant_cpr="010190-1234")
    row = outbox_row(frister.database, case["id"])

    worker_for(frister).run_round()

    header: dict[str, Any] = post.delivered[row.idempotency_key].as_memo()["MessageHeader"]  # type: ignore[assignment]
    assert header["Recipient"] == {"recipientID": "010190-1234", "idType": "CPR", "label": "Ole Hansen"}
    assert header["ContentData"] == {"caseReference": case["journal_number"], "classification": "01.02.05"}


# Physical mail --------------------------------------------------------------------------------


def print_jobs(service: Sagsflow) -> MemoryPhysicalMail:
    printer = service.services.physical_mail
    assert isinstance(printer, MemoryPhysicalMail)
    return printer


def test_exempt_recipient_gets_physical_mail(service: Sagsflow) -> None:
    post = MemoryDigitalPost(exempt=["9013 1443"])
    service.services.digital_post = post
    case = submit_cites(service)
    row = outbox_row(service.database, case["id"])

    report = worker_for(service).run_round()

    sent = outbox_row(service.database, case["id"])
    assert report.sent == 1
    assert list(print_jobs(service).jobs) == [row.idempotency_key]
    assert post.delivered == {}
    assert sent.channel == "physical_mail"
    assert sent.receipt == f"print-{row.idempotency_key}"
    assert letter_status(service, case["id"], document_number(row)) == "sent"
    (letter_sent,) = events_of(service.database, case["id"], "letter_sent")
    assert letter_sent.changes["documents"][0]["channel"] == "physical_mail"


def test_recipient_without_number_gets_physical_mail(frister: Sagsflow, post: MemoryDigitalPost, clock: Clock) -> None:
    case = submit_frister(frister)
    row = outbox_row(frister.database, case["id"])
    printer = print_jobs(frister)
    printer.failures_left = 1
    worker = worker_for(frister)

    failed = worker.run_round()
    retry = outbox_row(frister.database, case["id"])
    clock.now = retry.next_attempt_at
    report = worker.run_round()

    document = frister.get_document(CASEWORKER, case["id"], document_number(row))
    job = printer.jobs[row.idempotency_key]
    assert failed.retried == 1
    assert retry.channel == "physical_mail"
    assert report.sent == 1
    assert post.calls == 0
    assert printer.sends == {row.idempotency_key: 2}
    assert job.recipient == Party("NONE", "", "Ole Hansen", **POSTAL)
    assert job.case_reference == case["journal_number"]
    assert job.main_document_text == document["text"]


# Listing the physical-mail queue over HTTP ----------------------------------------------------


@pytest.fixture
def mail_client(service: Sagsflow) -> Iterator[TestClient]:
    app = create_app(service, Settings(), dispatch_interval=0)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_physical_mail_route_lists_letters(
    service: Sagsflow, frister: Sagsflow, tokens: Tokens, mail_client: TestClient, clock: Clock
) -> None:
    service.add_user(ADMIN, "ole", ["caseworker"], ["skov"])
    service.add_user(ADMIN, "adda", ["admin"], [])
    # Neither party has a CVR or CPR number; the cases belong to the teams of their submitters.
    case = submit_frister(frister)
    other = submit_frister(frister, Actor("ole", frozenset({"caseworker"}), ("skov",)))
    worker_for(frister).run_round()
    row = outbox_row(service.database, case["id"])

    listed = mail_client.get("/physical-mail", headers=Tokens.header(tokens.caseworker))
    sent_only = mail_client.get("/physical-mail?status=sent", headers=Tokens.header(tokens.caseworker))
    pending_only = mail_client.get("/physical-mail?status=pending", headers=Tokens.header(tokens.caseworker))
    other_team = mail_client.get("/physical-mail", headers=Tokens.header(service.create_token("ole")))
    admin = mail_client.get("/physical-mail", headers=Tokens.header(service.create_token("adda")))
    approver = mail_client.get("/physical-mail", headers=Tokens.header(tokens.approver))
    applicant = mail_client.get("/physical-mail", headers=Tokens.header(tokens.applicant))
    anonymous = mail_client.get("/physical-mail")
    bad_status = mail_client.get("/physical-mail?status=printed", headers=Tokens.header(tokens.caseworker))

    assert listed.status_code == 200
    items = listed.json()["items"]
    assert [item["case"]["journal_number"] for item in items] == [case["journal_number"]]
    assert items[0]["document"] == {"number": document_number(row), "title": "Kvittering"}
    assert items[0]["recipient"] == {"id_type": "NONE", "id": "", "name": "Ole Hansen", **POSTAL}
    assert items[0]["status"] == "sent"
    assert items[0]["receipt"] == f"print-{row.idempotency_key}"
    assert items[0]["sent_at"] == clock.now.isoformat()
    assert len(sent_only.json()["items"]) == 1
    assert pending_only.json()["items"] == []
    assert [item["case"]["id"] for item in other_team.json()["items"]] == [other["id"]]
    assert [item["case"]["id"] for item in admin.json()["items"]] == [case["id"], other["id"]]
    assert approver.status_code == 403
    assert approver.json()["error"]["code"] == "missing_role"
    assert applicant.status_code == 403
    assert anonymous.status_code == 401
    assert bad_status.status_code == 422


# Timers ---------------------------------------------------------------------------------------


def test_timer_fires_when_due_not_before(frister: Sagsflow, clock: Clock) -> None:
    case = submit_frister(frister)
    worker = worker_for(frister)
    timer = step_row(frister.database, case["id"], "cooling_off_timer")

    at_start = worker.run_round()
    clock.now = timer.due_at - timedelta(seconds=1) if timer.due_at else START
    just_before = worker.run_round()
    waiting = step_row(frister.database, case["id"], "cooling_off_timer")
    clock.now = timer.due_at or START
    due = worker.run_round()
    again = worker.run_round()

    fired = step_row(frister.database, case["id"], "cooling_off_timer")
    view = frister.get_case(CASEWORKER, case["id"], "en")
    # Three calendar days from Friday 4 December: the end of Monday 7 December in Copenhagen.
    assert timer.due_at == datetime(2026, 12, 7, 22, 59, 59, tzinfo=UTC)
    assert timer.status == "waiting"
    assert (at_start.timers, just_before.timers, due.timers, again.timers) == (0, 0, 1, 0)
    assert waiting.status == "waiting"
    assert (fired.status, fired.outcome, fired.completed_by) == ("done", "elapsed", "system")
    assert view["phase"]["id"] == "review"
    (elapsed,) = events_of(frister.database, case["id"], "timer_elapsed")
    assert elapsed.actor == "system"
    assert elapsed.changes["phases"] == [["cooling_off", "review"]]


# Escalation -----------------------------------------------------------------------------------


def test_overdue_case_escalates_once(service: Sagsflow, clock: Clock) -> None:
    case = submit_cites(service)
    worker = worker_for(service)
    clock.advance(days=55)
    on_time = worker.run_round()
    clock.advance(days=5)

    reports = [worker.run_round() for _ in range(3)]

    stored = case_row(service.database, case["id"])
    notes = notes_of(service.database, case["id"])
    escalations = events_of(service.database, case["id"], "escalate")
    assert on_time.escalations == 0
    assert [report.escalations for report in reports] == [1, 0, 0]
    assert stored.escalated_at == clock.now
    assert len(notes) == 1
    assert notes[0].startswith("@caseworker: Sagsbehandlingsfristen er overskredet.")
    assert len(escalations) == 1
    assert escalations[0].actor == "system"
    assert escalations[0].changes["escalations"] == [{"overdue": "case", "action": "notify", "to": "caseworker"}]
    with service.database.read() as session:
        assert verify_chain(session, case["id"]).ok


def test_overdue_step_escalates_once(service: Sagsflow, clock: Clock) -> None:
    case = submit_cites(service)
    service.complete_step(
        CASEWORKER,
        case["id"],
        "completeness_check",
        {"application_complete": False, "missing_information": "Kopi af eksporttilladelsen."},
        None,
        "da",
    )
    worker = worker_for(service)
    # cites-import gives the applicant 21 calendar days, until Monday 28 December (25 December is a holiday).
    clock.advance(days=24)
    on_time = worker.run_round()
    clock.advance(days=1)

    step_reports = [worker.run_round() for _ in range(2)]
    clock.advance(days=35)
    case_reports = [worker.run_round() for _ in range(2)]

    step = step_row(service.database, case["id"], "information_received")
    escalations = events_of(service.database, case["id"], "escalate")
    assert [report.escalations for report in [on_time, *step_reports, *case_reports]] == [0, 1, 0, 1, 0]
    assert step.escalated_at == START + timedelta(days=25)
    assert [event.changes["escalations"] for event in escalations] == [
        [{"overdue": "information_received", "action": "notify", "to": "caseworker"}],
        [{"overdue": "case", "action": "notify", "to": "caseworker"}],
    ]
    assert len(notes_of(service.database, case["id"])) == 2


def test_reassign_escalation_sets_assignee(frister: Sagsflow, clock: Clock) -> None:
    case = submit_frister(frister)
    worker = worker_for(frister)
    clock.now = datetime(2026, 12, 8, 9, 30, tzinfo=UTC)
    worker.run_round()  # fires the timer, so the review is due at the end of 10 December
    clock.now = datetime(2026, 12, 11, 9, 30, tzinfo=UTC)

    step_rounds = [worker.run_round() for _ in range(2)]
    review = step_row(frister.database, case["id"], "review")
    clock.now = datetime(2026, 12, 15, 9, 30, tzinfo=UTC)
    case_round = worker.run_round()

    escalations = events_of(frister.database, case["id"], "escalate")
    assert [report.escalations for report in step_rounds] == [1, 0]
    assert case_round.escalations == 1
    assert review.assignee == "lead"
    assert case_row(frister.database, case["id"]).assignee is None
    assert [event.changes["escalations"] for event in escalations] == [
        [{"overdue": "review", "action": "reassign", "to": "lead"}],
        [{"overdue": "case", "action": "notify", "to": "caseworker"}],
    ]
    assert notes_of(frister.database, case["id"]) == ["@caseworker: Sagen er over fristen."]


# Overdue work over HTTP -----------------------------------------------------------------------


def test_overdue_route_lists_cases_and_steps(
    service: Sagsflow, tokens: Tokens, client: TestClient, clock: Clock
) -> None:
    case = submit_cites(service, actor=CASEWORKER)
    service.complete_step(
        CASEWORKER,
        case["id"],
        "completeness_check",
        {"application_complete": False, "missing_information": "Kopi af eksporttilladelsen."},
        None,
        "da",
    )
    service.add_user(ADMIN, "ole", ["caseworker"], ["skov"])
    before = client.get("/overdue", headers=Tokens.header(tokens.caseworker))
    clock.now = datetime(2027, 2, 3, 9, 30, tzinfo=UTC)

    listed = client.get("/overdue", headers=Tokens.header(tokens.caseworker, "en"))
    other_team = client.get("/overdue", headers=Tokens.header(service.create_token("ole")))
    applicant = client.get("/overdue", headers=Tokens.header(tokens.applicant))
    anonymous = client.get("/overdue")

    assert before.json() == {"cases": [], "steps": []}
    assert listed.status_code == 200
    (overdue_case,) = listed.json()["cases"]
    (overdue_step,) = listed.json()["steps"]
    # Eight weeks from Friday 4 December 2026 end on Friday 29 January 2027, five days before 3 February.
    assert overdue_case["journal_number"] == case["journal_number"]
    assert overdue_case["processing_deadline"] == "2027-01-29T22:59:59+00:00"
    assert overdue_case["days_overdue"] == 5
    assert overdue_case["phase"] == {"id": "awaiting_information", "label": "Awaiting information"}
    # cites-import's 21 calendar days from 4 December end on 25 December, a public holiday, so the
    # step is due on Monday 28 December, 37 days before 3 February.
    assert overdue_step["case"]["journal_number"] == case["journal_number"]
    assert overdue_step["step"] == "information_received"
    assert overdue_step["label"] == "Record the information received"
    assert overdue_step["role"] == "caseworker"
    assert overdue_step["due_at"] == "2026-12-28T22:59:59+00:00"
    assert overdue_step["days_overdue"] == 37
    assert overdue_step["escalated_at"] is None
    assert other_team.json() == {"cases": [], "steps": []}
    assert applicant.status_code == 403
    assert applicant.json()["error"]["code"] == "staff_only"
    assert anonymous.status_code == 401


# The CLI --------------------------------------------------------------------------------------


@pytest.fixture
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    return {
        "SAGSFLOW_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "SAGSFLOW_DEFINITIONS": str(REPOSITORY),
        "SAGSFLOW_DIGITAL_POST_DIR": str(tmp_path / "post"),
        "SAGSFLOW_LANGUAGE": "da",
    }


def invoke(environment: dict[str, str], *arguments: str) -> tuple[int, str]:
    result = runner.invoke(cli_app, list(arguments), env=environment)
    return result.exit_code, result.output


def submit_in_2020(environment: dict[str, str]) -> dict[str, Any]:
    """Set up the CLI's database with one case received in January 2020, long overdue by the real clock."""
    assert invoke(environment, "db", "upgrade")[0] == 0
    assert invoke(environment, "deploy")[0] == 0
    database = Database(environment["SAGSFLOW_DATABASE_URL"])
    clock = Clock(now=datetime(2020, 1, 6, 9, 0, tzinfo=UTC))
    service = Sagsflow(
        database, Services(OfflineSpeciesPlus(), FakeCompanyRegister(), MemoryDigitalPost(), clock=clock)
    )
    case = submit_cites(service)
    database.dispose()
    return case


def test_cli_worker_once_and_overdue(environment: dict[str, str], tmp_path: Path) -> None:
    case = submit_in_2020(environment)
    handlers = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))

    before = invoke(environment, "overdue")
    before_json = invoke(environment, "overdue", "--json")
    first = invoke(environment, "worker", "--once")
    second = invoke(environment, "worker", "--once")
    after = invoke(environment, "overdue", "--json")

    assert before[0] == 0
    assert "Sager over sagsbehandlingsfristen:" in before[1]
    assert case["journal_number"] in before[1]
    assert "1 sag og 0 trin over fristen." in before[1]
    (listed,) = json.loads(before_json[1])["cases"]
    assert listed["days_overdue"] > 365
    assert listed["escalated_at"] is None
    assert first[0] == 0
    assert second[0] == 0
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers
    mailbox = list((tmp_path / "post").iterdir())
    assert [path.name.startswith(f"letter_{case['journal_number']}_") for path in mailbox] == [True]
    memo = json.loads(mailbox[0].read_text(encoding="utf-8"))
    assert memo["MessageHeader"]["ContentData"]["caseReference"] == case["journal_number"]
    (escalated,) = json.loads(after[1])["cases"]
    assert escalated["escalated_at"] is not None
    database = Database(environment["SAGSFLOW_DATABASE_URL"])
    try:
        assert len(notes_of(database, case["id"])) == 1
        assert outbox_row(database, case["id"]).status == "sent"
    finally:
        database.dispose()


def test_cli_overdue_when_nothing_is_overdue(environment: dict[str, str]) -> None:
    assert invoke(environment, "db", "upgrade")[0] == 0

    code, output = invoke(environment, "--lang", "en", "overdue")

    assert code == 0
    assert output == "Nothing is overdue.\n"


def test_cli_lists_physical_mail(environment: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "digital-post-exempt.txt").write_text("90131443\n", encoding="utf-8")
    case = submit_in_2020(environment)

    empty = invoke(environment, "physical-mail")
    worked = invoke(environment, "worker", "--once")
    listed = invoke(environment, "physical-mail")
    as_json = invoke(environment, "physical-mail", "--json")
    pending = invoke(environment, "physical-mail", "--status", "pending")
    bad_status = invoke(environment, "physical-mail", "--status", "printed")

    assert empty == (0, "Ingen breve til fysisk post.\n")
    assert worked[0] == 0
    assert not (tmp_path / "post").exists() or list((tmp_path / "post").iterdir()) == []
    assert len(list((tmp_path / "physical-mail").iterdir())) == 1
    assert listed[0] == 0
    assert case["journal_number"] in listed[1]
    assert "Kragelund Terrarieimport ApS (CVR 90131443)  sendt til print" in listed[1]
    assert listed[1].endswith("1 brev.\n")
    (item,) = json.loads(as_json[1])
    assert item["status"] == "sent"
    assert item["receipt"].startswith("print-letter:")
    assert pending == (0, "Ingen breve til fysisk post.\n")
    assert bad_status[0] == 2
