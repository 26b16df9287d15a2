"""Dispatch the transactional outbox: deliver letters by digital post or physical mail, and book payments.

A message on the channel `finance` has no document: it books a voucher in the finance
system (reserve, commit, pay or release; see `engine/runtime/payments.py`). Every other
message delivers a letter.

A delivery takes three steps, so that no database lock is held while an outside system is
called:

1. `claim_next` claims the oldest due message in a short transaction (`FOR UPDATE SKIP
   LOCKED` on PostgreSQL, so several workers share one outbox; SQLite serialises writers
   anyway). It counts the attempt, records it in `outbox_attempts` as interrupted, and
   moves `next_attempt_at` one lease (`CLAIM_LEASE`) ahead, so no other worker takes the
   message while this one sends it.
2. `deliver` calls the adapter with the message's idempotency key as message id. A
   recipient that digital post cannot reach (exempt, or without CVR or CPR) gets the
   letter by physical mail instead. A finance message goes to `services.finance`.
3. `record_result` stores the outcome on the attempt and the message: sent, or queued
   again with exponential backoff, or failed after `MAX_ATTEMPTS`. A voucher that the
   finance system rejects for good (`FinanceRejected`, such as a creditor without
   NemKonto) fails at once. A sent or failed letter updates its document and appends
   `letter_sent` or `letter_failed` to the case's audit trail; a finance message appends
   `payment_sent` or `payment_failed`.

A worker that dies between 1 and 3 leaves its attempt marked interrupted; once the lease
has run out another worker sends the message again with the same message id, which the
adapters deliver, and the finance system books, once.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from engine.adapters.digital_post import Party, PostMessage, RecipientExempt
from engine.adapters.finance import FinanceRejected
from engine.runtime.audit import append_event
from engine.runtime.payments import FINANCE, FinanceCall, payment_entry, payment_event
from engine.runtime.services import Services
from engine.storage.database import Database
from engine.storage.tables import (
    Case,
    Document,
    DocumentStatus,
    OutboxAttempt,
    OutboxMessage,
    OutboxStatus,
)

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 10
FIRST_RETRY = timedelta(seconds=30)
LONGEST_RETRY = timedelta(hours=1)
# How long a claimed message is left to the worker that claimed it. NOTE: an adapter call
# that takes longer than this lets a second worker send the same message id.
CLAIM_LEASE = timedelta(minutes=5)
INTERRUPTED = "interrupted: the worker stopped before it recorded a result"

DIGITAL_POST = "digital_post"
PHYSICAL_MAIL = "physical_mail"

# Hearing letters are filed with this text in place of the party's reply token; the token
# itself waits in the outbox payload until the letter is sent, and is removed then.
REPLY_PATH = "/hearing-replies/"
REDACTED_TOKEN = "REDACTED"  # noqa: S105 - a placeholder, not a secret


@dataclass
class DispatchReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    # Results that came after another worker had taken the message over or sent it.
    superseded: int = 0


@dataclass(frozen=True)
class Claim:
    """A message claimed for one delivery attempt: a letter (`post`) or a finance booking (`booking`)."""

    message_id: int
    attempt_id: int
    attempt_number: int
    channel: str
    case_id: int
    journal_number: str
    post: PostMessage | None
    booking: FinanceCall | None = None


@dataclass(frozen=True)
class DeliveryResult:
    channel: str
    receipt: str | None
    error: str | None
    duration_ms: int
    # The outside system rejected the message itself, so the outbox gives up at once instead of retrying.
    rejected: bool = False


def default_worker_name() -> str:
    """Name this process in `outbox_attempts`: host name and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _retry_delay(attempts: int) -> timedelta:
    return min(FIRST_RETRY * (1 << max(attempts - 1, 0)), LONGEST_RETRY)


def _with_token(body: str | None, payload: dict[str, Any]) -> str | None:
    token = payload.get("reply_token")
    if body is None or not token:
        return body
    # A scheme's report link has a path of its own (engine/runtime/schemes.py).
    path = str(payload.get("reply_path") or REPLY_PATH)
    return body.replace(path + REDACTED_TOKEN, path + str(token))


