"""Hearings (høring) and party hearings (partshøring) over HTTP, on SQLite and PostgreSQL.

A caseworker opens the hearing of an active hearing step with `POST /cases/{case}/steps/{step}/hearing`.
Each party gets a letter with a personal reply link, `/hearing-replies/{token}`, which needs no
bearer token. The tests take the tokens from the letters that the fake digital post received.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import secrets
import shutil
import sqlite3
import textwrap
import threading
import zipfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

import engine.runtime.hearings as hearings_module
import engine.runtime.letters as letters_module
from api.limits import MAX_REPLY_BODY_BYTES
from engine.adapters.digital_post import MemoryDigitalPost
from engine.definitions.loader import load_definitions
from engine.errors import Conflict
from engine.runtime.commands import CaseCommand
from engine.runtime.hearings import submit_reply
from engine.runtime.worker import Worker
from engine.service import Sagsflow
from engine.storage.database import Database
from engine.storage.tables import (
    Base,
    Case,
    CaseEvent,
    CaseStep,
    Document,
    Hearing,
    HearingParty,
    OutboxMessage,
)
from tests.conftest import Clock
from tests.helpers import ADMIN, CASEWORKER, REPOSITORY, Tokens, example

auth = Tokens.header

MUSEUM = {"name": "Statens Naturhistoriske Museum", "id_type": "CVR", "id": "29979812"}
PERSON = {"name": "Jens Hansen", "id_type": "CPR", "id": "150372-1234"}
QUESTION = "Har I bemærkninger til, om dyrene kan mærkes med mikrochip?"
REPLY_LINK = re.compile(r"/hearing-replies/([A-Za-z0-9_-]+)")

PDF_BYTES = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PNG_BYTES = b"\x89PNG\r\n\x1a\n" + bytes(32)


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("payload.txt", "not a pdf")
    return buffer.getvalue()


def attachment(filename: str, content_type: str, content: bytes) -> dict[str, str]:
    return {
        "filename": filename,
        "content_type": content_type,
        "content_base64": base64.b64encode(content).decode("ascii"),
    }


# Driving a case over HTTP --------------------------------------------------------------------


def complete(client: TestClient, token: str, case: dict[str, Any], step: str, data: dict[str, Any]) -> dict[str, Any]:
    response = client.post(
        f"/cases/{case['id']}/steps/{step}/complete",
        json={"data": data, "version": case["version"]},
        headers=auth(token),
    )
    assert response.status_code == 200, response.json()
    body: dict[str, Any] = response.json()
    return body


def fetch(client: TestClient, tokens: Tokens, case: dict[str, Any], language: str | None = None) -> dict[str, Any]:
    response = client.get(f"/cases/{case['id']}", headers=auth(tokens.caseworker, language))
    assert response.status_code == 200, response.json()
    body: dict[str, Any] = response.json()
    return body


def step(case: dict[str, Any], step_id: str) -> dict[str, Any]:
    """Return the newest instance of a step in the case's checklist."""
    instances: list[dict[str, Any]] = [entry for entry in case["checklist"] if entry["step"] == step_id]
    assert instances, f"no step {step_id} in {[entry['step'] for entry in case['checklist']]}"
    return instances[-1]


def fact_finding(
    client: TestClient, tokens: Tokens, submitter: str | None = None, variant: int | None = None
) -> dict[str, Any]:
    """Submit the kongepython application (by the applicant unless `submitter` is given) and take it to fact-finding.

    A case that a caseworker submits belongs to the caseworker's team; the applicant's case belongs to no team.
    """
    submitted = client.post("/cases", json=example("01", variant), headers=auth(submitter or tokens.applicant))
    assert submitted.status_code == 201, submitted.json()
    case = fetch(client, tokens, submitted.json())
    case = complete(client, tokens.caseworker, case, "completeness_check", {"application_complete": True})
    return complete(client, tokens.caseworker, case, "export_permit_check", {"export_permit_verified": True})


def consultation_case(
    client: TestClient, tokens: Tokens, submitter: str | None = None, variant: int | None = None
) -> dict[str, Any]:
    """Return a case in the phase `hoering`, its step `consultation` active."""
    case = fact_finding(client, tokens, submitter, variant)
    case = complete(
        client,
        tokens.caseworker,
        case,
        "fact_assessment",
        {"assessment_note": "Ranchede dyr fra Togo.", "consultation_required": True},
    )
    assert case["phase"]["id"] == "hoering"
    assert step(case, "consultation")["status"] == "active"
    return case


REFUSAL = {
    "decision_outcome": "refused",
    "decision_text": "Miljøstyrelsen afslår at give tilladelse til indførsel af 60 levende Python regius.",
    "statement_of_reasons": "Eksporttilladelsen dækker ikke ranchede dyr, og kvoten for Togo er opbrugt.",
}


def party_hearing_case(client: TestClient, tokens: Tokens) -> dict[str, Any]:
    """Return a case whose draft refuses the application, so it waits in the phase `partshoering`."""
    case = fact_finding(client, tokens)
    case = complete(
        client,
        tokens.caseworker,
        case,
        "fact_assessment",
        {"assessment_note": "Kvoten er opbrugt.", "consultation_required": False},
    )
    case = complete(client, tokens.caseworker, case, "draft_decision", REFUSAL)
    assert case["phase"]["id"] == "partshoering"
    return case


def open_hearing(
    client: TestClient,
    token: str,
    case: dict[str, Any],
    step_id: str = "consultation",
    body: dict[str, Any] | None = None,
) -> Any:
    if body is None:
        body = {"parties": [MUSEUM, PERSON], "merged": {"question": QUESTION}, "version": case["version"]}
    return client.post(f"/cases/{case['id']}/steps/{step_id}/hearing", json=body, headers=auth(token))


