"""Payments: the fake Navision Stat, vouchers, and bookings through the outbox, exactly once.

The tests that take `service` run on SQLite and on PostgreSQL. The bookings are queued on
a CITES case, as they would be on a grant application.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

import cli.main
from cli.main import app as cli_app
from engine.adapters.finance import (
    Creditor,
    FakeNavisionStat,
    FinanceUnavailable,
    InsufficientBalance,
    InvalidVoucher,
    KeyReused,
    NemKontoRegister,
    NoNemKonto,
    Voucher,
    shipped_nemkonto_register,
)
from engine.errors import ProcessFault
from engine.runtime.audit import verify_chain
from engine.runtime.outbox import CLAIM_LEASE, INTERRUPTED, MAX_ATTEMPTS, list_outbox
from engine.runtime.payments import (
    FINANCE,
    booked_amounts,
    finance_messages,
    kroner,
    queue_finance,
    reconcile,
)
from engine.runtime.services import Services
from engine.runtime.worker import RoundReport, Worker
from engine.service import Sagsflow
from engine.settings import Settings
from engine.storage.database import Database
from engine.storage.tables import CaseEvent, OutboxAttempt, OutboxMessage
from tests.conftest import Clock
from tests.helpers import APPLICANT, Tokens, example

ACCOUNT = "23.22.01.10"
POOL = "N2000-2026-R1"
KRAGELUND = {"id_type": "CVR", "number": "90131443", "name": "Kragelund Terrarieimport ApS"}
# Listed in engine/adapters/data/nemkonto_fake.csv without a NemKonto.
WITHOUT_NEMKONTO = {"id_type": "CVR", "number": "92001644", "name": "Nystartet Naturpleje ApS"}

runner = CliRunner()


# Helpers --------------------------------------------------------------------------------------


@pytest.fixture
def finance(service: Sagsflow, clock: Clock) -> FakeNavisionStat:
    fake = FakeNavisionStat(clock=clock)
    service.services.finance = fake
    return fake


def submit_case(service: Sagsflow, variant: int | None = None) -> dict[str, Any]:
    """Submit a CITES case and deliver its receipt letter, so the outbox holds only what a test queues."""
    application = example("01", variant)
    case = service.submit(APPLICANT, application["process"], application["data"], "da")
    service.dispatch_outbox()
    return case


def voucher(
    amount: int, text: str = "Tilskud til naturpleje", creditor: dict[str, str] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"account": ACCOUNT, "amount": amount, "dimension": POOL, "text": text}
    if creditor is not None:
        body["creditor"] = creditor
    return body


def queue(
    service: Sagsflow,
    case: dict[str, Any],
    operation: Any,
    amount: int,
    key: str,
    creditor: dict[str, str] | None = None,
) -> int:
    """Queue a booking in a transaction of its own, as an action's command would; return the message id."""
    with service.database.write() as session:
        message = queue_finance(
            session,
            case["id"],
            case["journal_number"],
            service.services.clock(),
            operation,
            voucher(amount, creditor=creditor),
            key,
        )
        session.flush()
        return message.id


def worker_for(service: Sagsflow, name: str = "worker-1") -> Worker:
    return Worker(service.database, service.services, service.catalog, name=name)


def message_row(service: Sagsflow, message_id: int) -> OutboxMessage:
    with service.database.read() as session:
        row = session.get(OutboxMessage, message_id)
        assert row is not None
        return row


def attempts_of(service: Sagsflow, message_id: int) -> list[OutboxAttempt]:
    with service.database.read() as session:
        query = select(OutboxAttempt).where(OutboxAttempt.message_id == message_id).order_by(OutboxAttempt.id)
        return list(session.scalars(query))


def events_of(service: Sagsflow, case_id: int, command: str) -> list[CaseEvent]:
    with service.database.read() as session:
        query = select(CaseEvent).where(CaseEvent.case_id == case_id, CaseEvent.command == command)
        return list(session.scalars(query.order_by(CaseEvent.sequence)))


def chain_ok(service: Sagsflow, case_id: int) -> bool:
    with service.database.read() as session:
        return verify_chain(session, case_id).ok


# Vouchers -------------------------------------------------------------------------------------


def test_voucher_round_trips_through_json() -> None:
    original = Voucher(ACCOUNT, 1_250_000, POOL, "Udbetaling 2026-000001", "2026-000001", Creditor.from_dict(KRAGELUND))

    again = Voucher.from_dict(json.loads(json.dumps(original.as_dict())))

    assert again == original
    assert again.as_dict()["creditor"] == KRAGELUND