def _post_message(message: OutboxMessage, document: Document, case: Case, services: Services) -> PostMessage:
    recipient = message.payload.get("recipient") or {}
    return PostMessage(
        message_id=message.idempotency_key,
        label=document.title,
        sender=Party("CVR", services.authority.cvr, services.authority.name),
        recipient=Party(
            recipient.get("id_type", "NONE"),
            recipient.get("id", ""),
            recipient.get("name", ""),
            address=recipient.get("address"),
            postcode=recipient.get("postcode"),
            city=recipient.get("city"),
        ),
        case_reference=case.journal_number,
        classification=message.payload.get("classification", ""),
        created=message.created_at.isoformat(),
        main_document_title=document.title,
        main_document_text=_with_token(document.body_text, message.payload) or "",
        main_document_html=_with_token(document.body_html, message.payload),
        language=document.language,
    )


def _due(now: datetime) -> Any:
    return (OutboxMessage.status == OutboxStatus.PENDING) & (OutboxMessage.next_attempt_at <= now)


def claim_next(database: Database, services: Services, worker: str) -> Claim | None:
    """Claim the oldest due message for one attempt, or return None when none is due."""
    now = services.clock()
    with database.write() as session:
        query = select(OutboxMessage).where(_due(now)).order_by(OutboxMessage.id).limit(1)
        if database.is_postgresql:
            query = query.with_for_update(skip_locked=True)
        message = session.scalars(query).first()
        if message is None:
            return None
        document = session.get(Document, message.document_id) if message.document_id else None
        case = session.get(Case, message.case_id)
        is_booking = message.channel == FINANCE
        if case is None or (document is None and not is_booking):  # pragma: no cover - foreign keys keep both
            message.status = OutboxStatus.FAILED
            message.last_error = "document or case missing"
            logger.error("Outbox message %s has no document or case; marked failed", message.id)
            return None
        message.attempts += 1
        message.next_attempt_at = now + CLAIM_LEASE
        attempt = OutboxAttempt(
            message_id=message.id, attempted_at=now, succeeded=False, error=INTERRUPTED, duration_ms=0, worker=worker
        )
        session.add(attempt)
        session.flush()
        return Claim(
            message_id=message.id,
            attempt_id=attempt.id,
            attempt_number=message.attempts,
            channel=message.channel,
            case_id=case.id,
            journal_number=case.journal_number,
            post=_post_message(message, document, case, services) if document is not None else None,
            booking=FinanceCall.of(message) if is_booking else None,
        )


def deliver(claim: Claim, services: Services) -> DeliveryResult:
    """Deliver a claimed message: book a finance message, or send a letter.

    A letter goes by digital post unless the recipient cannot receive it there.
    """
    if claim.booking is not None:
        return _book(claim.booking, services)
    if claim.post is None:  # pragma: no cover - claim_next gives every other message its letter
        raise ValueError(f"outbox message {claim.message_id} has neither a letter nor a booking")
    return _send_letter(claim, claim.post, services)


def _book(booking: FinanceCall, services: Services) -> DeliveryResult:
    started = time.monotonic()
    receipt: str | None = None
    error: str | None = None
    rejected = False
    try:
        receipt = booking.send(services.finance)
    except FinanceRejected as rejection:
        error, rejected = f"{type(rejection).__name__}: {rejection}"[:2000], True
    except Exception as failure:  # any other failure leaves the booking queued for a retry
        error = f"{type(failure).__name__}: {failure}"[:2000]
    duration_ms = round((time.monotonic() - started) * 1000)
    return DeliveryResult(FINANCE, receipt, error, duration_ms, rejected)


def _send_letter(claim: Claim, post: PostMessage, services: Services) -> DeliveryResult:
    started = time.monotonic()
    channel = claim.channel
    if channel == DIGITAL_POST and post.recipient.id_type == "NONE":
        channel = PHYSICAL_MAIL
    receipt: str | None = None
    error: str | None = None
    try:
        if channel == DIGITAL_POST:
            try:
                receipt = services.digital_post.send(post)
            except RecipientExempt as exempt:
                logger.info(
                    "Outbox message %s of case %s goes by physical mail: %s",
                    claim.message_id,
                    claim.journal_number,
                    exempt,
                )
                channel = PHYSICAL_MAIL
        if channel == PHYSICAL_MAIL:
            receipt = services.physical_mail.send(post)
    except Exception as failure:  # any adapter failure must leave the letter queued
        error = f"{type(failure).__name__}: {failure}"[:2000]
    duration_ms = round((time.monotonic() - started) * 1000)
    return DeliveryResult(channel=channel, receipt=receipt, error=error, duration_ms=duration_ms)


