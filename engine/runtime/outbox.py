"""Dispatch the transactional outbox: deliver queued letters through digital post.

Each message is claimed in its own transaction (`FOR UPDATE SKIP LOCKED` on PostgreSQL,
so several dispatchers can share one outbox; SQLite serialises writers anyway). The
adapter is called with the message's idempotency key as message id, so a retry after
a crash between delivery and commit is delivered once. A failed delivery stays queued
with exponential backoff; after `MAX_ATTEMPTS` the message is marked failed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from engine.adapters.digital_post import Party, PostMessage
from engine.runtime.audit import append_event
from engine.runtime.services import Services
from engine.storage.database import Database
from engine.storage.tables import Case, Document, DocumentStatus, OutboxMessage, OutboxStatus

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 10
FIRST_RETRY = timedelta(seconds=30)
LONGEST_RETRY = timedelta(hours=1)


@dataclass
class DispatchReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0


def _retry_delay(attempts: int) -> timedelta:
    return min(FIRST_RETRY * (1 << max(attempts - 1, 0)), LONGEST_RETRY)


def _post_message(message: OutboxMessage, document: Document, case: Case, services: Services) -> PostMessage:
    recipient = message.payload.get("recipient") or {}
    return PostMessage(
        message_id=message.idempotency_key,
        label=document.title,
        sender=Party("CVR", services.authority.cvr, services.authority.name),
        recipient=Party(recipient.get("id_type", "NONE"), recipient.get("id", ""), recipient.get("name", "")),
        case_reference=case.journal_number,
        classification=message.payload.get("classification", ""),
        created=message.created_at.isoformat(),
        main_document_title=document.title,
        main_document_text=document.body_text,
        main_document_html=document.body_html,
        language=document.language,
    )


def dispatch_once(database: Database, services: Services) -> str | None:
    """Deliver the oldest due message; return "sent", "retried", "failed", or None when none is due."""
    now = services.clock()
    with database.write() as session:
        query = (
            select(OutboxMessage)
            .where(OutboxMessage.status == OutboxStatus.PENDING, OutboxMessage.next_attempt_at <= now)
            .order_by(OutboxMessage.id)
            .limit(1)
        )
        if database.is_postgresql:
            query = query.with_for_update(skip_locked=True)
        message = session.scalars(query).first()
        if message is None:
            return None
        document = session.get(Document, message.document_id) if message.document_id else None
        case = session.get(Case, message.case_id)
        if document is None or case is None:  # pragma: no cover - foreign keys keep both
            message.status = OutboxStatus.FAILED
            message.last_error = "document or case missing"
            return "failed"

        try:
            receipt = services.digital_post.send(_post_message(message, document, case, services))
        except Exception as error:  # any adapter failure must leave the letter queued
            message.attempts += 1
            message.last_error = f"{type(error).__name__}: {error}"[:2000]
            if message.attempts >= MAX_ATTEMPTS:
                message.status = OutboxStatus.FAILED
                logger.error(
                    "Giving up on outbox message %s of case %s after %d attempts: %s",
                    message.id,
                    case.journal_number,
                    message.attempts,
                    message.last_error,
                )
                return "failed"
            message.next_attempt_at = now + _retry_delay(message.attempts)
            logger.warning(
                "Delivery of outbox message %s of case %s failed (attempt %d), retrying at %s: %s",
                message.id,
                case.journal_number,
                message.attempts,
                message.next_attempt_at.isoformat(),
                message.last_error,
            )
            return "retried"

        # Lock the case row only now, after the slow call, to append to its audit chain.
        if database.is_postgresql:
            session.execute(select(Case.id).where(Case.id == case.id).with_for_update())
        message.attempts += 1
        message.status = OutboxStatus.SENT
        message.sent_at = now
        message.receipt = receipt
        message.last_error = None
        document.status = DocumentStatus.SENT
        document.sent_at = now
        append_event(
            session,
            case.id,
            now,
            "system",
            "letter_sent",
            {"documents": [{"number": document.number, "status": ["queued", "sent"], "receipt": receipt}]},
        )
        logger.info("Sent letter %d of case %s (%s)", document.number, case.journal_number, receipt)
        return "sent"


def has_due(database: Database, now: datetime) -> bool:
    """Check in a read transaction, so an idle sweep takes no write lock (SQLite's is database-wide)."""
    with database.read() as session:
        due = session.scalar(
            select(OutboxMessage.id)
            .where(OutboxMessage.status == OutboxStatus.PENDING, OutboxMessage.next_attempt_at <= now)
            .limit(1)
        )
    return due is not None


def dispatch_due(database: Database, services: Services, limit: int = 1000) -> DispatchReport:
    report = DispatchReport()
    for _ in range(limit):
        if not has_due(database, services.clock()):
            break
        result = dispatch_once(database, services)
        if result is None:
            break
        setattr(report, result, getattr(report, result) + 1)
    return report