def test_voucher_reports_every_invalid_field() -> None:
    with pytest.raises(InvalidVoucher) as raised:
        Voucher.from_dict(
            {
                "account": "23-22-01",
                "amount": 1250.5,
                "dimension": "",
                "text": "x" * 51,
                "journal_number": "2026-000001",
                "creditor": {"id_type": "IBAN", "number": "DK50", "name": ""},
            }
        )

    english = [problem.en for problem in raised.value.problems]
    assert english == [
        "The account '23-22-01' is not a Finance Act account of the form 23.22.01.10.",
        "The amount must be a whole number of øre above 0, not 1250.5.",
        "The dimension (scheme or pool) is missing.",
        "The voucher text '" + "x" * 51 + "' must be one line of at most 50 characters; it has 51.",
        "The creditor's id type 'IBAN' is unknown; use CVR, CPR or SE.",
        "The creditor's name is missing.",
    ]
    assert str(raised.value).startswith("The voucher is invalid: The account '23-22-01'")
    assert raised.value.text.da.startswith("Bilaget er ugyldigt: Kontoen '23-22-01'")


@pytest.mark.parametrize("amount", [0, -100, True, 12.5, "1250000"], ids=["zero", "negative", "bool", "float", "text"])
def test_voucher_amount_must_be_positive_ore(amount: Any) -> None:
    with pytest.raises(InvalidVoucher, match="whole number of øre above 0"):
        Voucher(ACCOUNT, amount, POOL, "Tilskud", "2026-000001")


def test_voucher_lists_unknown_and_missing_keys() -> None:
    with pytest.raises(InvalidVoucher) as raised:
        Voucher.from_dict({"account": ACCOUNT, "amount": 100, "kroner": 1, "text": "Tilskud"})

    assert [problem.en for problem in raised.value.problems] == [
        "Unknown fields in the voucher: kroner; allowed are account, amount, dimension, text, journal_number, "
        "creditor.",
        "Fields are missing in the voucher: dimension, journal_number.",
    ]


def test_creditor_cpr_stays_out_of_messages() -> None:
    with pytest.raises(InvalidVoucher) as raised:
        Creditor("CPR", "0101-90-12345", "Ole Hansen")

    assert raised.value.problems[0].en == "The creditor's CPR number must have the form DDMMYY-XXXX."
    assert "0101" not in str(raised.value)
    assert Creditor("CPR", "010190-1234", "Ole Hansen").describe() == "the creditor's CPR number"


def test_creditor_accepts_id_as_number() -> None:
    creditor = Creditor.from_dict({"id_type": "CVR", "id": "90131443", "name": "Kragelund Terrarieimport ApS"})

    assert creditor == Creditor.from_dict(KRAGELUND)


def test_payment_needs_creditor() -> None:
    plain = Voucher(ACCOUNT, 100, POOL, "Udbetaling", "2026-000001")

    with pytest.raises(InvalidVoucher, match="A payment needs a creditor"):
        plain.check_for("pay")
    with pytest.raises(InvalidVoucher, match="The operation 'refund' is unknown"):
        plain.check_for("refund")


def test_kroner_is_exact() -> None:
    assert [kroner(amount) for amount in (1, 100, 1_250_050, 0, -5)] == ["0.01", "1.00", "12500.50", "0.00", "-0.05"]


# The NemKonto register ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("id_type", "number", "expected"),
    [
        ("CVR", "90131443", True),  # listed with an account
        ("CVR", "95918662", False),  # listed: the company has ceased
        ("CVR", "92001644", False),  # listed: no NemKonto chosen yet
        ("CVR", "91312220", True),  # not listed; passes the modulus-11 check
        ("CVR", "91312221", False),  # not listed; fails the modulus-11 check
        ("SE", "92002055", True),
        ("SE", "92003973", False),
        ("SE", "12345678", True),  # not listed; 8 digits
        ("CPR", "010190-1234", True),
        ("CPR", "1503622417", False),  # listed without an account; the hyphen does not matter
        ("CPR", "241280-1234", True),  # not listed; a valid birth date
        ("CPR", "311380-1234", False),  # not listed; the 31st of the 13th month
    ],
)
def test_nemkonto_register_rule(id_type: Any, number: str, expected: bool) -> None:
    register = shipped_nemkonto_register()

    assert register.has_account(Creditor(id_type, number, "Modtager")) is expected


def test_nemkonto_csv_errors_name_line() -> None:
    text = "id_type,number,nemkonto,note\nCVR,90131443,yes,\nCVR,90131443,maybe,\n"

    with pytest.raises(ValueError, match=r"test.csv, line 3: invalid nemkonto 'maybe'. Expected yes or no"):
        NemKontoRegister.from_csv(text, "test.csv")