def record_result(database: Database, services: Services, claim: Claim, result: DeliveryResult) -> str:
    """Store a delivery's outcome; return "sent", "retried", "failed" or "superseded"."""
    now = services.clock()
    with database.write() as session:
        if database.is_postgresql:
            # The case row first, as every command locks it, to append to its audit chain.
            session.execute(select(Case.id).where(Case.id == claim.case_id).with_for_update())
        message = session.get(OutboxMessage, claim.message_id, with_for_update=database.is_postgresql)
        attempt = session.get(OutboxAttempt, claim.attempt_id)
        if message is None or attempt is None:  # pragma: no cover - the claim's rows are never deleted
            return "superseded"
        attempt.succeeded = result.error is None
        attempt.error = result.error
        attempt.duration_ms = result.duration_ms

        if message.status == OutboxStatus.SENT:
            logger.warning(
                "Outbox message %s of case %s was sent by another worker during attempt %d",
                message.id,
                claim.journal_number,
                claim.attempt_number,
            )
            return "superseded"
        message.channel = result.channel
        if result.error is None:
            _mark_sent(session, message, result, now, claim.journal_number)
            return "sent"
        if message.status != OutboxStatus.PENDING or message.attempts != claim.attempt_number:
            # Another worker claimed the message after this claim's lease ran out; its result decides.
            logger.warning(
                "Attempt %d of outbox message %s of case %s failed after another worker took it over: %s",
                claim.attempt_number,
                message.id,
                claim.journal_number,
                result.error,
            )
            return "superseded"
        message.last_error = result.error
        if result.rejected:
            _mark_failed(session, message, now, result.error)
            logger.error(
                "Giving up on outbox message %s of case %s at attempt %d, which %s rejected: %s",
                message.id,
                claim.journal_number,
                message.attempts,
                result.channel,
                result.error,
            )
            return "failed"
        if message.attempts >= MAX_ATTEMPTS:
            _mark_failed(session, message, now, result.error)
            logger.error(
                "Giving up on outbox message %s of case %s after %d attempts: %s",
                message.id,
                claim.journal_number,
                message.attempts,
                result.error,
            )
            return "failed"
        message.next_attempt_at = now + _retry_delay(message.attempts)
        logger.warning(
            "Delivery of outbox message %s of case %s by %s failed (attempt %d), retrying at %s: %s",
            message.id,
            claim.journal_number,
            result.channel,
            message.attempts,
            message.next_attempt_at.isoformat(),
            result.error,
        )
        return "retried"


def _without_token(payload: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in payload.items() if key != "reply_token"}


def _mark_failed(session: Session, message: OutboxMessage, now: datetime, error: str) -> None:
    """Give up on a message: a letter's document shows `failed`, and the case's trail records it."""
    message.status = OutboxStatus.FAILED
    message.payload = _without_token(message.payload)
    if message.channel == FINANCE:
        changes = payment_event(message, (OutboxStatus.PENDING, OutboxStatus.FAILED), error=error)
        append_event(session, message.case_id, now, "system", "payment_failed", changes)
        return
    document = session.get(Document, message.document_id) if message.document_id else None
    if document is None:  # pragma: no cover - the foreign key keeps it
        return
    document.status = DocumentStatus.FAILED
    append_event(
        session,
        message.case_id,
        now,
        "system",
        "letter_failed",
        {"documents": [{"number": document.number, "status": ["queued", "failed"], "error": error}]},
    )


def _mark_sent(
    session: Session, message: OutboxMessage, result: DeliveryResult, now: datetime, journal_number: str
) -> None:
    message.status = OutboxStatus.SENT
    message.sent_at = now
    message.receipt = result.receipt
    message.last_error = None
    message.payload = _without_token(message.payload)
    if message.channel == FINANCE:
        changes = payment_event(message, (OutboxStatus.PENDING, OutboxStatus.SENT), receipt=result.receipt)
        append_event(session, message.case_id, now, "system", "payment_sent", changes)
        logger.info(
            "Booked %s of outbox message %s of case %s in the finance system (%s)",
            message.payload.get("operation"),
            message.id,
            journal_number,
            result.receipt,
        )
        return
    document = session.get(Document, message.document_id)
    if document is None:  # pragma: no cover - the foreign key keeps it
        raise LookupError(f"outbox message {message.id} has no document")
    document.status = DocumentStatus.SENT
    document.sent_at = now
    append_event(
        session,
        message.case_id,
        now,
        "system",
        "letter_sent",
        {
            "documents": [
                {
                    "number": document.number,
                    "status": ["queued", "sent"],
                    "receipt": result.receipt,
                    "channel": result.channel,
                }
            ]
        },
    )
    logger.info("Sent letter %d of case %s by %s (%s)", document.number, journal_number, result.channel, result.receipt)


