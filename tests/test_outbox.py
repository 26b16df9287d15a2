"""The outbox: letters are delivered once, survive adapter failures, and are audited."""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy import select

from engine.adapters.digital_post import MemoryDigitalPost, PostMessage
from engine.runtime.audit import GENESIS_HASH, event_hash
from engine.service import Sagsflow
from engine.storage.tables import CaseEvent, OutboxMessage
from tests.conftest import Clock
from tests.helpers import APPLICANT, CASEWORKER, example


def submit(service: Sagsflow) -> dict[str, Any]:
    application = example("01")
    return service.submit(APPLICANT, application["process"], application["data"], "da")


def letter_status(service: Sagsflow, case: dict[str, Any]) -> str:
    letters = service.list_letters(CASEWORKER, case["id"])
    status: str = letters[0]["status"]
    return status


def test_letter_waits_in_outbox_until_dispatched(service: Sagsflow, post: MemoryDigitalPost) -> None:
    case = submit(service)

    assert letter_status(service, case) == "queued"
    assert post.delivered == {}

    report = service.dispatch_outbox()

    assert report.sent == 1
    assert letter_status(service, case) == "sent"
    message = next(iter(post.delivered.values()))
    assert message.recipient.id_type == "CVR"
    assert message.recipient.id == "90131443"
    assert message.case_reference == case["journal_number"]
    assert message.sender.name == "Miljøstyrelsen"


def test_failed_delivery_is_retried_later(service: Sagsflow, post: MemoryDigitalPost, clock: Clock) -> None:
    case = submit(service)
    post.failures_left = 1

    first = service.dispatch_outbox()
    again = service.dispatch_outbox()
    clock.advance(seconds=31)
    later = service.dispatch_outbox()

    assert (first.retried, first.sent) == (1, 0)
    assert (again.retried, again.sent) == (0, 0)  # not due yet: the backoff holds it back
    assert later.sent == 1
    assert letter_status(service, case) == "sent"
    with service.database.read() as session:
        row = session.scalars(select(OutboxMessage)).one()
        assert row.attempts == 2
        assert row.last_error is None


class CrashAfterSend(MemoryDigitalPost):
    """Delivers, then fails as if the dispatcher died before it could commit."""

    def __init__(self) -> None:
        super().__init__()
        self.crashes_left = 1

    def send(self, message: PostMessage) -> str:
        receipt = super().send(message)
        if self.crashes_left:
            self.crashes_left -= 1
            raise ConnectionError("connection lost after delivery")
        return receipt


def test_retry_after_crash_delivers_once(service: Sagsflow, clock: Clock) -> None:
    post = CrashAfterSend()
    service.services.digital_post = post
    case = submit(service)

    service.dispatch_outbox()
    clock.advance(minutes=5)
    service.dispatch_outbox()

    assert post.calls == 2
    assert len(post.delivered) == 1
    assert letter_status(service, case) == "sent"


def test_audit_chain_links_every_event(service: Sagsflow) -> None:
    case = submit(service)
    service.dispatch_outbox()
    service.complete_step(CASEWORKER, case["id"], "completeness_check", {"application_complete": True}, None, "da")

    with service.database.read() as session:
        chain = list(
            session.scalars(select(CaseEvent).where(CaseEvent.case_id == case["id"]).order_by(CaseEvent.sequence))
        )

    assert [event.command for event in chain] == ["submit", "letter_sent", "complete_step"]
    assert chain[0].previous_hash == GENESIS_HASH
    for previous, event in itertools.pairwise(chain):
        assert event.previous_hash == previous.hash
    for event in chain:
        recomputed = event_hash(
            event.case_id, event.sequence, event.at, event.actor, event.command, event.changes, event.previous_hash
        )
        assert recomputed == event.hash


def test_submit_event_records_data_and_phases(service: Sagsflow) -> None:
    case = submit(service)

    with service.database.read() as session:
        event = session.scalars(select(CaseEvent).where(CaseEvent.case_id == case["id"])).one()

    assert event.actor == "kragelund"
    assert event.changes["data"]["species"] == [None, "Python regius"]
    assert event.changes["phases"] == [[None, "receipt"], ["receipt", "screening"]]
