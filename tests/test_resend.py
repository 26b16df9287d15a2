"""Letters the outbox gave up on: their status, the outbox listing, and queuing them again."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

import cli.main
from cli.main import app as cli_app
from engine.adapters.digital_post import DeliveryError, MemoryDigitalPost, PostMessage
from engine.runtime.audit import verify_chain
from engine.runtime.outbox import MAX_ATTEMPTS
from engine.runtime.worker import Worker
from engine.service import Sagsflow
from engine.storage.tables import CaseEvent, HearingParty, OutboxMessage
from tests.conftest import Clock
from tests.helpers import ADMIN, CASEWORKER, Tokens, example

auth = Tokens.header
runner = CliRunner()


class DownPost(MemoryDigitalPost):
    """Digital post that fails every delivery while `down` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True

    def send(self, message: PostMessage) -> str:
        if self.down:
            raise DeliveryError("digital post is down")
        return super().send(message)


@pytest.fixture
def down_post(service: Sagsflow) -> DownPost:
    post = DownPost()
    service.services.digital_post = post
    return post


def give_up(service: Sagsflow, clock: Clock) -> None:
    """Run the worker until the outbox gives up on every letter that is due."""
    worker = Worker(service.database, service.services, service.catalog, name="worker-1")
    for _ in range(MAX_ATTEMPTS):
        worker.run_round()
        clock.advance(hours=2)


def messages(service: Sagsflow, case_id: int) -> list[OutboxMessage]:
    with service.database.read() as session:
        return list(
            session.scalars(select(OutboxMessage).where(OutboxMessage.case_id == case_id).order_by(OutboxMessage.id))
        )


def events(service: Sagsflow, case_id: int, command: str) -> list[CaseEvent]:
    with service.database.read() as session:
        return list(
            session.scalars(select(CaseEvent).where(CaseEvent.case_id == case_id, CaseEvent.command == command))
        )


def submitted(client: TestClient, tokens: Tokens) -> dict[str, Any]:
    response = client.post("/cases", json=example("01"), headers=auth(tokens.applicant))
    assert response.status_code == 201, response.json()
    body: dict[str, Any] = response.json()
    return body


def test_given_up_letter_shows_failed(
    client: TestClient, tokens: Tokens, service: Sagsflow, down_post: DownPost, clock: Clock
) -> None:
    case = submitted(client, tokens)
    give_up(service, clock)

    letters = client.get(f"/cases/{case['id']}/letters", headers=auth(tokens.caseworker)).json()
    failed = client.get("/outbox", params={"status": "failed"}, headers=auth(tokens.caseworker)).json()["items"]

    assert letters[0]["status"] == "failed"
    assert [item["case"]["journal_number"] for item in failed] == [case["journal_number"]]
    assert failed[0]["attempts"] == MAX_ATTEMPTS
    assert failed[0]["last_error"] == "DeliveryError: digital post is down"
    assert len(events(service, case["id"], "letter_failed")) == 1


def test_retry_sends_failed_letter_once(
    client: TestClient, tokens: Tokens, service: Sagsflow, down_post: DownPost, clock: Clock
) -> None:
    case = submitted(client, tokens)
    give_up(service, clock)
    message = messages(service, case["id"])[0]
    down_post.down = False

    response = client.post(f"/outbox/{message.id}/retry", headers=auth(tokens.caseworker))
    again = client.post(f"/outbox/{message.id}/retry", headers=auth(tokens.caseworker))

    assert response.status_code == 200, response.json()
    assert list(down_post.delivered) == [message.idempotency_key]
    assert messages(service, case["id"])[0].status == "sent"
    letters = client.get(f"/cases/{case['id']}/letters", headers=auth(tokens.caseworker)).json()
    assert letters[0]["status"] == "sent"
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "not_failed"
    retried = events(service, case["id"], "retry_letter")
    assert [event.actor for event in retried] == ["karen"]
    with service.database.read() as session:
        assert verify_chain(session, case["id"]).ok


