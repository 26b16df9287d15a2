"""Verifying the audit hash chain after rows are changed behind the engine's back, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from typer.testing import CliRunner

import cli.records
from cli.main import app as cli_app
from engine.records import CaseRecords
from engine.runtime.audit import ChainReport, event_hash, verify_chain
from engine.service import Sagsflow
from engine.storage.tables import CaseEvent
from tests.conftest import Clock
from tests.helpers import APPLICANT, CASEWORKER, Tokens, example

auth = Tokens.header


def submit(service: Sagsflow, variant: int | None = None) -> dict[str, Any]:
    application = example("01", variant)
    return service.submit(APPLICANT, application["process"], application["data"], "da")


def case_with_five_events(service: Sagsflow) -> dict[str, Any]:
    """A case whose events are: submit, letter_sent, complete_step, add_note, upload_document."""
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
    assert body["verification"] == {"ok": True, "events": 5, "problem": None}


def test_audit_route_reports_tampering(client: TestClient, tokens: Tokens, service: Sagsflow) -> None:
    case = case_with_five_events(service)
    execute(service, "DELETE FROM case_events WHERE case_id = :case AND sequence = 2", case=case["id"])

    response = client.get(f"/cases/{case['id']}/audit", headers=auth(tokens.caseworker, "en"))

    assert response.status_code == 200
    assert response.json()["verification"] == {
        "ok": False,
        "events": 4,
        "problem": {
            "kind": "missing",
            "sequence": 2,
            "message": "Event 2 is missing; the chain jumps to event 3.",
        },
    }


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
    assert f"{first['journal_number']}: OK (5 hændelser)" in output
    assert f"{second['journal_number']}: OK (1 hændelse)" in output
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