# The fake Navision Stat -----------------------------------------------------------------------


def fake_voucher(amount: int, creditor: dict[str, str] | None = None, journal_number: str = "2026-000001") -> Voucher:
    return Voucher(
        ACCOUNT, amount, POOL, "Tilskud", journal_number, Creditor.from_dict(creditor) if creditor is not None else None
    )


def test_fake_books_once_per_key() -> None:
    fake = FakeNavisionStat()

    first = fake.reserve(fake_voucher(500_000), "finance:reserve:1")
    again = fake.reserve(fake_voucher(500_000), "finance:reserve:1")
    other = fake.reserve(fake_voucher(500_000), "finance:reserve:2")

    assert first == again == "NS-00000001"
    assert other == "NS-00000002"
    assert [transaction.receipt for transaction in fake.transactions()] == ["NS-00000001", "NS-00000002"]
    assert fake.requests == Counter({"finance:reserve:1": 2, "finance:reserve:2": 1})
    booking = fake.booking("finance:reserve:1")
    assert booking is not None
    assert (booking.operation, booking.amount) == ("reserve", 500_000)
    assert fake.booking("finance:unknown") is None


def test_fake_rejects_key_reused_for_other_voucher() -> None:
    fake = FakeNavisionStat()
    fake.reserve(fake_voucher(500_000), "finance:1")

    with pytest.raises(KeyReused, match="finance:1 was booked as reserve NS-00000001 with another voucher"):
        fake.reserve(fake_voucher(400_000), "finance:1")
    with pytest.raises(KeyReused):
        fake.commit(fake_voucher(500_000), "finance:1")

    assert len(fake.transactions()) == 1


def test_fake_keeps_case_balances() -> None:
    fake = FakeNavisionStat()

    fake.reserve(fake_voucher(1_800_000), "finance:reserve")
    fake.commit(fake_voucher(1_700_000), "finance:commit")
    after_commit = fake.balance("2026-000001", ACCOUNT, POOL)
    fake.pay(fake_voucher(1_600_000, KRAGELUND), "finance:pay")
    fake.release(fake_voucher(100_000), "finance:release")

    assert (after_commit.reserved, after_commit.committed, after_commit.released) == (0, 1_700_000, 100_000)
    final = fake.balance("2026-000001", ACCOUNT, POOL)
    assert (final.reserved, final.committed, final.paid, final.released) == (0, 0, 1_600_000, 200_000)
    assert fake.balance("2026-000002", ACCOUNT, POOL).paid == 0


def test_fake_refuses_payment_beyond_commitment() -> None:
    fake = FakeNavisionStat()
    fake.commit(fake_voucher(1_000_000), "finance:commit")

    with pytest.raises(InsufficientBalance, match=r"has 1000000 øre committed on 23\.22\.01\.10"):
        fake.pay(fake_voucher(1_000_001, KRAGELUND), "finance:pay")
    with pytest.raises(InsufficientBalance, match="has 0 øre reserved or committed"):
        fake.release(fake_voucher(1, journal_number="2026-000002"), "finance:release")

    assert [transaction.operation for transaction in fake.transactions()] == ["commit"]


def test_fake_refuses_creditor_without_nemkonto() -> None:
    fake = FakeNavisionStat()
    fake.commit(fake_voucher(1_000_000), "finance:commit")
    person = {"id_type": "CPR", "number": "150362-2417", "name": "Ole Hansen"}

    with pytest.raises(NoNemKonto, match="NemKonto has no account for CVR 92001644"):
        fake.pay(fake_voucher(100_000, WITHOUT_NEMKONTO), "finance:pay:1")
    with pytest.raises(NoNemKonto) as raised:
        fake.pay(fake_voucher(100_000, person), "finance:pay:2")

    assert "the creditor's CPR number" in str(raised.value)
    assert "150362" not in str(raised.value)
    assert len(fake.transactions()) == 1


def test_fake_fails_next_calls_on_request() -> None:
    fake = FakeNavisionStat()
    fake.failures_left = 2

    for _ in range(2):
        with pytest.raises(FinanceUnavailable, match="simulated outage"):
            fake.reserve(fake_voucher(100), "finance:1")
    receipt = fake.reserve(fake_voucher(100), "finance:1")

    assert receipt == "NS-00000001"
    assert fake.requests["finance:1"] == 3


def test_fake_lists_transactions_of_one_case() -> None:
    fake = FakeNavisionStat()
    fake.reserve(fake_voucher(100, journal_number="2026-000001"), "finance:1")
    fake.reserve(fake_voucher(200, journal_number="2026-000002"), "finance:2")

    assert [transaction.key for transaction in fake.transactions("2026-000002")] == ["finance:2"]
    assert len(fake.transactions()) == 2