def test_retry_needs_caseworker_of_team(
    client: TestClient, tokens: Tokens, service: Sagsflow, down_post: DownPost, clock: Clock
) -> None:
    case = submitted(client, tokens)
    give_up(service, clock)
    message = messages(service, case["id"])[0]
    service.add_user(ADMIN, "ole", ["caseworker"], ["skov"])
    other_team = service.create_token("ole")

    by_approver = client.post(f"/outbox/{message.id}/retry", headers=auth(tokens.approver))
    by_applicant = client.post(f"/outbox/{message.id}/retry", headers=auth(tokens.applicant))
    by_other_team = client.post(f"/outbox/{message.id}/retry", headers=auth(other_team))
    unknown = client.post("/outbox/999999/retry", headers=auth(tokens.caseworker))
    listed_by_other_team = client.get("/outbox", headers=auth(other_team)).json()["items"]
    without_token = client.post(f"/outbox/{message.id}/retry")

    assert by_approver.status_code == 403
    assert by_applicant.status_code == 403
    assert by_other_team.status_code == 404
    assert unknown.status_code == 404
    assert listed_by_other_team == []
    assert without_token.status_code == 401
    assert messages(service, case["id"])[0].status == "failed"


def test_retried_hearing_letter_gets_new_token(
    service: Sagsflow, down_post: DownPost, clock: Clock, client: TestClient, tokens: Tokens
) -> None:
    down_post.down = False
    case = submitted(client, tokens)
    for step, data in (
        ("completeness_check", {"application_complete": True}),
        ("export_permit_check", {"export_permit_verified": True}),
        ("fact_assessment", {"assessment_note": "Høres.", "consultation_required": True}),
    ):
        case = service.complete_step(CASEWORKER, case["id"], step, data, None, "da")
    down_post.down = True
    museum = {"name": "Statens Naturhistoriske Museum", "id_type": "CVR", "id": "29979812"}
    opened = client.post(
        f"/cases/{case['id']}/steps/consultation/hearing", json={"parties": [museum]}, headers=auth(tokens.caseworker)
    )
    assert opened.status_code == 200, opened.json()
    with service.database.read() as session:
        old_hash = session.scalars(select(HearingParty.token_hash)).one()
    give_up(service, clock)
    hearing_message = messages(service, case["id"])[-1]
    assert hearing_message.status == "failed"
    assert "reply_token" not in hearing_message.payload, "a given-up letter keeps no raw token"
    down_post.down = False

    retried = client.post(f"/outbox/{hearing_message.id}/retry", headers=auth(tokens.caseworker))

    assert retried.status_code == 200, retried.json()
    sent = down_post.delivered[hearing_message.idempotency_key]
    token = re.findall(r"/hearing-replies/([A-Za-z0-9_-]+)", sent.main_document_text)[0]
    assert token != "REDACTED"
    with service.database.read() as session:
        assert session.scalars(select(HearingParty.token_hash)).one() != old_hash
    reply = client.post(f"/hearing-replies/{token}", json={"text": "Ingen bemærkninger."})
    assert reply.status_code == 201, reply.json()


def test_cli_lists_and_retries(
    service: Sagsflow, down_post: DownPost, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli.main, "open_service", lambda: service)
    application = example("01")
    case = service.submit(CASEWORKER, application["process"], application["data"], "da")
    give_up(service, clock)
    message = messages(service, case["id"])[0]
    down_post.down = False
    service.add_user(ADMIN, "karen", ["caseworker"], ["cites"])
    service.add_user(ADMIN, "bo", ["approver"], ["cites"])

    listed = runner.invoke(cli_app, ["outbox", "list", "--status", "failed"], env={"SAGSFLOW_LANGUAGE": "da"})
    bad_status = runner.invoke(cli_app, ["outbox", "list", "--status", "lost"], env={"SAGSFLOW_LANGUAGE": "da"})
    retried = runner.invoke(
        cli_app, ["outbox", "retry", str(message.id), "--as", "karen"], env={"SAGSFLOW_LANGUAGE": "da"}
    )
    approver = runner.invoke(
        cli_app, ["outbox", "retry", str(message.id), "--as", "bo"], env={"SAGSFLOW_LANGUAGE": "da"}
    )

    assert listed.exit_code == 0, listed.output
    assert case["journal_number"] in listed.output
    assert "failed" in listed.output
    assert bad_status.exit_code == 2
    assert "Ukendt status 'lost'" in bad_status.output
    assert retried.exit_code == 0, retried.output
    assert "lagt i udbakken igen; 1 sendt nu" in retried.output
    assert approver.exit_code == 1
    assert "caseworker eller admin" in approver.output
    assert list(down_post.delivered) == [message.idempotency_key]