def opened(client: TestClient, tokens: Tokens, case: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    response = open_hearing(client, tokens.caseworker, case, **kwargs)
    assert response.status_code == 200, response.json()
    body: dict[str, Any] = response.json()
    return body


def reply_tokens(post: MemoryDigitalPost, case: dict[str, Any]) -> dict[str, str]:
    """Return the reply token in each hearing letter the case sent, by the party's CVR or CPR number."""
    found: dict[str, str] = {}
    for message in post.delivered.values():
        match = REPLY_LINK.search(message.main_document_text)
        if message.case_reference == case["journal_number"] and match:
            found[message.recipient.id] = match.group(1)
    return found


# Reading the database ------------------------------------------------------------------------


def snapshot(database: Database, case_id: int) -> dict[str, Any]:
    """Return everything a hearing command may change on a case, to compare before and after."""
    with database.read() as session:
        case = session.get(Case, case_id)
        assert case is not None
        hearing_ids = select(Hearing.id).where(Hearing.case_id == case_id)
        return {
            "version": case.version,
            "phase": case.phase,
            "document_count": case.document_count,
            "documents": list(
                session.execute(
                    select(Document.number, Document.kind, Document.status).where(Document.case_id == case_id)
                )
            ),
            "steps": list(
                session.execute(
                    select(CaseStep.step_id, CaseStep.status, CaseStep.outcome, CaseStep.due_at)
                    .where(CaseStep.case_id == case_id)
                    .order_by(CaseStep.id)
                )
            ),
            "hearings": list(
                session.execute(select(Hearing.status, Hearing.closed_at).where(Hearing.case_id == case_id))
            ),
            "parties": list(
                session.execute(
                    select(HearingParty.used_at, HearingParty.reply_document_id, HearingParty.expires_at)
                    .where(HearingParty.hearing_id.in_(hearing_ids))
                    .order_by(HearingParty.id)
                )
            ),
            "outbox": session.scalar(select(func.count()).where(OutboxMessage.case_id == case_id)),
            "events": session.scalar(select(func.count()).where(CaseEvent.case_id == case_id)),
        }


def stored_text(database: Database) -> str:
    """Return every row of every table as one text, to search for a value that must not be stored."""
    with database.engine.connect() as connection:
        return "\n".join(
            repr(tuple(row)) for table in Base.metadata.sorted_tables for row in connection.execute(table.select())
        )


# Opening ---------------------------------------------------------------------------------------


def test_hearing_sends_one_letter_per_party(
    client: TestClient, tokens: Tokens, post: MemoryDigitalPost, clock: Clock, database: Database
) -> None:
    case = consultation_case(client, tokens)
    # Friday 11 December: three weeks end on New Year's Day, a holiday, then a weekend.
    clock.advance(days=7)

    case = opened(client, tokens, case)

    consultation = step(case, "consultation")
    assert consultation["status"] == "waiting"
    assert consultation["due_at"] == "2027-01-04T22:59:59+00:00"
    assert case["phase"]["id"] == "hoering"

    letters = [
        letter
        for letter in client.get(f"/cases/{case['id']}/letters", headers=auth(tokens.caseworker)).json()
        if letter["letter"] == "consultation"
    ]
    assert [letter["recipient"]["id"] for letter in letters] == ["29979812", "150372-1234"]
    numbers = [letter["number"] for letter in letters]
    assert len(set(numbers)) == 2
    filed = {document["number"]: document for document in fetch(client, tokens, case)["documents"]}
    for letter in letters:
        assert filed[letter["number"]]["kind"] == "letter"
        assert letter["title"] == "Høring"
        assert letter["status"] == "sent"
        assert "/hearing-replies/REDACTED" in letter["text"], "the filed letter keeps no reply token"
        assert QUESTION in letter["text"]
        assert letter["recipient"]["name"] in letter["text"]
        assert "4. januar 2027" in letter["text"]
        assert case["journal_number"] in letter["text"]

    tokens_by_party = reply_tokens(post, case)
    assert sorted(tokens_by_party) == ["150372-1234", "29979812"]
    museum_token, person_token = tokens_by_party["29979812"], tokens_by_party["150372-1234"]
    assert museum_token != person_token
    museum_letter = post.delivered[f"letter:{case['journal_number']}:{numbers[0]}"]
    assert museum_token in museum_letter.main_document_text
    assert person_token not in museum_letter.main_document_text

    with database.read() as session:
        hashes = set(session.scalars(select(HearingParty.token_hash)))
    assert hashes == {hashlib.sha256(token.encode()).hexdigest() for token in tokens_by_party.values()}
    everything = stored_text(database)
    assert museum_token not in everything
    assert person_token not in everything


def test_party_hearing_hears_case_party(client: TestClient, tokens: Tokens, post: MemoryDigitalPost) -> None:
    case = party_hearing_case(client, tokens)

    case = opened(client, tokens, case, step_id="party_hearing", body={"version": case["version"]})

    hearing = step(case, "party_hearing")
    assert hearing["status"] == "waiting"
    # 14 calendar days from Friday 4 December 2026 end on Friday 18 December.
    assert hearing["due_at"] == "2026-12-18T22:59:59+00:00"
    letter = client.get(f"/cases/{case['id']}/letters", headers=auth(tokens.caseworker)).json()[-1]
    assert letter["letter"] == "party_hearing"
    assert letter["title"] == "Partshøring"
    assert letter["recipient"] == {
        "id_type": "CVR",
        "id": "90131443",
        "name": "Kragelund Terrarieimport ApS",
        "address": "Funder Bygade 14",
        "postcode": "8600",
        "city": "Silkeborg",
    }
    assert "Funder Bygade 14" in letter["text"]
    assert REFUSAL["decision_text"] in letter["text"]
    assert REFUSAL["statement_of_reasons"] in letter["text"]
    assert "forvaltningsloven § 19" in letter["text"]
    assert "18. december 2026" in letter["text"]
    assert list(reply_tokens(post, case)) == ["90131443"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"parties": []}, "parties"),
        ({"parties": [{**MUSEUM, "id": "29979813"}]}, "parties.0.id"),
        ({"parties": [MUSEUM, {**MUSEUM, "name": "Museet igen"}]}, "parties.1.id"),
        ({"parties": [{**MUSEUM, "id_type": "EAN"}]}, "parties.0.id_type"),
        ({"parties": [{**PERSON, "id": "320172-1234"}]}, "parties.0.id"),
        ({"parties": [{**MUSEUM, "email": "ikke en adresse"}]}, "parties.0.email"),
        ({"parties": [{"id_type": "CVR", "id": "29979812"}]}, "parties.0.name"),
        ({"parties": [{**MUSEUM, "role": "expert"}]}, "parties.0.role"),
        ({"parties": [MUSEUM], "merged": {"Spørgsmål": "?"}}, "merged"),
        ({"parties": [MUSEUM], "merged": {"question": 42}}, "merged.question"),
        ({"parties": [MUSEUM] * 51}, "parties"),
    ],
    ids=[
        "no_parties",
        "cvr_checksum",
        "duplicate",
        "id_type",
        "cpr_date",
        "email",
        "name_missing",
        "unknown_field",
        "merge_key",
        "merge_value",
        "too_many",
    ],
)
def test_invalid_hearing_request_changes_nothing(
    client: TestClient,
    tokens: Tokens,
    post: MemoryDigitalPost,
    database: Database,
    body: dict[str, Any],
    field: str,
) -> None:
    case = consultation_case(client, tokens)
    before = snapshot(database, case["id"])
    sent = len(post.delivered)

    response = open_hearing(client, tokens.caseworker, case, body=body)

    assert response.status_code == 422, response.json()
    fields = [entry["field"] for entry in response.json()["error"]["errors"]]
    assert field in fields
    assert snapshot(database, case["id"]) == before
    assert len(post.delivered) == sent