def test_fake_file_survives_restart(tmp_path: Path) -> None:
    path = tmp_path / "finance" / "transactions.jsonl"
    first = FakeNavisionStat(path)
    receipt = first.reserve(fake_voucher(500_000), "finance:1")

    restarted = FakeNavisionStat(path)
    again = restarted.reserve(fake_voucher(500_000), "finance:1")
    other = restarted.commit(fake_voucher(500_000), "finance:2")

    assert again == receipt == "NS-00000001"
    assert other == "NS-00000002"
    assert len(path.read_text(encoding="utf-8").splitlines()) == 2
    # The first instance reads what the second appended before it books again.
    assert first.commit(fake_voucher(500_000), "finance:2") == "NS-00000002"
    assert [transaction.receipt for transaction in first.transactions()] == ["NS-00000001", "NS-00000002"]
    assert first.balance("2026-000001", ACCOUNT, POOL).committed == 500_000


def test_fake_file_drops_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "transactions.jsonl"
    FakeNavisionStat(path).reserve(fake_voucher(500_000), "finance:1")
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"receipt": "NS-00000002", "key": "fin')

    restarted = FakeNavisionStat(path)
    receipt = restarted.reserve(fake_voucher(100), "finance:2")

    assert receipt == "NS-00000002"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["key"] for line in lines] == ["finance:1", "finance:2"]


def test_fake_file_reports_invalid_line(tmp_path: Path) -> None:
    path = tmp_path / "transactions.jsonl"
    path.write_text('{"receipt": "NS-00000001"}\n', encoding="utf-8")

    with pytest.raises(ValueError, match=r"transactions.jsonl, line 1: invalid transaction"):
        FakeNavisionStat(path)


def test_services_keep_finance_beside_digital_post(tmp_path: Path) -> None:
    settings = dataclasses.replace(Settings(), digital_post_dir=tmp_path / "var" / "digital-post")

    services = Services.from_settings(settings)

    assert isinstance(services.finance, FakeNavisionStat)
    assert services.finance.path == tmp_path / "var" / "finance" / "transactions.jsonl"


# Queuing --------------------------------------------------------------------------------------


def test_queue_adds_finance_message(service: Sagsflow, finance: FakeNavisionStat, clock: Clock) -> None:
    case = submit_case(service)

    message_id = queue(service, case, "reserve", 1_250_000, "reserve:1")

    row = message_row(service, message_id)
    assert row.channel == FINANCE
    assert row.document_id is None
    assert row.idempotency_key == "finance:reserve:1"
    assert row.status == "pending"
    assert row.next_attempt_at == clock.now
    assert row.payload == {
        "operation": "reserve",
        "voucher": {
            "account": ACCOUNT,
            "amount": 1_250_000,
            "dimension": POOL,
            "text": "Tilskud til naturpleje",
            "journal_number": case["journal_number"],
            "creditor": None,
        },
    }


def test_queue_same_key_twice_returns_first(service: Sagsflow, finance: FakeNavisionStat) -> None:
    case = submit_case(service)

    first = queue(service, case, "reserve", 1_250_000, "reserve:1")
    again = queue(service, case, "reserve", 1_250_000, "reserve:1")

    assert again == first
    with pytest.raises(ProcessFault, match="The key 'reserve:1' is already used for another booking"):
        queue(service, case, "reserve", 1_000_000, "reserve:1")
    with service.database.read() as session:
        assert len(finance_messages(session, case["id"])) == 1


def test_queue_rejects_invalid_voucher(service: Sagsflow, finance: FakeNavisionStat) -> None:
    case = submit_case(service)

    with pytest.raises(ProcessFault) as invalid:
        queue(service, case, "reserve", 0, "reserve:1")
    with pytest.raises(ProcessFault, match="A payment needs a creditor"):
        queue(service, case, "pay", 100, "pay:1")
    with pytest.raises(ProcessFault, match="The booking's key must have 1 to 92 characters, not 93"):
        queue(service, case, "reserve", 100, "k" * 93)
    with pytest.raises(ProcessFault, match="belongs to case"), service.database.write() as session:
        queue_finance(
            session,
            case["id"],
            case["journal_number"],
            service.services.clock(),
            "reserve",
            {**voucher(100), "journal_number": "2026-999999"},
            "reserve:2",
        )

    assert invalid.value.text.en == "The voucher is invalid: The amount must be a whole number of øre above 0, not 0."
    with service.database.read() as session:
        assert finance_messages(session, case["id"]) == []


