"""Payments: finance bookings sent through the transactional outbox, and what a case has booked.

An action that moves money, such as the pool ledger's reserve, commit, pay and release,
calls `queue_finance` with its command's session. The outbox message is committed with
the case or not at all. The worker then books it in the finance system
(`engine/adapters/finance.py`) under the idempotency key `finance:<key>`:

    queue_finance(session, case.id, case.journal_number, now, "pay",
                  {"account": "23.22.01.10", "amount": 1_250_000, "dimension": "N2000-2026",
                   "text": "Udbetaling 2026-000001",
                   "creditor": {"id_type": "CVR", "number": "90131443", "name": "..."}},
                  "payout:2026-000001:1")

A worker that dies after the finance system booked the voucher but before it recorded
the receipt leaves the message pending. The next attempt sends the same key, and the
finance system returns the first receipt without booking again. Each payment is
therefore booked once, and its receipt is recorded once, with a `payment_sent` event in
the case's audit trail.

`finance_messages`, `booked_amounts` and `reconcile` read what a case has queued and
booked, for reconciliation against the pool ledger and the finance system.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.adapters.finance import (
    OPERATIONS,
    FinanceSystem,
    InvalidVoucher,
    Operation,
    Voucher,
    book,
)
from engine.errors import ProcessFault
from engine.i18n import Text
from engine.storage.tables import Case, OutboxMessage, OutboxStatus

# The outbox channel of finance bookings; their messages have no document.
FINANCE = "finance"
KEY_PREFIX = "finance:"
# The length of the outbox's idempotency_key column.
KEY_MAX_LENGTH = 100

OPERATION_LABELS: dict[str, Text] = {
    "reserve": Text("reservation", "reservation"),
    "commit": Text("forpligtelse", "commitment"),
    "pay": Text("udbetaling", "payment"),
    "release": Text("frigivelse", "release"),
}


def kroner(amount: int) -> str:
    """Write an amount in øre as kroner with two decimals, exactly: 1250050 -> "12500.50"."""
    sign = "-" if amount < 0 else ""
    whole, ore = divmod(abs(amount), 100)
    return f"{sign}{whole}.{ore:02d}"


# Queuing --------------------------------------------------------------------------------------


def queue_finance(
    session: Session,
    case_id: int,
    journal_number: str,
    now: datetime,
    operation: Operation,
    voucher: dict[str, Any],
    key: str,
) -> OutboxMessage:
    """Add an outbox message that books `voucher` as `operation`, in the caller's transaction.

    `voucher` has the keys of `Voucher.as_dict`; `journal_number` may be left out and is
    then the case's. `key` names the booking uniquely, such as "payout:2026-000001:1"; the
    finance system receives it as `finance:<key>`. Queuing the same key again with the same
    operation and voucher returns the message queued first. Raises ProcessFault, and adds
    nothing, when the voucher is invalid, the key is empty or too long, or the key was
    queued before for another booking.
    """
    idempotency_key = KEY_PREFIX + key
    if not key or len(idempotency_key) > KEY_MAX_LENGTH:
        raise ProcessFault(
            Text(
                f"Nøglen til bogføringen skal have 1 til {KEY_MAX_LENGTH - len(KEY_PREFIX)} tegn, ikke {len(key)}.",
                f"The booking's key must have 1 to {KEY_MAX_LENGTH - len(KEY_PREFIX)} characters, not {len(key)}.",
            ),
            case_id=case_id,
        )
    checked = _checked_voucher(operation, {"journal_number": journal_number, **voucher}, case_id)
    if checked.journal_number != journal_number:
        raise ProcessFault(
            Text(
                f"Bilaget har journalnummeret {checked.journal_number}, men hører til sag {journal_number}.",
                f"The voucher has the journal number {checked.journal_number}, but belongs to case {journal_number}.",
            ),
            case_id=case_id,
        )
    payload = {"operation": operation, "voucher": checked.as_dict()}

    existing = _queued(session, idempotency_key)
    if existing is not None:
        if existing.case_id == case_id and existing.channel == FINANCE and existing.payload == payload:
            return existing
        raise ProcessFault(
            Text(
                f"Nøglen '{key}' er allerede brugt til en anden bogføring; giv hver bogføring sin egen nøgle.",
                f"The key '{key}' is already used for another booking; give each booking a key of its own.",
            ),
            case_id=case_id,
        )
    message = OutboxMessage(
        case_id=case_id,
        document_id=None,
        channel=FINANCE,
        idempotency_key=idempotency_key,
        payload=payload,
        status=OutboxStatus.PENDING,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(message)
    return message


def _checked_voucher(operation: str, voucher: dict[str, Any], case_id: int) -> Voucher:
    try:
        checked = Voucher.from_dict(voucher)
        checked.check_for(operation)
    except InvalidVoucher as invalid:
        raise ProcessFault(invalid.text, case_id=case_id) from None
    return checked


def _queued(session: Session, idempotency_key: str) -> OutboxMessage | None:
    """Find a message with this key, among the rows not yet flushed too, without flushing the command's changes."""
    for pending in session.new:
        if isinstance(pending, OutboxMessage) and pending.idempotency_key == idempotency_key:
            return pending
    with session.no_autoflush:
        return session.scalars(select(OutboxMessage).where(OutboxMessage.idempotency_key == idempotency_key)).first()