def test_hearing_needs_caseworker_of_team(
    client: TestClient, tokens: Tokens, service: Sagsflow, database: Database
) -> None:
    own_case = consultation_case(client, tokens)
    team_case = consultation_case(client, tokens, submitter=tokens.caseworker, variant=2)
    assert team_case["team"] == "cites"
    service.add_user(ADMIN, "sven", ["caseworker"], ["skov"])
    other_team = service.create_token("sven")
    before = [snapshot(database, case["id"]) for case in (own_case, team_case)]

    applicant = open_hearing(client, tokens.applicant, own_case)
    approver = open_hearing(client, tokens.approver, team_case)
    stranger = open_hearing(client, other_team, team_case)
    anonymous = client.post(f"/cases/{team_case['id']}/steps/consultation/hearing", json={"parties": [MUSEUM]})

    assert applicant.status_code == 403
    assert approver.status_code == 403
    assert approver.json()["error"]["code"] == "missing_role"
    assert stranger.status_code == 404
    assert stranger.json()["error"]["code"] == "unknown_case"
    assert anonymous.status_code == 401
    assert [snapshot(database, case["id"]) for case in (own_case, team_case)] == before


def test_hearing_on_wrong_step_rejected(client: TestClient, tokens: Tokens, database: Database) -> None:
    case = fact_finding(client, tokens)
    before = snapshot(database, case["id"])

    not_active = open_hearing(client, tokens.caseworker, case, step_id="consultation")
    task = open_hearing(client, tokens.caseworker, case, step_id="fact_assessment")
    unknown = open_hearing(client, tokens.caseworker, case, step_id="no_such_step")
    unknown_case = client.post(
        "/cases/2026-999999/steps/consultation/hearing", json={"parties": [MUSEUM]}, headers=auth(tokens.caseworker)
    )

    assert not_active.status_code == 409
    assert not_active.json()["error"]["code"] == "step_not_active"
    assert "fact_assessment" in not_active.json()["error"]["hint"]
    assert task.status_code == 400
    assert task.json()["error"]["code"] == "wrong_step_kind"
    assert "ikke en høring" in task.json()["error"]["message"]
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "unknown_step"
    assert unknown_case.status_code == 404
    assert snapshot(database, case["id"]) == before


def test_hearing_opened_twice_conflicts(
    client: TestClient, tokens: Tokens, post: MemoryDigitalPost, database: Database
) -> None:
    case = consultation_case(client, tokens)
    case = opened(client, tokens, case)
    before = snapshot(database, case["id"])
    sent = len(post.delivered)

    again = open_hearing(client, tokens.caseworker, case)

    assert again.status_code == 409
    assert again.json()["error"]["code"] == "hearing_open"
    assert "er allerede åben" in again.json()["error"]["message"]
    assert snapshot(database, case["id"]) == before
    assert len(post.delivered) == sent


def test_hearing_with_stale_version_conflicts(client: TestClient, tokens: Tokens, database: Database) -> None:
    case = consultation_case(client, tokens)
    before = snapshot(database, case["id"])

    stale = open_hearing(client, tokens.caseworker, case, body={"parties": [MUSEUM], "version": case["version"] - 1})
    if_match = client.post(
        f"/cases/{case['id']}/steps/consultation/hearing",
        json={"parties": [MUSEUM]},
        headers={**auth(tokens.caseworker), "If-Match": f'"{case["version"] - 1}"'},
    )

    assert stale.status_code == 409
    assert stale.json()["error"]["code"] == "stale_version"
    assert if_match.status_code == 409
    assert snapshot(database, case["id"]) == before