# Delivery through the outbox ------------------------------------------------------------------


def test_each_operation_books_through_outbox(service: Sagsflow, finance: FakeNavisionStat) -> None:
    case = submit_case(service)
    keys = ["reserve:1", "commit:1", "pay:1", "release:1"]
    ids = [
        queue(service, case, "reserve", 1_800_000, keys[0]),
        queue(service, case, "commit", 1_700_000, keys[1]),
        queue(service, case, "pay", 1_600_000, keys[2], creditor=KRAGELUND),
        queue(service, case, "release", 100_000, keys[3]),
    ]

    report = worker_for(service).run_round()

    assert (report.sent, report.retried, report.failed, report.errors) == (4, 0, 0, 0)
    booked = finance.transactions(case["journal_number"])
    assert [(transaction.operation, transaction.amount) for transaction in booked] == [
        ("reserve", 1_800_000),
        ("commit", 1_700_000),
        ("pay", 1_600_000),
        ("release", 100_000),
    ]
    assert [transaction.key for transaction in booked] == [f"finance:{key}" for key in keys]
    pay = booked[2].voucher.creditor
    assert pay is not None
    assert (pay.id_type, pay.number) == ("CVR", "90131443")
    rows = [message_row(service, message_id) for message_id in ids]
    assert [row.status for row in rows] == ["sent"] * 4
    assert [row.receipt for row in rows] == [transaction.receipt for transaction in booked]
    events = events_of(service, case["id"], "payment_sent")
    assert [event.actor for event in events] == ["system"] * 4
    assert [event.changes["payments"][0]["operation"] for event in events] == ["reserve", "commit", "pay", "release"]
    assert events[2].changes["payments"][0] == {
        "message": ids[2],
        "key": "finance:pay:1",
        "operation": "pay",
        "amount": 1_600_000,
        "account": ACCOUNT,
        "dimension": POOL,
        "status": ["pending", "sent"],
        "receipt": rows[2].receipt,
    }
    balance = finance.balance(case["journal_number"], ACCOUNT, POOL)
    assert (balance.reserved, balance.committed, balance.paid) == (0, 0, 1_600_000)
    with service.database.read() as session:
        assert booked_amounts(session, case["id"]) == {
            "reserve": 1_800_000,
            "commit": 1_700_000,
            "pay": 1_600_000,
            "release": 100_000,
        }
        messages = finance_messages(session, case["id"])
        assert [(message.key, message.status, message.amount) for message in messages] == [
            ("reserve:1", "sent", 1_800_000),
            ("commit:1", "sent", 1_700_000),
            ("pay:1", "sent", 1_600_000),
            ("release:1", "sent", 100_000),
        ]
        assert reconcile(session, finance, case["id"]).matched == keys
        assert reconcile(session, finance, case["id"]).ok


def test_audit_chain_verifies_after_payments(service: Sagsflow, finance: FakeNavisionStat, clock: Clock) -> None:
    case = submit_case(service)
    queue(service, case, "commit", 1_000_000, "commit:1")
    queue(service, case, "pay", 400_000, "pay:1", creditor=KRAGELUND)
    queue(service, case, "pay", 100_000, "pay:2", creditor=WITHOUT_NEMKONTO)
    worker = worker_for(service)

    worker.run_round()
    finance.failures_left = MAX_ATTEMPTS
    queue(service, case, "release", 600_000, "release:1")
    for _ in range(MAX_ATTEMPTS):
        worker.run_round()
        clock.advance(hours=2)

    assert len(events_of(service, case["id"], "payment_sent")) == 2
    assert len(events_of(service, case["id"], "payment_failed")) == 2
    assert chain_ok(service, case["id"])


def test_crash_after_booking_books_once(service: Sagsflow, clock: Clock) -> None:
    dying = DiesAfterBooking(clock)
    service.services.finance = dying
    case = submit_case(service)
    queue(service, case, "commit", 1_000_000, "commit:1")
    pay_id = queue(service, case, "pay", 400_000, "pay:1", creditor=KRAGELUND)

    with pytest.raises(WorkerKilled):
        worker_for(service, "worker-1").run_round()
    interrupted = message_row(service, pay_id)
    with service.database.read() as session:
        in_flight = reconcile(session, dying, case["id"])
    restarted = worker_for(service, "worker-1-restarted")
    during_lease = restarted.run_round()
    clock.now += CLAIM_LEASE
    after_lease = restarted.run_round()
    later = restarted.run_round()

    assert interrupted.status == "pending"
    assert in_flight.unrecorded == ["pay:1"]
    assert not in_flight.ok
    assert (during_lease.sent, after_lease.sent, later.sent) == (0, 1, 0)
    payments = [transaction for transaction in dying.transactions() if transaction.operation == "pay"]
    assert len(payments) == 1
    assert dying.requests["finance:pay:1"] == 2
    sent = message_row(service, pay_id)
    assert sent.status == "sent"
    assert sent.receipt == payments[0].receipt
    attempts = attempts_of(service, pay_id)
    assert [(attempt.worker, attempt.succeeded, attempt.error) for attempt in attempts] == [
        ("worker-1", False, INTERRUPTED),
        ("worker-1-restarted", True, None),
    ]
    assert len(events_of(service, case["id"], "payment_sent")) == 2  # the commitment and the payment
    with service.database.read() as session:
        assert reconcile(session, dying, case["id"]).ok
    assert chain_ok(service, case["id"])


