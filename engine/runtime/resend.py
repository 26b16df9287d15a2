"""Queue a letter or a payment again after the outbox gave up on it.

The outbox gives up on a letter after `outbox.MAX_ATTEMPTS` failed deliveries, for example
when the digital-post service was down for hours. Once the cause is fixed, a caseworker
or an administrator queues the letter again. The worker delivers it with the same
idempotency key, which lets the digital-post service drop a copy it already received.
A finance booking is queued again the same way, for example after the creditor has
registered a NemKonto, and the finance system books its key once.

A hearing letter's reply token is deleted when the outbox gives up, because only its hash
may stay at rest. Queuing such a letter again gives the party a new token, which replaces
the old one, unless the hearing's deadline has passed.
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import select

from engine.auth import Actor, Scope, require_scope
from engine.errors import Conflict, Forbidden, NotFound
from engine.i18n import Language, Text
from engine.runtime.commands import CaseCommand
from engine.runtime.hearings import TOKEN_BYTES, hash_token
from engine.runtime.outbox import list_outbox
from engine.runtime.payments import FINANCE, payment_event
from engine.service import Sagsflow
from engine.storage.tables import Case, Document, DocumentStatus, HearingParty, OutboxMessage, OutboxStatus


def find_message(command: CaseCommand, message_id: int) -> OutboxMessage:
    message = command.session.get(OutboxMessage, message_id)
    if message is None or message.case_id != command.case.id:
        raise NotFound(
            Text(
                f"Sagen {command.case.journal_number} har ingen besked nr. {message_id} i udbakken.",
                f"The case {command.case.journal_number} has no outbox message {message_id}.",
            ),
            code="unknown_message",
            field="message",
            hint=Text(
                "'sagsflow outbox list' og GET /outbox viser beskederne.",
                "'sagsflow outbox list' and GET /outbox list the messages.",
            ),
        )
    return message


def retry_letter(command: CaseCommand, message_id: int) -> None:
    """Queue a failed letter or finance booking again for delivery now; record it in the case's audit trail."""
    message = find_message(command, message_id)
    if message.status != OutboxStatus.FAILED:
        raise Conflict(
            Text(
                f"Besked {message_id} er '{message.status}', ikke 'failed'; kun opgivne beskeder kan sendes igen.",
                f"Message {message_id} is '{message.status}', not 'failed'; "
                "only messages given up can be queued again.",
            ),
            code="not_failed",
            field="message",
        )
    party = command.session.scalars(
        select(HearingParty).where(
            HearingParty.letter_document_id.is_not(None), HearingParty.letter_document_id == message.document_id
        )
    ).one_or_none()
    payload = dict(message.payload)
    if party is not None and party.used_at is None:
        if party.expires_at <= command.now:
            raise Conflict(
                Text(
                    "Høringsfristen er udløbet, så brevet kan ikke længere besvares. Åbn en ny høring i stedet.",
                    "The hearing's deadline has passed, so the letter can no longer be answered. Open a new "
                    "hearing instead.",
                ),
                code="hearing_closed",
                field="message",
            )
        token = secrets.token_urlsafe(TOKEN_BYTES)
        party.token_hash = hash_token(token)
        payload["reply_token"] = token

    message.payload = payload
    message.status = OutboxStatus.PENDING
    # The earlier attempts stay in outbox_attempts; the count starts again for the new round.
    message.attempts = 0
    message.next_attempt_at = command.now
    message.last_error = None
    if message.channel == FINANCE:
        command.changes["payments"] = payment_event(message, (OutboxStatus.FAILED, OutboxStatus.PENDING))["payments"]
        return
    document = command.session.get(Document, message.document_id) if message.document_id else None
    number = None
    if document is not None:
        document.status = DocumentStatus.QUEUED
        number = document.number
    command.changes["documents"] = [{"number": number, "status": ["failed", "queued"], "message": message.id}]


# Sending and re-sending letters is office work, which approvers and applicants do not do.
MAIL_ROLES = ("caseworker", "admin")


def require_mail_role(actor: Actor) -> None:
    """Raise Forbidden unless `actor` is a caseworker or an administrator."""
    if not any(actor.has(role) for role in MAIL_ROLES):
        raise Forbidden(
            Text(
                "Kun sagsbehandlere og administratorer kan se og gensende breve i udbakken.",
                "Only caseworkers and administrators can list and re-send the letters in the outbox.",
            ),
            code="missing_role",
            hint=Text("Det kræver rollen caseworker eller admin.", "This requires the role caseworker or admin."),
        )


def outbox_messages(
    service: Sagsflow, actor: Actor, *, status: str | None = None, channel: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """List the outbox messages of the cases `actor` may see."""
    require_scope(actor, Scope.CASES_READ)
    require_mail_role(actor)
    with service.database.read() as session:
        return list_outbox(session, service.access.visible_cases(actor), status=status, channel=channel, limit=limit)


def queue_again(service: Sagsflow, actor: Actor, message_id: int, language: Language) -> dict[str, Any]:
    """Queue a letter or payment that the outbox gave up on again, as a command on its case; return the case view.

    The command is `retry_payment` for a finance message and `retry_letter` for a letter.
    """
    require_mail_role(actor)
    with service.database.read() as session:
        message = session.get(OutboxMessage, message_id)
        case = session.get(Case, message.case_id) if message is not None else None
        if case is None or not service.may_see(actor, case):
            raise NotFound(
                Text(f"Udbakken har ingen besked nr. {message_id}.", f"The outbox has no message {message_id}."),
                code="unknown_message",
                field="message",
            )
        case_id = case.id
        name = "retry_payment" if message is not None and message.channel == FINANCE else "retry_letter"
    return service.run_command(actor, case_id, None, language, name, lambda command: retry_letter(command, message_id))