def test_crash_while_opening_leaves_nothing(
    client: TestClient,
    tokens: Tokens,
    post: MemoryDigitalPost,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    case = consultation_case(client, tokens)
    before = snapshot(database, case["id"])
    sent = len(post.delivered)
    render = letters_module.hearing_context
    calls: list[int] = []

    def fail_on_second_party(*args: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("simulated crash while rendering the second letter")
        return render(*args, **kwargs)

    monkeypatch.setattr("engine.runtime.hearings.hearing_context", fail_on_second_party)
    crashed = open_hearing(client, tokens.caseworker, case)

    assert crashed.status_code == 500
    assert len(calls) == 2, "the crash came after the first party's letter was filed"
    assert snapshot(database, case["id"]) == before
    assert len(post.delivered) == sent
    with database.read() as session:
        assert session.scalar(select(func.count()).select_from(Hearing)) == 0
        assert session.scalar(select(func.count()).select_from(HearingParty)) == 0

    monkeypatch.undo()
    assert step(opened(client, tokens, case), "consultation")["status"] == "waiting"


# The reply link ----------------------------------------------------------------------------------


def test_reply_page_shows_case_only(client: TestClient, tokens: Tokens, post: MemoryDigitalPost) -> None:
    case = opened(client, tokens, consultation_case(client, tokens))
    token = reply_tokens(post, case)["29979812"]

    shown = client.get(f"/hearing-replies/{token}")
    english = client.get(f"/hearing-replies/{token}", headers={"Accept-Language": "en"})

    assert shown.status_code == 200, shown.json()
    assert shown.json() == {
        "journal_number": case["journal_number"],
        "process": "CITES-importtilladelse",
        "kind": "hearing",
        "deadline": "2026-12-28T22:59:59+00:00",
    }
    for private in ("Jens Hansen", "150372-1234", "Kragelund", "90131443", "Python regius", QUESTION):
        assert private not in shown.text
    assert english.json()["process"] == "CITES import permit"


def test_reply_files_text_and_attachments(
    client: TestClient, tokens: Tokens, post: MemoryDigitalPost, database: Database
) -> None:
    case = opened(client, tokens, consultation_case(client, tokens))
    token = reply_tokens(post, case)["29979812"]
    notes = "Mærkning med mikrochip er mulig.\n".encode()
    photo = PNG_BYTES + bytes(200)
    # Encoded in lines of 76 characters, as the `base64` command and MIME encoders write it.
    wrapped = {
        "filename": "foto.png",
        "content_type": "image/png",
        "content_base64": base64.encodebytes(photo).decode(),
    }
    assert wrapped["content_base64"].count("\n") > 1
    files = [
        attachment("udtalelse.pdf", "application/pdf", PDF_BYTES),
        wrapped,
        attachment("noter.txt", "text/plain", notes),
    ]

    reply = client.post(
        f"/hearing-replies/{token}", json={"text": "Museet har ingen indvendinger.", "attachments": files}
    )

    assert reply.status_code == 201, reply.json()
    assert reply.json()["journal_number"] == case["journal_number"]
    assert reply.json()["documents"] == 4
    case = fetch(client, tokens, case)
    row = step(case, "hearing_reply_1")
    assert row["label"] == "Høringssvar"
    assert row["kind"] == "hearing_reply"
    assert row["status"] == "done"
    assert row["phase"] == "hoering"
    assert step(fetch(client, tokens, case, "en"), "hearing_reply_1")["label"] == "Hearing reply"
    assert step(case, "consultation")["status"] == "waiting", "the other party has not replied yet"

    filed = [document for document in case["documents"] if document["kind"] == "hearing_reply"]
    assert len(filed) == 4
    assert filed[0]["title"] == "Høringssvar fra Statens Naturhistoriske Museum"
    assert filed[0]["sha256"] == hashlib.sha256(b"Museet har ingen indvendinger.").hexdigest()
    expected = [PDF_BYTES, photo, notes]
    for document, content in zip(filed[1:], expected, strict=True):
        assert document["sha256"] == hashlib.sha256(content).hexdigest()
        downloaded = client.get(
            f"/cases/{case['id']}/documents/{document['number']}/content", headers=auth(tokens.caseworker)
        )
        assert downloaded.content == content
    assert [document["title"] for document in filed[1:]] == ["udtalelse.pdf", "foto.png", "noter.txt"]

    with database.read() as session:
        party = session.scalars(select(HearingParty).where(HearingParty.party_id == "29979812")).one()
        reply_document = session.get(Document, party.reply_document_id)
        reply_row = session.scalars(select(CaseStep).where(CaseStep.step_id == "hearing_reply_1")).one()
    assert party.used_at is not None
    assert reply_document is not None
    assert reply_document.number == filed[0]["number"]
    assert reply_row.data["party"] == "Statens Naturhistoriske Museum"
    assert reply_row.data["documents"] == [document["number"] for document in filed]


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"text": ""}, "text", "required"),
        ({"text": "   \n "}, "text", "required"),
        ({}, "text", "missing"),
        ({"text": 42}, "text", "string_type"),
        ({"text": "Svar", "extra": 1}, "extra", "extra_forbidden"),
        ({"text": "Svar", "attachments": [attachment("a.pdf", "application/pdf", PNG_BYTES)]}, None, None),
        ({"text": "Svar", "attachments": [attachment("a.pdf", "application/pdf", zip_bytes())]}, None, None),
        ({"text": "Svar", "attachments": [attachment("a.png", "application/pdf", PNG_BYTES)]}, None, None),
        ({"text": "Svar", "attachments": [attachment("a.exe", "application/pdf", b"MZ\x90\x00")]}, None, None),
        ({"text": "Svar", "attachments": [attachment("a.csv", "text/csv", b"a;b\n1;2\n")]}, None, None),
        ({"text": "Svar", "attachments": [attachment("a.pdf", "application/pdf", b"")]}, None, "empty"),
        (
            {
                "text": "Svar",
                "attachments": [{"filename": "a.pdf", "content_type": "application/pdf", "content_base64": "%%%"}],
            },
            "attachments.0.content_base64",
            "invalid_value",
        ),
        ({"text": "Svar", "attachments": [attachment("a.txt", "text/plain", b"x")] * 11}, "attachments", None),
        ({"text": "Svar\x00"}, "text", None),
    ],
    ids=[
        "empty_text",
        "blank_text",
        "text_missing",
        "text_number",
        "unknown_field",
        "png_as_pdf",
        "zip_as_pdf",
        "png_named_pdf_type",
        "program",
        "csv_not_allowed",
        "empty_file",
        "bad_base64",
        "too_many_files",
        "control_character",
    ],
)
def test_invalid_reply_changes_nothing(
    client: TestClient,
    tokens: Tokens,
    post: MemoryDigitalPost,
    database: Database,
    body: dict[str, Any],
    field: str | None,
    code: str | None,
) -> None:
    case = opened(client, tokens, consultation_case(client, tokens))
    token = reply_tokens(post, case)["29979812"]
    before = snapshot(database, case["id"])

    refused = client.post(f"/hearing-replies/{token}", json=body)

    assert refused.status_code == 422, refused.json()
    errors = refused.json()["error"]["errors"]
    if field is not None:
        assert field in [entry["field"] for entry in errors]
    if code is not None:
        assert code in [entry["code"] for entry in errors]
    assert snapshot(database, case["id"]) == before
    accepted = client.post(f"/hearing-replies/{token}", json={"text": "Nu rigtigt."})
    assert accepted.status_code == 201, "a refused reply leaves the link usable"