class WorkerKilled(BaseException):
    """Stands for the worker process dying; `deliver` catches only `Exception`, so this escapes the round."""


class DiesAfterBooking(FakeNavisionStat):
    """Books the first payment, then kills the worker before it can record the receipt."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock=clock)
        self.kills_left = 1

    def pay(self, voucher: Voucher, key: str) -> str:
        receipt = super().pay(voucher, key)
        if self.kills_left:
            self.kills_left -= 1
            raise WorkerKilled
        return receipt


def test_outage_retries_with_backoff(service: Sagsflow, finance: FakeNavisionStat, clock: Clock) -> None:
    case = submit_case(service)
    message_id = queue(service, case, "reserve", 1_000_000, "reserve:1")
    finance.failures_left = 3
    worker = worker_for(service)
    delays: list[timedelta] = []

    for attempt in range(1, 4):
        report = worker.run_round()
        row = message_row(service, message_id)
        assert (report.retried, report.sent) == (1, 0)
        assert (row.status, row.attempts) == ("pending", attempt)
        assert row.last_error == "FinanceUnavailable: simulated outage of Navision Stat"
        delays.append(row.next_attempt_at - clock.now)
        clock.now = row.next_attempt_at - timedelta(seconds=1)
        assert worker.run_round().retried == 0
        clock.now = row.next_attempt_at
    report = worker.run_round()

    assert delays == [timedelta(seconds=30), timedelta(seconds=60), timedelta(seconds=120)]
    assert report.sent == 1
    assert finance.requests == Counter({"finance:reserve:1": 4})
    assert len(finance.transactions()) == 1
    row = message_row(service, message_id)
    assert (row.status, row.last_error, row.receipt) == ("sent", None, "NS-00000001")
    assert [attempt.succeeded for attempt in attempts_of(service, message_id)] == [False, False, False, True]


def test_gives_up_after_max_attempts(service: Sagsflow, finance: FakeNavisionStat, clock: Clock) -> None:
    case = submit_case(service)
    message_id = queue(service, case, "reserve", 1_000_000, "reserve:1")
    finance.failures_left = 10 * MAX_ATTEMPTS
    worker = worker_for(service)

    reports: list[RoundReport] = []
    for _ in range(MAX_ATTEMPTS):
        reports.append(worker.run_round())
        clock.advance(hours=2)
    after = worker.run_round()

    row = message_row(service, message_id)
    assert [report.retried for report in reports] == [1] * (MAX_ATTEMPTS - 1) + [0]
    assert reports[-1].failed == 1
    assert after.failed == 0
    assert (row.status, row.attempts) == ("failed", MAX_ATTEMPTS)
    assert row.last_error == "FinanceUnavailable: simulated outage of Navision Stat"
    assert finance.transactions() == []
    (failed,) = events_of(service, case["id"], "payment_failed")
    assert failed.actor == "system"
    assert failed.changes["payments"] == [
        {
            "message": message_id,
            "key": "finance:reserve:1",
            "operation": "reserve",
            "amount": 1_000_000,
            "account": ACCOUNT,
            "dimension": POOL,
            "status": ["pending", "failed"],
            "error": "FinanceUnavailable: simulated outage of Navision Stat",
        }
    ]
    assert events_of(service, case["id"], "letter_failed") == []
    assert chain_ok(service, case["id"])


def test_creditor_without_nemkonto_fails_at_once(service: Sagsflow, finance: FakeNavisionStat) -> None:
    case = submit_case(service)
    queue(service, case, "commit", 1_000_000, "commit:1")
    pay_id = queue(service, case, "pay", 400_000, "pay:1", creditor=WITHOUT_NEMKONTO)

    report = worker_for(service).run_round()

    row = message_row(service, pay_id)
    assert (report.sent, report.failed, report.retried) == (1, 1, 0)
    assert (row.status, row.attempts, row.receipt) == ("failed", 1, None)
    assert row.last_error == (
        "NoNemKonto: NemKonto has no account for CVR 92001644, so the payment of 400000 øre was not made. "
        "Ask the creditor to register a NemKonto with their bank, then queue the message again"
    )
    (failed,) = events_of(service, case["id"], "payment_failed")
    assert failed.changes["payments"][0]["error"] == row.last_error
    assert [transaction.operation for transaction in finance.transactions()] == ["commit"]


def test_payment_beyond_commitment_waits_for_it(service: Sagsflow, finance: FakeNavisionStat, clock: Clock) -> None:
    """A payment that reaches the finance system before its commitment is retried until the commitment is booked."""
    case = submit_case(service)
    commit_id = queue(service, case, "commit", 1_000_000, "commit:1")
    pay_id = queue(service, case, "pay", 400_000, "pay:1", creditor=KRAGELUND)
    finance.failures_left = 1  # the commitment fails once and waits 30 seconds
    worker = worker_for(service)

    first = worker.run_round()
    waiting = message_row(service, pay_id)
    clock.advance(minutes=2)
    second = worker.run_round()

    assert (first.retried, first.sent) == (2, 0)
    assert waiting.last_error is not None
    assert waiting.last_error.startswith("InsufficientBalance: case ")
    assert second.sent == 2
    assert message_row(service, commit_id).status == "sent"
    assert message_row(service, pay_id).status == "sent"


# Two workers racing ---------------------------------------------------------------------------


class RacingNavision(FakeNavisionStat):
    """The fake shared by racing workers: the first booking of each thread waits until every worker books.

    If the workers took turns instead, the barrier would time out after 30 seconds and
    the booking would fail, which the test counts as a retry.
    """

    def __init__(self, workers: int) -> None:
        super().__init__()
        self._all_booking = threading.Barrier(workers, timeout=30)
        self._thread = threading.local()

    def _meet(self) -> None:
        if not getattr(self._thread, "started", False):
            self._thread.started = True
            self._all_booking.wait()
        time.sleep(0.005)

    def reserve(self, voucher: Voucher, key: str) -> str:
        self._meet()
        return super().reserve(voucher, key)

    def commit(self, voucher: Voucher, key: str) -> str:
        self._meet()
        return super().commit(voucher, key)


@pytest.fixture
def second_database(database: Database) -> Iterator[Database]:
    """A second engine on the same database, as a second worker process would have."""
    other = Database(database.url)
    yield other
    other.dispose()


def run_together(workers: list[Worker]) -> list[RoundReport]:
    """Run one round of each worker in a thread of its own, started together; re-raise a thread's error."""
    start = threading.Barrier(len(workers))
    reports: list[RoundReport] = []
    errors: list[BaseException] = []

    def work(worker: Worker) -> None:
        try:
            start.wait(timeout=30)
            reports.append(worker.run_round())
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(worker,), name=worker.name) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a worker did not finish its round within 120 s"
    if errors:
        raise errors[0]
    return reports