# Delivery by the outbox -----------------------------------------------------------------------


@dataclass(frozen=True)
class FinanceCall:
    """A finance message as the outbox worker delivers it: the voucher as queued, and the idempotency key."""

    operation: str
    voucher: dict[str, Any]
    key: str

    @classmethod
    def of(cls, message: OutboxMessage) -> FinanceCall:
        return cls(
            operation=str(message.payload.get("operation", "")),
            voucher=dict(message.payload.get("voucher") or {}),
            key=message.idempotency_key,
        )

    def send(self, finance: FinanceSystem) -> str:
        """Book the voucher and return the receipt; raise the finance system's error when it is not booked."""
        return book(finance, self.operation, Voucher.from_dict(self.voucher), self.key)


def payment_entry(payload: dict[str, Any]) -> dict[str, Any]:
    """Describe a finance message's booking for outbox listings: amounts in øre and in kroner."""
    voucher = payload.get("voucher") or {}
    amount = voucher.get("amount")
    return {
        "operation": payload.get("operation"),
        "amount": amount,
        "kroner": kroner(amount) if isinstance(amount, int) else None,
        "account": voucher.get("account"),
        "dimension": voucher.get("dimension"),
        "text": voucher.get("text"),
        "creditor": voucher.get("creditor"),
    }


def payment_event(
    message: OutboxMessage, status: tuple[str, str], *, receipt: str | None = None, error: str | None = None
) -> dict[str, Any]:
    """Build the changes of a `payment_sent` or `payment_failed` audit event for one finance message."""
    voucher = message.payload.get("voucher") or {}
    entry: dict[str, Any] = {
        "message": message.id,
        "key": message.idempotency_key,
        "operation": message.payload.get("operation"),
        "amount": voucher.get("amount"),
        "account": voucher.get("account"),
        "dimension": voucher.get("dimension"),
        "status": list(status),
    }
    if receipt is not None:
        entry["receipt"] = receipt
    if error is not None:
        entry["error"] = error
    return {"payments": [entry]}


# Reading what a case has booked ---------------------------------------------------------------


@dataclass(frozen=True)
class FinanceMessage:
    """A case's finance message: `key` is the caller's key, without the `finance:` prefix; `amount` is in øre."""

    id: int
    key: str
    operation: str
    amount: int
    account: str
    dimension: str
    status: str
    receipt: str | None
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


def finance_messages(session: Session, case_id: int) -> list[FinanceMessage]:
    """List a case's finance messages in the order they were queued, with their status and receipt."""
    rows = session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.case_id == case_id, OutboxMessage.channel == FINANCE)
        .order_by(OutboxMessage.id)
    )
    messages = []
    for row in rows:
        voucher = row.payload.get("voucher") or {}
        messages.append(
            FinanceMessage(
                id=row.id,
                key=row.idempotency_key.removeprefix(KEY_PREFIX),
                operation=str(row.payload.get("operation")),
                amount=int(voucher.get("amount", 0)),
                account=str(voucher.get("account", "")),
                dimension=str(voucher.get("dimension", "")),
                status=row.status,
                receipt=row.receipt,
                attempts=row.attempts,
                last_error=row.last_error,
                created_at=row.created_at,
                sent_at=row.sent_at,
            )
        )
    return messages


def booked_amounts(session: Session, case_id: int) -> dict[str, int]:
    """Sum the amounts in øre of a case's booked (sent) finance messages, per operation."""
    totals: dict[str, int] = dict.fromkeys(OPERATIONS, 0)
    for message in finance_messages(session, case_id):
        if message.status == OutboxStatus.SENT:
            totals[message.operation] = totals.get(message.operation, 0) + message.amount
    return totals


@dataclass
class Reconciliation:
    """A case's finance messages compared with the finance system's transactions, by idempotency key.

    `missing`: sent messages that the finance system has no transaction for.
    `differing`: sent messages whose transaction has another receipt, operation or amount.
    `unrecorded`: transactions of the case without a sent message. A pending message is
    listed here between a booking and the attempt that records it, for example after a
    worker crashed; a retry records it. Each list contains the caller's keys.
    """

    matched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    differing: list[str] = field(default_factory=list)
    unrecorded: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.differing or self.unrecorded)


def reconcile(session: Session, finance: FinanceSystem, case_id: int) -> Reconciliation:
    """Compare a case's finance messages with the transactions the finance system has booked for it."""
    journal_number = session.scalar(select(Case.journal_number).where(Case.id == case_id))
    if journal_number is None:
        raise LookupError(f"case {case_id} does not exist")
    booked = {transaction.key: transaction for transaction in finance.transactions(journal_number)}
    report = Reconciliation()
    sent: set[str] = set()
    for message in finance_messages(session, case_id):
        if message.status != OutboxStatus.SENT:
            continue
        key = KEY_PREFIX + message.key
        sent.add(key)
        transaction = booked.get(key)
        if transaction is None:
            report.missing.append(message.key)
        elif (transaction.receipt, transaction.operation, transaction.amount) != (
            message.receipt,
            message.operation,
            message.amount,
        ):
            report.differing.append(message.key)
        else:
            report.matched.append(message.key)
    report.unrecorded = [key.removeprefix(KEY_PREFIX) for key in booked if key not in sent]
    return report