def test_oversized_reply_rejected(
    client: TestClient,
    tokens: Tokens,
    post: MemoryDigitalPost,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    case = opened(client, tokens, consultation_case(client, tokens))
    tokens_by_party = reply_tokens(post, case)
    token = tokens_by_party["29979812"]
    before = snapshot(database, case["id"])

    whole_body = client.post(
        f"/hearing-replies/{token}",
        content=b"{" + b" " * MAX_REPLY_BODY_BYTES + b"}",
        headers={"Content-Type": "application/json"},
    )
    monkeypatch.setattr(hearings_module, "MAX_REPLY_ATTACHMENT_BYTES", 1_500)
    together = client.post(
        f"/hearing-replies/{token}",
        json={
            "text": "Svar",
            "attachments": [
                attachment("a.pdf", "application/pdf", PDF_BYTES + bytes(900)),
                attachment("b.pdf", "application/pdf", PDF_BYTES + bytes(900)),
            ],
        },
    )
    monkeypatch.setattr(hearings_module, "MAX_UPLOAD_BYTES", 1_000)
    one_file = client.post(
        f"/hearing-replies/{token}",
        json={"text": "Svar", "attachments": [attachment("a.pdf", "application/pdf", PDF_BYTES + bytes(1_000))]},
    )
    long_text = client.post(f"/hearing-replies/{token}", json={"text": "x" * (hearings_module.MAX_REPLY_LENGTH + 1)})

    assert whole_body.status_code == 413
    assert "10 MB" in whole_body.json()["error"]["message"]
    assert together.status_code == 422
    assert together.json()["error"]["errors"][0]["field"] == "attachments"
    assert together.json()["error"]["errors"][0]["code"] == "too_large"
    assert one_file.status_code == 422
    assert one_file.json()["error"]["errors"][0]["code"] == "too_large"
    assert long_text.status_code == 422
    assert long_text.json()["error"]["errors"][0]["code"] == "too_long"
    assert snapshot(database, case["id"]) == before


def test_reply_with_large_attachment_accepted(
    client: TestClient, tokens: Tokens, post: MemoryDigitalPost, service: Sagsflow
) -> None:
    case = opened(client, tokens, consultation_case(client, tokens))
    token = reply_tokens(post, case)["29979812"]
    report = PDF_BYTES + bytes(3_000_000)

    response = client.post(
        f"/hearing-replies/{token}",
        json={"text": "Se vedhæftede rapport.", "attachments": [attachment("rapport.pdf", "application/pdf", report)]},
    )

    assert response.status_code == 201, response.json()
    documents = service.get_case(CASEWORKER, case["id"], "da")["documents"]
    assert documents[-1]["sha256"] == hashlib.sha256(report).hexdigest()


def test_reused_link_conflicts(client: TestClient, tokens: Tokens, post: MemoryDigitalPost, database: Database) -> None:
    case = opened(client, tokens, consultation_case(client, tokens))
    token = reply_tokens(post, case)["29979812"]
    first = client.post(f"/hearing-replies/{token}", json={"text": "Ingen bemærkninger."})
    assert first.status_code == 201
    before = snapshot(database, case["id"])

    again = client.post(f"/hearing-replies/{token}", json={"text": "Alligevel en bemærkning."})
    english = client.post(
        f"/hearing-replies/{token}", json={"text": "A comment after all."}, headers={"Accept-Language": "en"}
    )
    shown = client.get(f"/hearing-replies/{token}")

    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_replied"
    assert "kan kun bruges én gang" in again.json()["error"]["message"]
    assert "journalnummer" in again.json()["error"]["hint"]
    assert english.status_code == 409
    assert "can be used only once" in english.json()["error"]["message"]
    assert shown.status_code == 409
    assert snapshot(database, case["id"]) == before


def test_expired_link_is_gone(
    client: TestClient, tokens: Tokens, post: MemoryDigitalPost, clock: Clock, database: Database
) -> None:
    case = opened(client, tokens, consultation_case(client, tokens))
    token = reply_tokens(post, case)["29979812"]
    # The deadline is 28 December 2026 at 23:59:59 Copenhagen time. The worker has not run yet.
    clock.now = datetime.fromisoformat(step(case, "consultation")["due_at"]) + timedelta(seconds=1)
    before = snapshot(database, case["id"])

    late = client.post(f"/hearing-replies/{token}", json={"text": "For sent."})
    english = client.post(f"/hearing-replies/{token}", json={"text": "Too late."}, headers={"Accept-Language": "en"})
    shown = client.get(f"/hearing-replies/{token}")

    assert late.status_code == 410
    assert late.json()["error"]["code"] == "reply_link_expired"
    assert "Fristen for at svare udløb" in late.json()["error"]["message"]
    assert "The deadline for replying passed" in english.json()["error"]["message"]
    assert shown.status_code == 410
    assert snapshot(database, case["id"]) == before


@pytest.mark.parametrize(
    "token",
    ["abc", "REDACTED", "x" * 101, "token.with.dots.in.it", "ab cd" * 5, secrets.token_urlsafe(32)],
    ids=["short", "placeholder", "long", "dots", "spaces", "unknown"],
)
def test_unknown_link_not_found(client: TestClient, tokens: Tokens, database: Database, token: str) -> None:
    case = consultation_case(client, tokens)
    before = snapshot(database, case["id"])

    shown = client.get(f"/hearing-replies/{token}")
    replied = client.post(f"/hearing-replies/{token}", json={"text": "Svar"})

    assert shown.status_code == 404
    assert shown.json()["error"]["code"] == "unknown_reply_link"
    assert replied.status_code == 404
    assert replied.json()["error"]["code"] == "unknown_reply_link"
    assert snapshot(database, case["id"]) == before


def test_same_link_twice_at_once_files_one_reply(
    service: Sagsflow, client: TestClient, tokens: Tokens, post: MemoryDigitalPost, clock: Clock
) -> None:
    case = opened(client, tokens, consultation_case(client, tokens))
    token = reply_tokens(post, case)["29979812"]
    # Every clock reading sleeps, so the two replies overlap inside their transactions.
    clock.delay = 0.05
    results: list[str] = []

    def reply(text: str) -> None:
        try:
            submit_reply(service.database, service.services, service.catalog, token, text, [])
            results.append("filed")
        except Conflict as conflict:
            results.append(conflict.code)

    threads = [threading.Thread(target=reply, args=(f"Svar {number}",)) for number in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    clock.delay = 0.0

    assert sorted(results) == ["already_replied", "filed"]
    case = fetch(client, tokens, case)
    assert [entry["step"] for entry in case["checklist"]].count("hearing_reply_1") == 1
    assert "hearing_reply_2" not in [entry["step"] for entry in case["checklist"]]


def test_crash_while_replying_keeps_link_usable(
    client: TestClient,
    tokens: Tokens,
    post: MemoryDigitalPost,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    case = opened(client, tokens, consultation_case(client, tokens))
    token = reply_tokens(post, case)["29979812"]
    before = snapshot(database, case["id"])

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("simulated crash after the reply's documents were added")

    monkeypatch.setattr(CaseCommand, "add_done_row", crash)
    crashed = client.post(
        f"/hearing-replies/{token}",
        json={"text": "Svar", "attachments": [attachment("a.pdf", "application/pdf", PDF_BYTES)]},
    )

    assert crashed.status_code == 500
    assert snapshot(database, case["id"]) == before
    monkeypatch.undo()
    assert client.post(f"/hearing-replies/{token}", json={"text": "Svar"}).status_code == 201


# Closing ------------------------------------------------------------------------------------------


def test_all_replies_answer_hearing(
    client: TestClient, tokens: Tokens, post: MemoryDigitalPost, database: Database
) -> None:
    case = opened(client, tokens, consultation_case(client, tokens))
    links = reply_tokens(post, case)

    first = client.post(f"/hearing-replies/{links['29979812']}", json={"text": "Ingen bemærkninger."})
    second = client.post(f"/hearing-replies/{links['150372-1234']}", json={"text": "Jeg er imod."})

    assert first.status_code == 201
    assert second.status_code == 201
    case = fetch(client, tokens, case)
    assert step(case, "consultation")["status"] == "done"
    assert step(case, "consultation")["outcome"] == "answered"
    assert step(case, "consultation")["completed_by"] == "system"
    titles = [document["title"] for document in case["documents"] if document["kind"] == "hearing_reply"]
    assert titles == ["Høringssvar fra Statens Naturhistoriske Museum", "Høringssvar fra Jens Hansen"]
    assert case["phase"]["id"] == "draft"
    assert case["active_steps"] == ["draft_decision"]
    with database.read() as session:
        hearing = session.scalars(select(Hearing)).one()
    assert hearing.status == "closed"
    assert hearing.closed_at is not None


def test_deadline_closes_partly_answered_hearing(
    service: Sagsflow,
    client: TestClient,
    tokens: Tokens,
    post: MemoryDigitalPost,
    clock: Clock,
    database: Database,
) -> None:
    case = opened(client, tokens, consultation_case(client, tokens))
    links = reply_tokens(post, case)
    assert client.post(f"/hearing-replies/{links['29979812']}", json={"text": "Ingen bemærkninger."}).status_code == 201
    worker = Worker(service.database, service.services, service.catalog)
    deadline = step(fetch(client, tokens, case), "consultation")["due_at"]

    # One second before the deadline the hearing stays open.
    clock.now = datetime.fromisoformat(deadline) - timedelta(seconds=1)
    assert worker.run_round().hearings == 0
    assert step(fetch(client, tokens, case), "consultation")["status"] == "waiting"

    clock.advance(seconds=2)
    report = worker.run_round()

    assert report.hearings == 1
    assert report.errors == 0
    case = fetch(client, tokens, case)
    assert step(case, "consultation")["outcome"] == "partly_answered"
    assert case["phase"]["id"] == "draft"
    before = snapshot(database, case["id"])
    late = client.post(f"/hearing-replies/{links['150372-1234']}", json={"text": "For sent."})
    assert late.status_code == 410
    assert late.json()["error"]["code"] == "reply_link_expired"
    assert snapshot(database, case["id"]) == before
    assert worker.run_round().hearings == 0, "a closed hearing is closed once"


def test_deadline_without_replies(
    service: Sagsflow, client: TestClient, tokens: Tokens, post: MemoryDigitalPost, clock: Clock
) -> None:
    case = opened(client, tokens, consultation_case(client, tokens))
    clock.advance(days=30)

    Worker(service.database, service.services, service.catalog).run_round()

    case = fetch(client, tokens, case)
    assert step(case, "consultation")["outcome"] == "deadline_passed"
    assert case["phase"]["id"] == "draft"
    for token in reply_tokens(post, case).values():
        assert client.get(f"/hearing-replies/{token}").status_code == 410


# Party hearing before an adverse decision ------------------------------------------------------------


def test_party_hearing_not_completed_by_hand(
    client: TestClient, tokens: Tokens, post: MemoryDigitalPost, database: Database
) -> None:
    case = party_hearing_case(client, tokens)
    before = snapshot(database, case["id"])

    completed = client.post(
        f"/cases/{case['id']}/steps/party_hearing/complete", json={"data": {}}, headers=auth(tokens.caseworker)
    )
    approved = client.post(
        f"/cases/{case['id']}/steps/party_hearing/approve",
        json={"decision": "approve"},
        headers=auth(tokens.caseworker),
    )

    assert completed.status_code == 400
    assert completed.json()["error"]["code"] == "wrong_step_kind"
    assert approved.status_code == 400
    assert approved.json()["error"]["code"] == "wrong_step_kind"
    assert snapshot(database, case["id"]) == before

    case = opened(client, tokens, case, step_id="party_hearing", body={"version": case["version"]})
    waiting = client.post(
        f"/cases/{case['id']}/steps/party_hearing/complete", json={"data": {}}, headers=auth(tokens.caseworker)
    )
    assert waiting.status_code == 409
    assert waiting.json()["error"]["code"] == "step_not_active"
    assert fetch(client, tokens, case)["phase"]["id"] == "partshoering"

    token = reply_tokens(post, case)["90131443"]
    reply = client.post(f"/hearing-replies/{token}", json={"text": "Vi kan skaffe en ny eksporttilladelse."})
    assert reply.status_code == 201
    case = fetch(client, tokens, case)
    assert step(case, "party_hearing")["outcome"] == "answered"
    assert case["phase"]["id"] == "approval"


def test_party_hearing_deadline_leads_to_approval(
    service: Sagsflow, client: TestClient, tokens: Tokens, clock: Clock
) -> None:
    case = party_hearing_case(client, tokens)
    case = opened(client, tokens, case, step_id="party_hearing", body={"version": case["version"]})
    clock.advance(days=15)

    Worker(service.database, service.services, service.catalog).run_round()

    case = fetch(client, tokens, case)
    assert step(case, "party_hearing")["outcome"] == "deadline_passed"
    assert case["phase"]["id"] == "approval"


def test_granted_draft_skips_party_hearing(client: TestClient, tokens: Tokens) -> None:
    case = fact_finding(client, tokens)
    case = complete(
        client, tokens.caseworker, case, "fact_assessment", {"assessment_note": "OK.", "consultation_required": False}
    )
    granted = {**REFUSAL, "decision_outcome": "granted", "decision_text": "Tilladelse gives."}

    case = complete(client, tokens.caseworker, case, "draft_decision", granted)

    assert case["phase"]["id"] == "approval"
    assert "party_hearing" not in [entry["step"] for entry in case["checklist"]]


HEADER = """\
process: demo
extends: afgoerelse
title: {da: Demo, en: Demo}
legal_basis:
  - title: {da: Lov, en: Act}
    reference: "§ 1"
classification: "01.02.03"
"""


def replaced_party_hearing(**changes: str) -> str:
    """Return a `steps:` section that replaces the locked step `party_hearing`, with `changes` to its keys."""
    keys = {
        "id": "party_hearing",
        "kind": "party_hearing",
        "letter": "party_hearing",
        "role": "caseworker",
        "deadline": "{value: 14, unit: calendar_days}",
        "label": "{da: Partshøring, en: Hearing}",
        **changes,
    }
    step = ", ".join(f"{key}: {value}" for key, value in keys.items())
    return f"steps:\n  - replace: party_hearing\n    step: {{{step}}}\n"


def load_demo(root: Path, extra: str) -> list[tuple[str, str]]:
    """Load the `afgoerelse` skeleton with one process `demo`; return the problems as (code, English text)."""
    shutil.copytree(REPOSITORY / "skeletons" / "letters", root / "skeletons" / "letters")
    shutil.copy(REPOSITORY / "skeletons" / "afgoerelse.yaml", root / "skeletons" / "afgoerelse.yaml")
    folder = root / "processes" / "afgoerelse"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "demo.yaml").write_text(HEADER + textwrap.dedent(extra), encoding="utf-8")
    return [(problem.code, problem.text.en) for problem in load_definitions(root).problems]


@pytest.mark.parametrize(
    ("extra", "code", "reason"),
    [
        ("steps:\n  - remove: party_hearing\n", "SF303", "cannot be removed"),
        (
            "steps:\n  - replace: party_hearing\n    step: {id: party_hearing, kind: task, role: caseworker, "
            "label: {da: A, en: B}}\n",
            "SF329",
            "the kind 'party_hearing' becomes 'task'",
        ),
        (replaced_party_hearing(kind="hearing"), "SF329", "the kind 'party_hearing' becomes 'hearing'"),
        (
            replaced_party_hearing(when="\"decision_outcome == 'refused'\""),
            "SF329",
            "the step gets a condition",
        ),
        (replaced_party_hearing(required="false"), "SF329", "the step becomes optional"),
        (
            replaced_party_hearing(letter="consultation"),
            "SF329",
            "the letter changes from 'party_hearing' to 'consultation'",
        ),
        (
            replaced_party_hearing(deadline="{value: 1, unit: calendar_days}"),
            "SF329",
            "the deadline is shortened from 14 calendar_days to 1 calendar_days",
        ),
        (
            "step_deadlines:\n  party_hearing: {value: 5, unit: working_days}\n",
            "SF329",
            "the deadline is shortened from 14 calendar_days to 5 working_days",
        ),
    ],
    ids=["removed", "task", "plain_hearing", "conditional", "optional", "other_letter", "short", "short_override"],
)
def test_locked_party_hearing_cannot_be_weakened(tmp_path: Path, extra: str, code: str, reason: str) -> None:
    problems = load_demo(tmp_path, extra)

    assert len(problems) == 1, problems
    assert problems[0][0] == code
    assert "party_hearing" in problems[0][1]
    assert reason in problems[0][1]


def test_party_hearing_letter_keeps_hearing_rights(tmp_path: Path) -> None:
    template = tmp_path / "processes" / "afgoerelse" / "demo" / "party_hearing.da.md.j2"
    template.parent.mkdir(parents=True)
    template.write_text(
        '{% extends "skeletons/letters/adverse_decision_hearing.da.md.j2" %}\n'
        "{% block hearing_rights %}Ingen frist.{% endblock %}\n",
        encoding="utf-8",
    )

    problems = load_demo(tmp_path, "letters:\n  party_hearing:\n    template: {da: demo/party_hearing.da.md.j2}\n")

    assert [problem[0] for problem in problems] == ["SF313"]
    assert "hearing_rights" in problems[0][1]


def test_identical_party_hearing_replacement_is_valid(tmp_path: Path) -> None:
    assert load_demo(tmp_path, replaced_party_hearing(label="{da: Hør ansøgeren, en: Hear the applicant}")) == []


@pytest.mark.parametrize(
    "deadline",
    ["{value: 2, unit: weeks}", "{value: 1, unit: months}", "{value: 15, unit: working_days}"],
)
def test_party_hearing_deadline_may_grow(tmp_path: Path, deadline: str) -> None:
    assert load_demo(tmp_path, f"step_deadlines:\n  party_hearing: {deadline}\n") == []


def test_applicant_sees_no_letters_to_other_parties(
    client: TestClient, tokens: Tokens, post: MemoryDigitalPost
) -> None:
    case = opened(client, tokens, consultation_case(client, tokens))
    staff_letters = client.get(f"/cases/{case['id']}/letters", headers=auth(tokens.caseworker)).json()
    hearing_numbers = [letter["number"] for letter in staff_letters if letter["letter"] == "consultation"]
    assert len(hearing_numbers) == 2
    assert all(letter["status"] == "sent" for letter in staff_letters)

    own_letters = client.get(f"/cases/{case['id']}/letters", headers=auth(tokens.applicant)).json()
    own_case = client.get(f"/cases/{case['id']}", headers=auth(tokens.applicant)).json()
    own_documents = client.get(f"/cases/{case['id']}/documents", headers=auth(tokens.applicant)).json()
    direct = [
        client.get(f"/cases/{case['id']}/documents/{number}", headers=auth(tokens.applicant)).status_code
        for number in hearing_numbers
    ]
    content = [
        client.get(f"/cases/{case['id']}/documents/{number}/content", headers=auth(tokens.applicant)).status_code
        for number in hearing_numbers
    ]

    assert [letter["title"] for letter in own_letters] == ["Kvittering for modtagelse af ansøgning"]
    assert PERSON["id"] not in str(own_letters)
    assert not {document["number"] for document in own_case["documents"]} & set(hearing_numbers)
    listed = own_documents["items"] if isinstance(own_documents, dict) else own_documents
    assert not {document["number"] for document in listed} & set(hearing_numbers)
    assert direct == [404, 404]
    assert content == [404, 404]


def test_reply_while_database_is_locked_is_busy(
    client: TestClient, tokens: Tokens, post: MemoryDigitalPost, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = opened(client, tokens, consultation_case(client, tokens))
    token = reply_tokens(post, case)["29979812"]
    before = snapshot(database, case["id"])

    def locked(*_args: Any, **_kwargs: Any) -> Any:
        raise OperationalError("SELECT ...", {}, sqlite3.OperationalError("database is locked"))

    monkeypatch.setattr(hearings_module, "_find_party", locked)
    response = client.post(f"/hearing-replies/{token}", json={"text": "Ingen bemærkninger."})

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "busy"
    assert snapshot(database, case["id"]) == before


def record(client: TestClient, token: str, case: dict[str, Any], body: dict[str, Any]) -> Any:
    return client.post(f"/cases/{case['id']}/steps/consultation/hearing/replies", json=body, headers=auth(token))


def test_reply_by_post_is_recorded_by_caseworker(
    client: TestClient, tokens: Tokens, post: MemoryDigitalPost, database: Database
) -> None:
    case = opened(client, tokens, consultation_case(client, tokens))
    links = reply_tokens(post, case)
    before = snapshot(database, case["id"])
    scanned = attachment("brev.pdf", "application/pdf", PDF_BYTES)

    by_approver = record(client, tokens.approver, case, {"party": "29979812", "text": "Svar pr. brev."})
    unknown = record(client, tokens.caseworker, case, {"party": "Ukendt Forening", "text": "Svar."})
    assert snapshot(database, case["id"]) == before
    museum = record(
        client, tokens.caseworker, case, {"party": "29979812", "text": "Svar pr. brev.", "attachments": [scanned]}
    )
    again = record(client, tokens.caseworker, case, {"party": "29979812", "text": "Igen."})
    link_after = client.post(f"/hearing-replies/{links['29979812']}", json={"text": "Også via linket."})
    person = record(client, tokens.caseworker, case, {"party": "jens hansen", "text": "Ingen bemærkninger."})

    assert by_approver.status_code == 403
    assert unknown.status_code == 422
    assert "Statens Naturhistoriske Museum (CVR 29979812)" in unknown.json()["error"]["errors"][0]["hint"]
    assert museum.status_code == 200, museum.json()
    replies = [row for row in museum.json()["checklist"] if row["kind"] == "hearing_reply"]
    assert [(row["label"], row["party"], len(row["documents"])) for row in replies] == [
        ("Høringssvar", "Statens Naturhistoriske Museum", 2)
    ]
    assert again.status_code == 422, "the museum has replied and is no longer waiting"
    assert link_after.status_code == 409, "the party's link is used up once its reply is recorded"
    assert person.status_code == 200, person.json()
    assert step(person.json(), "consultation")["outcome"] == "answered"
    assert person.json()["phase"]["id"] == "draft"


def test_party_hearing_always_hears_case_party(client: TestClient, tokens: Tokens, post: MemoryDigitalPost) -> None:
    case = party_hearing_case(client, tokens)

    case = opened(client, tokens, case, step_id="party_hearing", body={"parties": [PERSON], "version": case["version"]})

    assert sorted(reply_tokens(post, case)) == ["150372-1234", "90131443"], "the applicant is heard, too"
    applicant_letters = client.get(f"/cases/{case['id']}/letters", headers=auth(tokens.applicant)).json()
    assert [letter["title"] for letter in applicant_letters][-1] == "Partshøring"
    assert PERSON["id"] not in str(applicant_letters)


def test_exempt_party_without_address_is_refused(
    client: TestClient, tokens: Tokens, post: MemoryDigitalPost, database: Database
) -> None:
    case = consultation_case(client, tokens)
    post.exempt.add("1503721234")
    before = snapshot(database, case["id"])
    with_address = {**PERSON, "address": "Vestergade 3", "postcode": "8000", "city": "Aarhus C"}

    refused = open_hearing(client, tokens.caseworker, case, body={"parties": [MUSEUM, PERSON]})
    unchanged = snapshot(database, case["id"])
    accepted = open_hearing(client, tokens.caseworker, case, body={"parties": [MUSEUM, with_address]})

    assert refused.status_code == 422
    entry = refused.json()["error"]["errors"][0]
    assert entry["code"] == "address_required"
    assert "Jens Hansen (CPR 150372-1234) er fritaget for digital post" in entry["message"]
    assert unchanged == before
    assert accepted.status_code == 200, accepted.json()