BOOKINGS_IN_RACE = 30


def test_two_workers_book_each_once(
    service: Sagsflow, database: Database, second_database: Database, services: Services
) -> None:
    cases = [submit_case(service, variant) for variant in range(BOOKINGS_IN_RACE)]
    operations = ["reserve", "commit"]
    for index, case in enumerate(cases):
        queue(service, case, operations[index % 2], 100_000 * (index + 1), f"race:{index}")
    racing = RacingNavision(workers=2)
    shared = dataclasses.replace(services, finance=racing)
    workers = [Worker(database, shared, name="worker-1"), Worker(second_database, shared, name="worker-2")]

    reports = run_together(workers)

    keys = [f"finance:race:{index}" for index in range(BOOKINGS_IN_RACE)]
    booked = racing.transactions()
    assert sorted(transaction.key for transaction in booked) == sorted(keys)
    assert racing.requests == Counter(dict.fromkeys(keys, 1))
    assert sum(report.sent for report in reports) == BOOKINGS_IN_RACE
    assert sum(report.retried + report.failed + report.errors for report in reports) == 0
    with database.read() as session:
        rows = list(session.scalars(select(OutboxMessage).where(OutboxMessage.channel == FINANCE)))
        attempts = list(session.scalars(select(OutboxAttempt)))
    assert [row.status for row in rows] == ["sent"] * BOOKINGS_IN_RACE
    assert [row.attempts for row in rows] == [1] * BOOKINGS_IN_RACE
    receipts = {transaction.key: transaction.receipt for transaction in booked}
    assert {row.idempotency_key: row.receipt for row in rows} == receipts
    finance_attempts = [attempt for attempt in attempts if attempt.message_id in {row.id for row in rows}]
    assert {attempt.worker for attempt in finance_attempts} == {"worker-1", "worker-2"}
    for case in cases:
        assert len(events_of(service, case["id"], "payment_sent")) == 1
        assert chain_ok(service, case["id"])


