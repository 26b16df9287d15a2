"""Verifying the audit hash chain after rows are changed behind the engine's back, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from typer.testing import CliRunner

import cli.records
from cli.main import app as cli_app
from engine.adapters.digital_post import MemoryDigitalPost
from engine.records import CaseRecords
from engine.runtime import outbox
from engine.runtime.audit import STATE_KEY, ChainReport, event_hash, verify_chain
from engine.runtime.commands import CaseCommand
from engine.service import Sagsflow
from engine.storage.tables import Case, CaseEvent, CaseNote, Document
from tests.conftest import Clock
from tests.helpers import APPLICANT, CASEWORKER, Tokens, example
from tests.test_cites_http import approve, complete

auth = Tokens.header


def submit(service: Sagsflow, variant: int | None = None) -> dict[str, Any]:
    application = example("01", variant)
    return service.submit(APPLICANT, application["process"], application["data"], "da")


def case_with_five_events(service: Sagsflow) -> dict[str, Any]:
    """A case whose events are: submit, letter_sent, complete_step, add_note, upload_document.

    Its documents are 1 the application, 2 the receipt letter and 3 the uploaded `bilag.txt`.
    """
    case = submit(service)
    service.dispatch_outbox()
    service.complete_step(CASEWORKER, case["id"], "completeness_check", {"application_complete": True}, None, "da")
    records = CaseRecords(service)
    records.add_note(CASEWORKER, case["id"], "Ansøger ringede.")
    records.upload_document(CASEWORKER, case["id"], filename="bilag.txt", content=b"Bilag\n")
    return case


def verify(service: Sagsflow, case_id: int) -> ChainReport:
    with service.database.read() as session:
        return verify_chain(session, case_id)


def execute(service: Sagsflow, statement: str, **parameters: Any) -> None:
    """Run plain SQL in its own transaction, the way someone with database access would."""
    with service.database.engine.begin() as connection:
        connection.execute(text(statement), parameters)


def stored_event(service: Sagsflow, case_id: int, sequence: int) -> CaseEvent:
    with service.database.read() as session:
        return session.scalars(
            select(CaseEvent).where(CaseEvent.case_id == case_id, CaseEvent.sequence == sequence)
        ).one()


def set_changes_sql(service: Sagsflow) -> str:
    if service.database.is_postgresql:
        return "UPDATE case_events SET changes = CAST(:changes AS JSONB) WHERE case_id = :case AND sequence = :sequence"
    return "UPDATE case_events SET changes = :changes WHERE case_id = :case AND sequence = :sequence"


# An intact chain ---------------------------------------------------------------------------------


def test_untouched_chain_verifies(service: Sagsflow) -> None:
    case = case_with_five_events(service)

    report = verify(service, case["id"])

    assert report.ok
    assert report.events == 5
    assert report.problem is None


def test_chain_with_non_utc_clock_verifies(service: Sagsflow, clock: Clock) -> None:
    clock.now = datetime(2026, 12, 4, 10, 30, tzinfo=timezone(timedelta(hours=1)))
    case = submit(service)
    CaseRecords(service).add_note(CASEWORKER, case["id"], "Notat")

    assert verify(service, case["id"]).ok


def test_event_hash_ignores_time_zone() -> None:
    utc = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)
    copenhagen = utc.astimezone(timezone(timedelta(hours=1)))

    assert event_hash(1, 1, utc, "karen", "submit", {}, "0" * 64) == event_hash(
        1, 1, copenhagen, "karen", "submit", {}, "0" * 64
    )


# Changes behind the engine's back -----------------------------------------------------------------


def test_altered_changes_are_detected(service: Sagsflow) -> None:
    case = case_with_five_events(service)
    execute(service, set_changes_sql(service), changes='{"data": {"quantity": [60, 6]}}', case=case["id"], sequence=3)

    report = verify(service, case["id"])

    assert not report.ok
    assert report.problem is not None
    assert report.problem.kind == "altered"
    assert report.problem.sequence == 3
    assert report.problem.text.en == "Event 3 was altered: its content does not match its stored hash."


def test_altered_actor_is_detected(service: Sagsflow) -> None:
    case = case_with_five_events(service)
    execute(service, "UPDATE case_events SET actor = 'bo' WHERE case_id = :case AND sequence = 4", case=case["id"])

    report = verify(service, case["id"])

    assert report.problem is not None
    assert (report.problem.kind, report.problem.sequence) == ("altered", 4)


def test_altered_time_is_detected(service: Sagsflow) -> None:
    case = case_with_five_events(service)
    execute(
        service,
        "UPDATE case_events SET at = :at WHERE case_id = :case AND sequence = 2",
        at=datetime(2026, 12, 1, 8, 0),
        case=case["id"],
    )

    report = verify(service, case["id"])

    assert report.problem is not None
    assert (report.problem.kind, report.problem.sequence) == ("altered", 2)


def test_deleted_middle_event_is_detected(service: Sagsflow) -> None:
    case = case_with_five_events(service)
    execute(service, "DELETE FROM case_events WHERE case_id = :case AND sequence = 3", case=case["id"])

    report = verify(service, case["id"])

    assert report.events == 4
    assert report.problem is not None
    assert (report.problem.kind, report.problem.sequence) == ("missing", 3)
    assert report.problem.text.en == "Event 3 is missing; the chain jumps to event 4."


def test_deleted_run_of_events_is_detected(service: Sagsflow) -> None:
    case = case_with_five_events(service)
    execute(service, "DELETE FROM case_events WHERE case_id = :case AND sequence IN (2, 3)", case=case["id"])

    report = verify(service, case["id"])

    assert report.problem is not None
    assert (report.problem.kind, report.problem.sequence) == ("missing", 2)
    assert report.problem.text.da == "Hændelse 2 til 3 mangler; sporet springer til hændelse 4."


def test_deleted_first_event_is_detected(service: Sagsflow) -> None:
    case = case_with_five_events(service)
    execute(service, "DELETE FROM case_events WHERE case_id = :case AND sequence = 1", case=case["id"])

    report = verify(service, case["id"])

    assert report.problem is not None
    assert (report.problem.kind, report.problem.sequence) == ("missing", 1)


def test_case_without_events_is_reported(service: Sagsflow) -> None:
    case = submit(service)
    execute(service, "DELETE FROM case_events WHERE case_id = :case", case=case["id"])

    report = verify(service, case["id"])

    assert report.events == 0
    assert report.problem is not None
    assert (report.problem.kind, report.problem.sequence) == ("missing", 1)


def test_swapped_events_are_detected(service: Sagsflow) -> None:
    case = case_with_five_events(service)
    # Three steps, because (case_id, sequence) is unique.
    for old, new in ((2, -2), (3, 2), (-2, 3)):
        execute(
            service,
            "UPDATE case_events SET sequence = :new WHERE case_id = :case AND sequence = :old",
            new=new,
            old=old,
            case=case["id"],
        )

    report = verify(service, case["id"])

    assert report.problem is not None
    assert (report.problem.kind, report.problem.sequence) == ("reordered", 2)
    assert "re-ordered" in report.problem.text.en


def test_rehashed_event_breaks_next_link(service: Sagsflow) -> None:
    case = case_with_five_events(service)
    with service.database.read() as session:
        event = session.scalars(select(CaseEvent).where(CaseEvent.case_id == case["id"], CaseEvent.sequence == 3)).one()
    # A forger who recomputes the hash of the event they changed, but not the later links.
    forged_changes = {"data": {"application_complete": [None, False]}}
    forged_hash = event_hash(case["id"], 3, event.at, event.actor, event.command, forged_changes, event.previous_hash)
    execute(service, set_changes_sql(service), changes=json.dumps(forged_changes), case=case["id"], sequence=3)
    execute(
        service,
        "UPDATE case_events SET hash = :hash WHERE case_id = :case AND sequence = 3",
        hash=forged_hash,
        case=case["id"],
    )

    report = verify(service, case["id"])

    assert report.problem is not None
    assert (report.problem.kind, report.problem.sequence) == ("broken_link", 4)


def test_changed_link_is_detected(service: Sagsflow) -> None:
    case = case_with_five_events(service)
    execute(
        service,
        "UPDATE case_events SET previous_hash = :link WHERE case_id = :case AND sequence = 5",
        link="f" * 64,
        case=case["id"],
    )

    report = verify(service, case["id"])

    assert report.problem is not None
    assert (report.problem.kind, report.problem.sequence) == ("broken_link", 5)


def test_other_cases_stay_valid(service: Sagsflow) -> None:
    first = case_with_five_events(service)
    second = submit(service, variant=2)
    execute(service, "UPDATE case_events SET actor = 'x' WHERE case_id = :case AND sequence = 1", case=first["id"])

    assert not verify(service, first["id"]).ok
    assert verify(service, second["id"]).ok


# The chain's head on the case row ----------------------------------------------------------------


def test_case_row_keeps_chain_head(service: Sagsflow) -> None:
    case = case_with_five_events(service)

    newest = stored_event(service, case["id"], 5)
    with service.database.read() as session:
        row = session.get_one(Case, case["id"])

    assert row.audit_events == 5
    assert row.audit_head == newest.hash


def test_deleted_newest_event_is_detected(service: Sagsflow) -> None:
    case = case_with_five_events(service)
    execute(service, "DELETE FROM case_events WHERE case_id = :case AND sequence = 5", case=case["id"])

    report = verify(service, case["id"])

    assert report.events == 4
    assert report.problem is not None
    assert (report.problem.kind, report.problem.sequence) == ("missing", 5)
    assert (
        report.problem.text.en
        == "Event 5, the newest, is missing; the case records 5 events, but the chain ends at event 4."
    )


def test_deleted_newest_events_are_detected(service: Sagsflow) -> None:
    case = case_with_five_events(service)
    execute(service, "DELETE FROM case_events WHERE case_id = :case AND sequence >= 4", case=case["id"])

    report = verify(service, case["id"])

    assert report.problem is not None
    assert (report.problem.kind, report.problem.sequence) == ("missing", 4)
    assert report.problem.text.da == (
        "Hændelse 4 til 5, de nyeste, mangler; sagen har registreret 5 hændelser, men sporet slutter ved hændelse 3."
    )


def test_rehashed_newest_event_is_detected(service: Sagsflow) -> None:
    case = case_with_five_events(service)
    event = stored_event(service, case["id"], 5)
    # A forger who rewrites the newest event and recomputes its hash, which no later event links to.
    forged_changes = {**event.changes, "documents": []}
    forged_hash = event_hash(case["id"], 5, event.at, event.actor, event.command, forged_changes, event.previous_hash)
    execute(service, set_changes_sql(service), changes=json.dumps(forged_changes), case=case["id"], sequence=5)
    execute(
        service,
        "UPDATE case_events SET hash = :hash WHERE case_id = :case AND sequence = 5",
        hash=forged_hash,
        case=case["id"],
    )

    report = verify(service, case["id"])

    assert report.problem is not None
    assert (report.problem.kind, report.problem.sequence) == ("altered", 5)
    assert report.problem.text.en.startswith("Event 5, the newest, was altered: its hash is not the one the case")


def test_event_added_after_head_is_detected(service: Sagsflow, clock: Clock) -> None:
    case = case_with_five_events(service)
    newest = stored_event(service, case["id"], 5)
    changes = {"data": {"quantity": [60, 6]}}
    with service.database.write() as session:
        session.add(
            CaseEvent(
                case_id=case["id"],
                sequence=6,
                at=clock.now,
                actor="karen",
                command="complete_step",
                changes=changes,
                previous_hash=newest.hash,
                hash=event_hash(case["id"], 6, clock.now, "karen", "complete_step", changes, newest.hash),
            )
        )

    report = verify(service, case["id"])

    assert report.problem is not None
    assert (report.problem.kind, report.problem.sequence) == ("added", 6)
    assert report.problem.text.en == "Event 6 was added directly in the database; the case records only 5 events."


def test_appending_continues_from_head(service: Sagsflow) -> None:
    case = case_with_five_events(service)

    CaseRecords(service).add_note(CASEWORKER, case["id"], "Endnu et notat.")

    assert stored_event(service, case["id"], 6).previous_hash == stored_event(service, case["id"], 5).hash
    assert verify(service, case["id"]).ok


# The case row ------------------------------------------------------------------------------------


def test_event_records_case_state(service: Sagsflow) -> None:
    case = case_with_five_events(service)

    with service.database.read() as session:
        events = list(session.scalars(select(CaseEvent).where(CaseEvent.case_id == case["id"])))

    assert all(re.fullmatch(r"[0-9a-f]{64}", event.changes[STATE_KEY]) for event in events)


def test_edited_case_data_is_detected(service: Sagsflow) -> None:
    case = case_with_five_events(service)
    if service.database.is_postgresql:
        statement = (
            "UPDATE cases SET data = jsonb_set(data, '{decision_text}', '\"Tilladelse givet\"') WHERE id = :case"
        )
    else:
        statement = "UPDATE cases SET data = json_set(data, '$.decision_text', 'Tilladelse givet') WHERE id = :case"
    execute(service, statement, case=case["id"])

    report = verify(service, case["id"])

    assert report.problem is not None
    assert (report.problem.kind, report.problem.sequence) == ("case_changed", 5)
    assert report.problem.text.en.startswith("The case row was changed after event 5:")
    assert report.problem.text.da.startswith("Sagens række er ændret efter hændelse 5:")


@pytest.mark.parametrize(
    ("column", "value"),
    [("phase", "closing"), ("status", "closed"), ("assignee", "mads"), ("title", "Anden sag")],
)
def test_edited_case_column_is_detected(service: Sagsflow, column: str, value: str) -> None:
    case = case_with_five_events(service)
    execute(service, f"UPDATE cases SET {column} = :value WHERE id = :case", value=value, case=case["id"])

    report = verify(service, case["id"])

    assert report.problem is not None
    assert (report.problem.kind, report.problem.sequence) == ("case_changed", 5)


def test_case_changed_after_letter_sent_names_that_event(service: Sagsflow) -> None:
    case = submit(service)
    service.dispatch_outbox()
    execute(service, "UPDATE cases SET phase = 'closing' WHERE id = :case", case=case["id"])

    report = verify(service, case["id"])

    assert report.problem is not None
    assert (report.problem.kind, report.problem.sequence) == ("case_changed", 2)


# Documents ---------------------------------------------------------------------------------------


def test_filing_events_record_document_hashes(service: Sagsflow) -> None:
    case = case_with_five_events(service)

    with service.database.read() as session:
        documents = {document.number: document for document in session.scalars(select(Document))}
    submitted = stored_event(service, case["id"], 1).changes["documents"]
    uploaded = stored_event(service, case["id"], 5).changes["documents"]

    application, letter = documents[1], documents[2]
    assert submitted[0]["sha256"] == hashlib.sha256(application.body_text.encode("utf-8")).hexdigest()
    assert submitted[1]["sha256"] == hashlib.sha256(letter.body_text.encode("utf-8")).hexdigest()
    assert letter.body_html is not None
    assert submitted[1]["html_sha256"] == hashlib.sha256(letter.body_html.encode("utf-8")).hexdigest()
    assert "html_sha256" not in submitted[0]
    assert uploaded[0]["sha256"] == hashlib.sha256(b"Bilag\n").hexdigest()


def test_edited_upload_content_is_detected(service: Sagsflow) -> None:
    case = case_with_five_events(service)
    execute(
        service,
        "UPDATE documents SET content = :content WHERE case_id = :case AND number = 3",
        content=b"Falsk bilag\n",
        case=case["id"],
    )

    report = verify(service, case["id"])

    assert report.problem is not None
    assert (report.problem.kind, report.problem.document, report.problem.sequence) == ("document_altered", 3, 5)
    assert report.problem.text.en == (
        "Document 3 was altered: its content, or its kind, title, letter, creator or recipient, does not match "
        "the hashes stored with the document and by event 5, which filed it."
    )


def test_edited_upload_with_new_hash_is_detected(service: Sagsflow) -> None:
    case = case_with_five_events(service)
    forged = b"Falsk bilag\n"
    execute(
        service,
        "UPDATE documents SET content = :content, sha256 = :sha256 WHERE case_id = :case AND number = 3",
        content=forged,
        sha256=hashlib.sha256(forged).hexdigest(),
        case=case["id"],
    )

    report = verify(service, case["id"])

    assert report.problem is not None
    assert (report.problem.kind, report.problem.document) == ("document_altered", 3)


def test_edited_application_text_is_detected(service: Sagsflow) -> None:
    case = case_with_five_events(service)
    execute(
        service,
        "UPDATE documents SET body_text = body_text || 'Antal: 600' WHERE case_id = :case AND number = 1",
        case=case["id"],
    )

    report = verify(service, case["id"])

    assert report.problem is not None
    assert (report.problem.kind, report.problem.document, report.problem.sequence) == ("document_altered", 1, 1)


def test_edited_letter_text_with_new_hash_is_detected(service: Sagsflow) -> None:
    case = case_with_five_events(service)
    forged = "Vi har afvist din ansøgning.\n"
    execute(
        service,
        "UPDATE documents SET body_text = :text, sha256 = :sha256 WHERE case_id = :case AND number = 2",
        text=forged,
        sha256=hashlib.sha256(forged.encode("utf-8")).hexdigest(),
        case=case["id"],
    )

    report = verify(service, case["id"])

    assert report.problem is not None
    assert (report.problem.kind, report.problem.document) == ("document_altered", 2)


def test_edited_letter_html_is_detected(service: Sagsflow) -> None:
    case = case_with_five_events(service)
    execute(
        service,
        "UPDATE documents SET body_html = '<p>Afslag</p>' WHERE case_id = :case AND number = 2",
        case=case["id"],
    )

    report = verify(service, case["id"])

    assert report.problem is not None
    assert (report.problem.kind, report.problem.document) == ("document_altered", 2)


def test_deleted_document_is_detected(service: Sagsflow) -> None:
    case = case_with_five_events(service)
    execute(service, "DELETE FROM documents WHERE case_id = :case AND number = 3", case=case["id"])

    report = verify(service, case["id"])

    assert report.problem is not None
    assert (report.problem.kind, report.problem.document, report.problem.sequence) == ("document_missing", 3, 5)
    assert report.problem.text.en == "Document 3 is missing; event 5 filed it."


def test_document_added_without_event_is_detected(service: Sagsflow, clock: Clock) -> None:
    case = case_with_five_events(service)
    content = b"Indsat bilag\n"
    with service.database.write() as session:
        session.add(
            Document(
                case_id=case["id"],
                number=4,
                kind="upload",
                title="indsat.txt",
                language="da",
                content_type="text/plain; charset=utf-8",
                body_text="",
                content=content,
                filename="indsat.txt",
                size=len(content),
                sha256=hashlib.sha256(content).hexdigest(),
                status="filed",
                created_at=clock.now,
                created_by="karen",
            )
        )

    report = verify(service, case["id"])

    assert report.problem is not None
    assert (report.problem.kind, report.problem.document, report.problem.sequence) == ("document_added", 4, None)


# A whole case ------------------------------------------------------------------------------------


def test_cites_lifecycle_verifies(
    client: TestClient, tokens: Tokens, service: Sagsflow, post: MemoryDigitalPost
) -> None:
    """Submission, receipt letter, upload, hearing with a reply, rejected and approved draft, decision letter."""
    response = client.post("/cases", json=example("01"), headers=auth(tokens.applicant))
    assert response.status_code == 201, response.json()
    case = client.get(f"/cases/{response.json()['id']}", headers=auth(tokens.caseworker)).json()
    uploaded = client.post(
        f"/cases/{case['id']}/documents",
        files={"file": ("eksporttilladelse.pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", "application/pdf")},
        headers=auth(tokens.applicant),
    )
    assert uploaded.status_code == 201, uploaded.json()
    case = client.get(f"/cases/{case['id']}", headers=auth(tokens.caseworker)).json()
    case = complete(client, tokens.caseworker, case, "completeness_check", {"application_complete": True})
    case = complete(client, tokens.caseworker, case, "export_permit_check", {"export_permit_verified": True})
    case = complete(
        client,
        tokens.caseworker,
        case,
        "fact_assessment",
        {"assessment_note": "Ranchede dyr fra Togo.", "consultation_required": True},
    )
    museum = {"name": "Statens Naturhistoriske Museum", "id_type": "CVR", "id": "29979812"}
    response = client.post(
        f"/cases/{case['id']}/steps/consultation/hearing",
        json={"parties": [museum], "merged": {"question": "Bemærkninger?"}, "version": case["version"]},
        headers=auth(tokens.caseworker),
    )
    assert response.status_code == 200, response.json()
    sent = [message for message in post.delivered.values() if message.recipient.id == "29979812"]
    token = re.findall(r"/hearing-replies/([A-Za-z0-9_-]+)", sent[0].main_document_text)[0]
    reply = client.post(f"/hearing-replies/{token}", json={"text": "Ingen bemærkninger."})
    assert reply.status_code == 201, reply.json()
    case = client.get(f"/cases/{case['id']}", headers=auth(tokens.caseworker)).json()
    draft = {
        "decision_outcome": "granted",
        "decision_text": "Miljøstyrelsen giver tilladelse til indførsel af 60 levende Python regius fra Togo.",
        "statement_of_reasons": "Arten er opført på bilag B, og betingelserne i artikel 4, stk. 2, er opfyldt.",
    }
    case = complete(client, tokens.caseworker, case, "draft_decision", draft)
    case = approve(client, tokens.approver, case, "reject", "Angiv vilkår.").json()
    case = complete(client, tokens.caseworker, case, "draft_decision", {"conditions": "Dyrene skal mærkes."})
    case = approve(client, tokens.approver, case, "approve").json()
    case = complete(client, tokens.caseworker, case, "closing_check", {})
    assert case["status"] == "closed"

    trail = client.get(f"/cases/{case['id']}/audit", headers=auth(tokens.caseworker, "en")).json()

    commands = [event["command"] for event in trail["events"]]
    assert "upload_document" in commands
    assert "hearing_reply" in commands
    assert commands.count("letter_sent") == len(post.delivered)
    assert trail["verification"]["problem"] is None, trail["verification"]
    assert trail["verification"]["ok"] is True
    assert trail["verification"]["events"] == len(commands)
    documents = client.get(f"/cases/{case['id']}/documents", headers=auth(tokens.caseworker)).json()
    kinds = sorted(document["kind"] for document in documents)
    # The receipt, the consultation letter and the decision.
    assert kinds == ["application", "hearing_reply", "letter", "letter", "letter", "upload"]
    assert trail["verification"]["documents"] == len(documents)


# Concurrent appends ------------------------------------------------------------------------------


def add_slow_note(service: Sagsflow, case_id: int, holding: threading.Event) -> None:
    """Add a note in a command that keeps the case locked for half a second."""

    def work(command: CaseCommand) -> None:
        holding.set()
        time.sleep(0.5)
        text = "Ringede til ansøger."
        command.session.add(CaseNote(case_id=case_id, text=text, created_by="karen", created_at=command.now))
        command.changes["notes"] = [{"length": len(text)}]

    service.run_command(CASEWORKER, case_id, None, "da", "add_note", work)


def commands_in_order(service: Sagsflow, case_id: int) -> list[tuple[int, str]]:
    with service.database.read() as session:
        return [
            (event.sequence, event.command)
            for event in session.scalars(
                select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.sequence)
            )
        ]


def test_letter_sent_waits_for_running_command(service: Sagsflow) -> None:
    case = submit(service)
    holding = threading.Event()
    command = threading.Thread(target=add_slow_note, args=(service, case["id"], holding))
    command.start()
    assert holding.wait(10)

    # The dispatcher reaches the case lock (or SQLite's write lock) while the command holds it.
    report = service.dispatch_outbox()
    command.join(10)

    assert report.sent == 1
    assert commands_in_order(service, case["id"]) == [(1, "submit"), (2, "add_note"), (3, "letter_sent")]
    assert verify(service, case["id"]).ok


def test_command_waits_for_letter_sent(service: Sagsflow, monkeypatch: pytest.MonkeyPatch) -> None:
    case = submit(service)
    appended = threading.Event()
    mark_sent = outbox._mark_sent

    def slow_mark_sent(*arguments: Any) -> None:
        mark_sent(*arguments)
        appended.set()
        time.sleep(0.5)  # the command below reaches the case lock meanwhile

    monkeypatch.setattr(outbox, "_mark_sent", slow_mark_sent)
    worker = threading.Thread(target=service.dispatch_outbox)
    worker.start()
    assert appended.wait(10)

    CaseRecords(service).add_note(CASEWORKER, case["id"], "Ringede til ansøger.")
    worker.join(10)

    assert commands_in_order(service, case["id"]) == [(1, "submit"), (2, "letter_sent"), (3, "add_note")]
    assert verify(service, case["id"]).ok


# The API -----------------------------------------------------------------------------------------


def test_audit_route_returns_events_and_result(client: TestClient, tokens: Tokens, service: Sagsflow) -> None:
    case = case_with_five_events(service)

    response = client.get(f"/cases/{case['id']}/audit", headers=auth(tokens.caseworker))

    assert response.status_code == 200
    body = response.json()
    assert body["case"] == case["journal_number"]
    assert [event["command"] for event in body["events"]] == [
        "submit",
        "letter_sent",
        "complete_step",
        "add_note",
        "upload_document",
    ]
    assert [event["sequence"] for event in body["events"]] == [1, 2, 3, 4, 5]
    assert body["events"][1]["previous_hash"] == body["events"][0]["hash"]
    assert body["verification"] == {"ok": True, "events": 5, "documents": 3, "problem": None}


def test_audit_route_reports_tampering(client: TestClient, tokens: Tokens, service: Sagsflow) -> None:
    case = case_with_five_events(service)
    execute(service, "DELETE FROM case_events WHERE case_id = :case AND sequence = 2", case=case["id"])

    response = client.get(f"/cases/{case['id']}/audit", headers=auth(tokens.caseworker, "en"))

    assert response.status_code == 200
    assert response.json()["verification"] == {
        "ok": False,
        "events": 4,
        "documents": 0,
        "problem": {
            "kind": "missing",
            "sequence": 2,
            "document": None,
            "message": "Event 2 is missing; the chain jumps to event 3.",
        },
    }


def test_audit_route_reports_altered_document(client: TestClient, tokens: Tokens, service: Sagsflow) -> None:
    case = case_with_five_events(service)
    execute(
        service,
        "UPDATE documents SET content = :content WHERE case_id = :case AND number = 3",
        content=b"x",
        case=case["id"],
    )

    response = client.get(f"/cases/{case['id']}/audit", headers=auth(tokens.caseworker))

    assert response.status_code == 200
    problem = response.json()["verification"]["problem"]
    assert (problem["kind"], problem["sequence"], problem["document"]) == ("document_altered", 5, 3)
    assert problem["message"].startswith("Dokument 3 er ændret:")


def test_audit_route_is_staff_only(client: TestClient, tokens: Tokens, service: Sagsflow) -> None:
    case = submit(service)

    own = client.get(f"/cases/{case['id']}/audit", headers=auth(tokens.applicant))
    other = client.get(f"/cases/{case['id']}/audit", headers=auth(tokens.other_applicant))

    assert own.status_code == 403
    assert own.json()["error"]["code"] == "staff_only"
    assert other.status_code == 403


def test_audit_route_of_unknown_case_is_404(client: TestClient, tokens: Tokens) -> None:
    response = client.get("/cases/2026-999999/audit", headers=auth(tokens.approver))

    assert response.status_code == 404


def test_audit_route_needs_token(client: TestClient, service: Sagsflow) -> None:
    case = submit(service)

    assert client.get(f"/cases/{case['id']}/audit").status_code == 401


# The command line --------------------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def cli_service(service: Sagsflow, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Sagsflow:
    """The test's engine, which the CLI's records commands then use."""
    monkeypatch.setattr(cli.records, "open_service", lambda: service)
    monkeypatch.chdir(tmp_path)
    return service


def invoke(*arguments: str) -> tuple[int, str]:
    result = runner.invoke(cli_app, list(arguments), env={"SAGSFLOW_LANGUAGE": "da"})
    return result.exit_code, result.output


def test_cli_verify_all_ok(cli_service: Sagsflow) -> None:
    first = case_with_five_events(cli_service)
    second = submit(cli_service, variant=2)

    code, output = invoke("audit", "verify")

    assert code == 0, output
    assert f"{first['journal_number']}: OK (5 hændelser, 3 dokumenter)" in output
    assert f"{second['journal_number']}: OK (1 hændelse, 2 dokumenter)" in output
    assert "2 sager efterprøvet, 0 med fejl." in output


def test_cli_verify_reports_each_broken_case(cli_service: Sagsflow) -> None:
    first = case_with_five_events(cli_service)
    second = submit(cli_service, variant=2)
    third = submit(cli_service, variant=3)
    execute(cli_service, "DELETE FROM case_events WHERE case_id = :case AND sequence = 3", case=first["id"])
    execute(cli_service, "UPDATE case_events SET actor = 'x' WHERE case_id = :case", case=third["id"])

    code, output = invoke("audit", "verify")

    assert code == 1
    assert f"{first['journal_number']}: FEJL: Hændelse 3 mangler; sporet springer til hændelse 4." in output
    assert f"{second['journal_number']}: OK" in output
    assert f"{third['journal_number']}: FEJL: Hændelse 1 er ændret" in output
    assert "3 sager efterprøvet, 2 med fejl." in output


def test_cli_verify_reports_changed_case_row(cli_service: Sagsflow) -> None:
    case = case_with_five_events(cli_service)
    execute(cli_service, "UPDATE cases SET phase = 'closing' WHERE id = :case", case=case["id"])

    code, output = invoke("audit", "verify", case["journal_number"])

    assert code == 1
    assert f"{case['journal_number']}: FEJL: Sagens række er ændret efter hændelse 5:" in output


def test_cli_verify_reports_deleted_newest_event(cli_service: Sagsflow) -> None:
    case = case_with_five_events(cli_service)
    execute(cli_service, "DELETE FROM case_events WHERE case_id = :case AND sequence = 5", case=case["id"])

    code, output = invoke("audit", "verify", case["journal_number"])

    assert code == 1
    assert f"{case['journal_number']}: FEJL: Hændelse 5, den nyeste, mangler;" in output


def test_cli_verify_one_case(cli_service: Sagsflow) -> None:
    first = case_with_five_events(cli_service)
    second = submit(cli_service, variant=2)
    execute(cli_service, "UPDATE case_events SET actor = 'x' WHERE case_id = :case", case=second["id"])

    code, output = invoke("audit", "verify", first["journal_number"])

    assert code == 0, output
    assert second["journal_number"] not in output
    assert "1 sag efterprøvet, 0 med fejl." in output


def test_cli_verify_unknown_case_fails(cli_service: Sagsflow) -> None:
    code, output = invoke("audit", "verify", "2026-999999")

    assert code == 1
    assert "findes ikke" in output


def test_cli_audit_show(cli_service: Sagsflow) -> None:
    case = case_with_five_events(cli_service)

    code, output = invoke("audit", "show", case["journal_number"])

    assert code == 0, output
    assert "upload_document" in output
    assert output.rstrip().endswith("Hashkæde: OK")


def test_cli_verify_reports_deleted_case(cli_service: Sagsflow) -> None:
    first = submit(cli_service)
    deleted = submit(cli_service, variant=2)
    # The case's events, steps, documents and letters go with it through ON DELETE CASCADE.
    execute(cli_service, "DELETE FROM cases WHERE id = :case", case=deleted["id"])

    code, output = invoke("audit", "verify")

    assert code == 1, output
    assert f"{first['journal_number']}: OK" in output
    assert f"Sagen {deleted['journal_number']} mangler" in output


@pytest.mark.parametrize(
    ("statement", "what"),
    [
        ("UPDATE cases SET created_by = 'lindholt' WHERE id = :case", "case"),
        ("UPDATE documents SET kind = 'application' WHERE case_id = :case AND number = 2", "document"),
        ("UPDATE documents SET recipient = NULL WHERE case_id = :case AND number = 2", "document"),
    ],
)
def test_visibility_columns_are_covered(service: Sagsflow, statement: str, what: str) -> None:
    case = submit(service)
    execute(service, statement, case=case["id"])

    with service.database.read() as session:
        report = verify_chain(session, case["id"])

    assert report.problem is not None
    assert report.problem.kind == {"case": "case_changed", "document": "document_altered"}[what]