def dispatch_once(database: Database, services: Services, worker: str | None = None) -> str | None:
    """Deliver the oldest due message; return "sent", "retried", "failed", "superseded", or None when none is due."""
    claim = claim_next(database, services, worker or default_worker_name())
    if claim is None:
        return None
    return record_result(database, services, claim, deliver(claim, services))


def has_due(database: Database, now: datetime) -> bool:
    """Check in a read transaction, so an idle sweep takes no write lock (SQLite's is database-wide)."""
    with database.read() as session:
        due = session.scalar(select(OutboxMessage.id).where(_due(now)).limit(1))
    return due is not None


def dispatch_due(
    database: Database,
    services: Services,
    limit: int = 1000,
    *,
    worker: str | None = None,
    stopping: Callable[[], bool] | None = None,
) -> DispatchReport:
    """Deliver due messages one by one, at most `limit`, until none is due or `stopping()` is true."""
    report = DispatchReport()
    name = worker or default_worker_name()
    for _ in range(limit):
        if (stopping is not None and stopping()) or not has_due(database, services.clock()):
            break
        result = dispatch_once(database, services, name)
        if result is None:
            break
        setattr(report, result, getattr(report, result) + 1)
    return report


# Listing the outbox and the physical-mail queue ----------------------------------------------


def list_outbox(
    session: Session,
    visible: ColumnElement[bool] | None,
    *,
    status: str | None = None,
    channel: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """List outbox messages, oldest first, optionally only those with `status` or `channel`.

    A letter has its `document` and `recipient` and no `payment`; a finance message has a
    `payment` (operation, amount in øre and in kroner, account, dimension, text, creditor)
    and neither a document nor a recipient.

    `visible` is the SQL condition on `Case` for the cases the caller may see (None for
    every case), as `engine.people.Access.visible_cases` returns it.
    """
    query = (
        select(OutboxMessage, Case.journal_number, Document.number, Document.title)
        .join(Case, Case.id == OutboxMessage.case_id)
        .outerjoin(Document, Document.id == OutboxMessage.document_id)
        .order_by(OutboxMessage.id)
        .limit(limit)
    )
    if visible is not None:
        query = query.where(visible)
    if status is not None:
        query = query.where(OutboxMessage.status == status)
    if channel is not None:
        query = query.where(OutboxMessage.channel == channel)
    return [
        _outbox_entry(message, journal_number, number, title)
        for message, journal_number, number, title in session.execute(query).all()
    ]


def list_physical_mail(
    session: Session,
    visible: ColumnElement[bool] | None,
    *,
    status: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """List the letters that a delivery attempt routed to physical mail, oldest first.

    These are the letters to recipients exempt from digital post or without a CVR or CPR
    number: printed (`sent`), waiting for a retry of the print service (`pending`), or given
    up (`failed`). A queued letter that no worker has tried to deliver yet is still on the
    digital post channel and is not listed.
    """
    return list_outbox(session, visible, status=status, channel=PHYSICAL_MAIL, limit=limit)


def _outbox_entry(message: OutboxMessage, journal_number: str, number: int | None, title: str | None) -> dict[str, Any]:
    is_booking = message.channel == FINANCE
    recipient = message.payload.get("recipient") or {}
    return {
        "id": message.id,
        "case": {"id": message.case_id, "journal_number": journal_number},
        "document": None if is_booking else {"number": number, "title": title},
        "recipient": None
        if is_booking
        else {
            "id_type": recipient.get("id_type", "NONE"),
            "id": recipient.get("id", ""),
            "name": recipient.get("name", ""),
            "address": recipient.get("address"),
            "postcode": recipient.get("postcode"),
            "city": recipient.get("city"),
        },
        "payment": payment_entry(message.payload) if is_booking else None,
        "channel": message.channel,
        "status": message.status,
        "attempts": message.attempts,
        "next_attempt_at": message.next_attempt_at.isoformat() if message.status == OutboxStatus.PENDING else None,
        "receipt": message.receipt,
        "last_error": message.last_error,
        "created_at": message.created_at.isoformat(),
        "sent_at": message.sent_at.isoformat() if message.sent_at else None,
    }