# Listing and queuing again --------------------------------------------------------------------


def failed_payment(service: Sagsflow) -> tuple[dict[str, Any], int]:
    """A case with a commitment and a payment that failed because the creditor has no NemKonto."""
    case = submit_case(service)
    queue(service, case, "commit", 2_000_000, "commit:1")
    pay_id = queue(service, case, "pay", 1_250_050, "pay:1", creditor=WITHOUT_NEMKONTO)
    worker_for(service).run_round()
    assert message_row(service, pay_id).status == "failed"
    return case, pay_id


def test_outbox_lists_payment_without_document(service: Sagsflow, finance: FakeNavisionStat) -> None:
    case, pay_id = failed_payment(service)

    with service.database.read() as session:
        listed = list_outbox(session, None, channel=FINANCE)

    assert [item["id"] for item in listed] == [pay_id - 1, pay_id]
    item = listed[1]
    assert item["case"] == {"id": case["id"], "journal_number": case["journal_number"]}
    assert item["document"] is None
    assert item["recipient"] is None
    assert item["payment"] == {
        "operation": "pay",
        "amount": 1_250_050,
        "kroner": "12500.50",
        "account": ACCOUNT,
        "dimension": POOL,
        "text": "Tilskud til naturpleje",
        "creditor": WITHOUT_NEMKONTO,
    }
    assert (item["channel"], item["status"], item["attempts"]) == ("finance", "failed", 1)
    assert item["last_error"].startswith("NoNemKonto: NemKonto has no account for CVR 92001644")


def test_retry_over_http_books_payment(
    service: Sagsflow, finance: FakeNavisionStat, client: TestClient, tokens: Tokens
) -> None:
    case, pay_id = failed_payment(service)
    caseworker = Tokens.header(tokens.caseworker)
    listed = client.get("/outbox", params={"channel": "finance", "status": "failed"}, headers=caseworker)
    finance.nemkonto = NemKontoRegister({("CVR", "92001644"): True})

    retried = client.post(f"/outbox/{pay_id}/retry", headers=caseworker)
    again = client.post(f"/outbox/{pay_id}/retry", headers=caseworker)

    assert listed.status_code == 200, listed.json()
    assert [item["id"] for item in listed.json()["items"]] == [pay_id]
    assert listed.json()["items"][0]["payment"]["kroner"] == "12500.50"
    assert retried.status_code == 200, retried.json()
    row = message_row(service, pay_id)
    assert (row.status, row.attempts) == ("sent", 1)
    assert row.receipt == finance.transactions()[-1].receipt
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "not_failed"
    (retry,) = events_of(service, case["id"], "retry_payment")
    assert retry.actor == "karen"
    assert retry.changes["payments"][0]["status"] == ["failed", "pending"]
    assert "documents" not in retry.changes
    assert len(events_of(service, case["id"], "payment_sent")) == 2
    assert chain_ok(service, case["id"])


def test_cli_lists_payments(service: Sagsflow, finance: FakeNavisionStat, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli.main, "open_service", lambda: service)
    case, pay_id = failed_payment(service)

    danish = runner.invoke(cli_app, ["outbox", "list", "--channel", "finance"], env={"SAGSFLOW_LANGUAGE": "da"})
    english = runner.invoke(cli_app, ["--lang", "en", "outbox", "list", "--status", "failed"])
    bad_channel = runner.invoke(cli_app, ["outbox", "list", "--channel", "fax"], env={"SAGSFLOW_LANGUAGE": "da"})

    assert danish.exit_code == 0, danish.output
    lines = danish.output.splitlines()
    assert f"{case['journal_number']}  forpligtelse 20.000,00 kr.  finance  sent  1 forsøg" in lines[0]
    assert f"{case['journal_number']}  udbetaling 12.500,50 kr.  finance  failed  1 forsøg" in lines[1]
    assert "NoNemKonto" in lines[2]
    assert lines[-1] == "2 beskeder."
    assert english.exit_code == 0, english.output
    assert f"{pay_id:>6}  {case['journal_number']}  payment DKK 12,500.50  finance  failed  1 attempt" in english.output
    assert bad_channel.exit_code == 2
    assert "brug digital_post, physical_mail eller finance" in bad_channel.output
