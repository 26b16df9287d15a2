"""Natura 2000 grants end to end over HTTP: the pool case, ranking, commitment, payout and reconciliation.

Every test runs on SQLite and PostgreSQL. The refusals the pool enforces (no open round,
ranking before every application is assessed, a commitment that would overdraw the pool,
a payout above the commitment) each leave the cases and the ledger as they were.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import shapely.geometry
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from cli.main import app
from engine.errors import Conflict
from engine.i18n import Text
from engine.runtime import ledger
from engine.service import Sagsflow
from engine.storage.tables import Case, LedgerAccount, LedgerEntry, OutboxMessage
from tests.conftest import Clock
from tests.helpers import ADMIN, REPOSITORY, Tokens

auth = Tokens.header
TEAM = "natura"
SITES = REPOSITORY / "engine" / "adapters" / "data" / "natura2000_sites.geojson"


@pytest.fixture
def staff(service: Sagsflow) -> dict[str, str]:
    """Tokens of the Natura 2000 team: a pool manager, a caseworker and three approvers."""
    people = {
        "pia": ["caseworker"],
        "karl": ["caseworker"],
        "anna": ["approver"],
        "ole": ["approver"],
        "eva": ["approver"],
    }
    for name, roles in people.items():
        service.add_user(ADMIN, name, roles, [TEAM])
    tokens = {name: service.create_token(name) for name in people}
    tokens["owner"] = service.create_token("gaard", ["applicant"])
    return tokens


def site_square(index: int, side_degrees: float = 0.004) -> tuple[str, dict[str, Any]]:
    """A site number and a small square polygon around a point inside the site (WGS84)."""
    features = json.loads(SITES.read_text(encoding="utf-8"))["features"]
    feature = features[index]
    point = shapely.geometry.shape(feature["geometry"]).representative_point()
    half = side_degrees / 2
    ring = [
        [point.x - half, point.y - half / 2],
        [point.x + half, point.y - half / 2],
        [point.x + half, point.y + half / 2],
        [point.x - half, point.y + half / 2],
        [point.x - half, point.y - half / 2],
    ]
    return str(feature["properties"]["number"]), {"type": "Polygon", "coordinates": [ring]}


def application(
    index: int, amount: str, *, side: float = 0.004, title: str | None = None, cvr: str = "10150817"
) -> dict[str, Any]:
    site, area = site_square(index, side)
    return {
        "process": "natura2000-sammenhaengende-arealer",
        "data": {
            "applicant_name": f"Lodsejer {index}",
            "applicant_cvr": cvr,
            "applicant_address": "Engvej 4",
            "applicant_postcode": "6700",
            "applicant_city": "Esbjerg",
            "applicant_email": "lodsejer@example.dk",
            "project_title": title or f"Fælles afgræsning af enge {index}",
            "project_description": "Indhegning og vandforsyning, så engene kan afgræsses samlet hele året.",
            "area": area,
            "requested_amount": amount,
            "natura2000_site": site,
            "current_use": "unmanaged",
            "planned_management": "grazing",
            "landowners_agree": True,
        },
    }


def post(client: TestClient, token: str, path: str, body: dict[str, Any]) -> Any:
    return client.post(path, json=body, headers=auth(token))


def complete(client: TestClient, token: str, case: dict[str, Any], step: str, data: dict[str, Any]) -> dict[str, Any]:
    response = post(client, token, f"/cases/{case['id']}/steps/{step}/complete", {"data": data})
    assert response.status_code == 200, response.json()
    body: dict[str, Any] = response.json()
    return body


def approve(client: TestClient, token: str, case: dict[str, Any], step: str) -> Any:
    return post(client, token, f"/cases/{case['id']}/steps/{step}/approve", {"decision": "approve"})


def fetch(client: TestClient, token: str, case: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"/cases/{case['id']}", headers=auth(token)).json()
    return body


def open_round(client: TestClient, staff: dict[str, str], budget: str) -> dict[str, Any]:
    response = post(
        client,
        staff["pia"],
        "/cases",
        {
            "process": "natura2000-puljesag",
            "data": {
                "round_name": "Sammenhængende arealer, runde 2027",
                "budget": budget,
                "applications_open": "2026-12-01",
                "applications_close": "2027-01-15",
                "finance_account": "22.11.45.10",
            },
        },
    )
    assert response.status_code == 201, response.json()
    pool: dict[str, Any] = response.json()
    assert pool["phase"]["id"] == "round_open"
    return pool


def assess(client: TestClient, staff: dict[str, str], case: dict[str, Any], eligible: bool = True) -> dict[str, Any]:
    case = complete(client, staff["karl"], case, "completeness_check", {"application_complete": True})
    return complete(
        client,
        staff["karl"],
        case,
        "eligibility",
        {"eligible": eligible, "eligibility_note": "Arealet ligger i området, og driften fremmer naturtyperne."},
    )


def close_applications(client: TestClient, staff: dict[str, str], pool: dict[str, Any], clock: Clock) -> None:
    clock.advance(days=45)
    closed = post(client, staff["pia"], f"/cases/{pool['id']}/steps/close_applications/complete", {"data": {}})
    assert closed.status_code == 200, closed.json()


def rank(client: TestClient, staff: dict[str, str], pool: dict[str, Any]) -> Any:
    return post(
        client, staff["pia"], f"/cases/{pool['id']}/steps/confirm_ranking/complete", {"data": {"ranking_note": "OK"}}
    )


def ledger_rows(service: Sagsflow) -> int:
    with service.database.read() as session:
        return session.scalar(select(func.count()).select_from(LedgerEntry)) or 0


def test_natura2000_round_from_pool_to_payout_and_reconciliation(
    client: TestClient, service: Sagsflow, staff: dict[str, str], clock: Clock
) -> None:
    pool = open_round(client, staff, "300000.00")
    overview = client.get(f"/cases/{pool['id']}/pool", headers=auth(staff["pia"])).json()
    assert overview["budget"] == 30_000_000
    assert overview["balances"] == {"available": 30_000_000, "reserved": 0, "committed": 0, "paid": 0}

    # Three landowners apply; each joins the open round and is measured against its site.
    big = post(client, staff["owner"], "/cases", application(0, "180000.00", side=0.008)).json()
    small = post(client, staff["owner"], "/cases", application(1, "90000.00")).json()
    late_fit = post(client, staff["owner"], "/cases", application(2, "150000.00", side=0.002)).json()
    cases = [fetch(client, staff["karl"], case) for case in (big, small, late_fit)]
    for case in cases:
        assert case["data"]["pool_case"] == pool["journal_number"]
        assert Decimal(case["data"]["area_share_in_site"]) > 50
    cases = [assess(client, staff, case) for case in cases]
    assert cases[0]["data"]["score"] > cases[1]["data"]["score"] > cases[2]["data"]["score"]
    close_applications(client, staff, pool, clock)
    pool = fetch(client, staff["pia"], pool)
    assert pool["phase"]["id"] == "ranking"

    # Most points first: 180,000 and 90,000 fit the 300,000 budget; 150,000 does not.
    ranked = rank(client, staff, pool)
    assert ranked.status_code == 200, ranked.json()
    big, small, late_fit = (fetch(client, staff["karl"], case) for case in cases)
    assert [case["data"]["ranking_outcome"] for case in (big, small, late_fit)] == [
        "within_budget",
        "within_budget",
        "outside_budget",
    ]
    overview = client.get(f"/cases/{pool['id']}/pool", headers=auth(staff["pia"])).json()
    assert overview["balances"]["reserved"] == 27_000_000
    assert overview["balances"]["available"] == 3_000_000

    # The big application gets a commitment of 170,000: 10,000 of its reservation goes back.
    big = complete(
        client,
        staff["karl"],
        big,
        "grant_draft",
        {
            "grant_outcome": "commitment",
            "committed_amount": "170000.00",
            "statement_of_reasons": "Projektet samler engene til én afgræsningsenhed i Natura 2000-området.",
            "land_registration_required": False,
        },
    )
    response = approve(client, staff["anna"], big, "decision_approval")
    assert response.status_code == 200, response.json()
    big = response.json()
    assert big["phase"]["id"] == "payout_request"
    overview = client.get(f"/cases/{pool['id']}/pool", headers=auth(staff["pia"])).json()
    assert overview["balances"] == {"available": 4_000_000, "reserved": 9_000_000, "committed": 17_000_000, "paid": 0}

    # The payout: request, check, two approvers, then the payment to NemKonto through the outbox.
    big = complete(
        client,
        staff["karl"],
        big,
        "payout_application",
        {"payout_amount": "165000.00", "payout_documentation": "Fakturaer for hegn og vandforsyning."},
    )
    big = complete(client, staff["pia"], big, "payout_check", {"payout_approved_amount": "160000.00"})
    assert approve(client, staff["anna"], big, "payout_signoff").status_code == 200
    response = approve(client, staff["ole"], big, "payout_signoff")
    assert response.status_code == 200, response.json()
    big = response.json()
    assert big["phase"]["id"] == "closing"
    big = complete(client, staff["karl"], big, "closing_check", {"closing_note": "Projektet er gennemført."})
    assert big["status"] == "closed"

    # What was not paid of the commitment lapses back to the pool.
    overview = client.get(f"/cases/{pool['id']}/pool", headers=auth(staff["pia"])).json()
    assert overview["balances"] == {"available": 5_000_000, "reserved": 9_000_000, "committed": 0, "paid": 16_000_000}

    service.dispatch_outbox()
    report = client.get(f"/cases/{pool['id']}/pool/reconciliation", headers=auth(staff["pia"])).json()
    assert report["ok"], report
    operations = sorted((row["operation"], row["ledger_amount"]) for row in report["transactions"])
    assert operations == [
        ("commit", 17_000_000),
        ("pay", 16_000_000),
        ("release", 1_000_000),
        ("reserve", 9_000_000),
        ("reserve", 18_000_000),
    ]
    assert all(row["status"] == "sent" and row["receipt"] for row in report["transactions"])
    payments = [booking for booking in service.services.finance.transactions() if booking.operation == "pay"]
    assert [
        (booking.amount, booking.voucher.creditor.number if booking.voucher.creditor else None) for booking in payments
    ] == [(16_000_000, "10150817")]


def test_reconciliation_finds_a_ledger_changed_behind_the_engine(
    client: TestClient, service: Sagsflow, staff: dict[str, str], clock: Clock
) -> None:
    pool = open_round(client, staff, "300000.00")
    case = post(client, staff["owner"], "/cases", application(0, "100000.00")).json()
    assess(client, staff, fetch(client, staff["karl"], case))
    close_applications(client, staff, pool, clock)
    assert rank(client, staff, fetch(client, staff["pia"], pool)).status_code == 200
    service.dispatch_outbox()
    assert client.get(f"/cases/{pool['id']}/pool/reconciliation", headers=auth(staff["pia"])).json()["ok"]

    with service.database.write() as session:
        entry = session.scalars(select(LedgerEntry).where(LedgerEntry.operation == "reserve")).one()
        entry.amount += 100

    report = client.get(f"/cases/{pool['id']}/pool/reconciliation", headers=auth(staff["pia"])).json()
    assert not report["ok"]
    problems = [problem for row in report["transactions"] for problem in row["problems"]]
    assert problems
    assert "voucher" in " ".join(problems) or "bilag" in " ".join(problems).lower()


def test_application_without_open_round_rejected(client: TestClient, service: Sagsflow, staff: dict[str, str]) -> None:
    response = post(client, staff["owner"], "/cases", application(0, "100000.00"))

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "no_open_round"
    with service.database.read() as session:
        assert session.scalar(select(func.count()).select_from(Case)) == 0


def test_ranking_waits_until_every_application_is_assessed(
    client: TestClient, service: Sagsflow, staff: dict[str, str], clock: Clock
) -> None:
    pool = open_round(client, staff, "300000.00")
    assessed = post(client, staff["owner"], "/cases", application(0, "100000.00")).json()
    waiting = post(client, staff["owner"], "/cases", application(1, "100000.00")).json()
    assess(client, staff, fetch(client, staff["karl"], assessed))
    close_applications(client, staff, pool, clock)
    pool = fetch(client, staff["pia"], pool)

    response = rank(client, staff, pool)

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "round_not_assessed"
    assert waiting["journal_number"] in error["message"]
    assert fetch(client, staff["pia"], pool)["version"] == pool["version"]
    assert ledger_rows(service) == 0
    assert fetch(client, staff["karl"], assessed)["phase"]["id"] == "ranking"


def draft_commitment(client: TestClient, staff: dict[str, str], case: dict[str, Any], amount: str) -> dict[str, Any]:
    return complete(
        client,
        staff["karl"],
        case,
        "grant_draft",
        {
            "grant_outcome": "commitment",
            "committed_amount": amount,
            "statement_of_reasons": "Projektet opfylder betingelserne og er prioriteret i puljen.",
            "land_registration_required": False,
        },
    )


def test_commitment_that_would_overdraw_the_pool_is_refused(
    client: TestClient, service: Sagsflow, staff: dict[str, str], clock: Clock
) -> None:
    # The ranking reserves each commitment's money, so the pool runs short only when the ledger
    # changes under a case: here another case takes over the reservation, written behind the engine.
    pool = open_round(client, staff, "100000.00")
    case = post(client, staff["owner"], "/cases", application(0, "100000.00")).json()
    other = post(client, staff["owner"], "/cases", application(1, "100000.00")).json()
    assess(client, staff, fetch(client, staff["karl"], case))
    assess(client, staff, fetch(client, staff["karl"], other), eligible=False)
    close_applications(client, staff, pool, clock)
    assert rank(client, staff, fetch(client, staff["pia"], pool)).status_code == 200
    draft = draft_commitment(client, staff, fetch(client, staff["karl"], case), "100000.00")
    with service.database.write() as session:
        account = session.scalars(select(LedgerAccount)).one()
        for case_id, source, target in ((case["id"], "reserved", "available"), (other["id"], "available", "reserved")):
            session.add(
                LedgerEntry(
                    account_id=account.id,
                    case_id=case_id,
                    operation="release" if source == "reserved" else "reserve",
                    amount=10_000_000,
                    from_bucket=source,
                    to_bucket=target,
                    reference=None,
                    at=clock(),
                    actor="test",
                )
            )
    entries = ledger_rows(service)

    response = approve(client, staff["anna"], draft, "decision_approval")

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "pool_overdrawn"
    assert "0,00 kr. til rådighed" in error["message"]
    assert "100.000,00 kr." in error["message"]
    after = fetch(client, staff["karl"], draft)
    assert (after["version"], after["phase"]["id"]) == (draft["version"], "approval")
    assert ledger_rows(service) == entries
    with service.database.read() as session:
        finance = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.channel == "finance")
        assert session.scalar(finance) == 1  # the reservation made by the ranking only


def test_caseworker_cannot_rank_by_hand(client: TestClient, staff: dict[str, str]) -> None:
    open_round(client, staff, "100000.00")
    case = post(client, staff["owner"], "/cases", application(0, "100000.00")).json()
    case = assess(client, staff, fetch(client, staff["karl"], case))

    response = post(
        client,
        staff["karl"],
        f"/cases/{case['id']}/steps/pool_ranking/complete",
        {"data": {"ranking_outcome": "within_budget"}},
    )

    assert response.status_code == 422
    assert "prioriteres af puljesagen" in response.json()["error"]["errors"][0]["message"]
    assert fetch(client, staff["karl"], case)["version"] == case["version"]


def test_payout_above_the_commitment_is_refused(
    client: TestClient, service: Sagsflow, staff: dict[str, str], clock: Clock
) -> None:
    pool = open_round(client, staff, "300000.00")
    case = post(client, staff["owner"], "/cases", application(0, "100000.00")).json()
    assess(client, staff, fetch(client, staff["karl"], case))
    close_applications(client, staff, pool, clock)
    assert rank(client, staff, fetch(client, staff["pia"], pool)).status_code == 200
    case = draft_commitment(client, staff, fetch(client, staff["karl"], case), "80000.00")
    case = approve(client, staff["anna"], case, "decision_approval").json()

    response = post(
        client,
        staff["karl"],
        f"/cases/{case['id']}/steps/payout_application/complete",
        {"data": {"payout_amount": "80000.01", "payout_documentation": "Fakturaer."}},
    )

    assert response.status_code == 422
    assert "tilsagte" in response.json()["error"]["errors"][0]["message"]
    assert fetch(client, staff["karl"], case)["version"] == case["version"]


def test_ledger_refuses_a_payout_above_what_is_committed(service: Sagsflow, clock: Clock) -> None:
    with service.database.write() as session:
        pool = _bare_case(session, service, "2026-900001")
        applicant = _bare_case(session, service, "2026-900002")
        account = ledger.open_account(session, ledger.POOL, pool.journal_number, ledger.ORE, 1_000_00, clock())
        what = Text("Puljen", "The pool")
        ledger.commit(session, account, applicant.id, 60_000, "karl", clock(), what=what)
        ledger.pay(session, account, applicant.id, 50_000, "karl", clock(), what=what)

        with pytest.raises(Conflict) as refused:
            ledger.pay(session, account, applicant.id, 10_001, "karl", clock(), what=what)

        assert refused.value.code == "payout_exceeds_commitment"
        # A case's "available" is what it drew from the pool's available amount, hence negative.
        assert ledger.case_balances(session, account, applicant.id).as_dict() == {
            "available": -60_000,
            "reserved": 0,
            "committed": 10_000,
            "paid": 50_000,
        }
        with pytest.raises(Conflict) as overdrawn:
            ledger.reserve(session, account, applicant.id, 40_001, "karl", clock(), what=what)
        assert overdrawn.value.code == "pool_overdrawn"
        totals = ledger.balances(session, account)
        assert sum(totals.as_dict().values()) == account.total


def _bare_case(session: Any, service: Sagsflow, journal_number: str) -> Case:
    """A case row to hang ledger entries on, without running a process."""
    from engine.storage.tables import ProcessVersion  # noqa: PLC0415

    version = session.scalars(select(ProcessVersion).limit(1)).one()
    now = service.services.clock()
    case = Case(
        journal_number=journal_number,
        journal_year=2026,
        journal_sequence=int(journal_number[-6:]),
        process_id=version.process_id,
        process_version_id=version.id,
        phase="x",
        status="open",
        title="x",
        language="da",
        data={},
        created_by="test",
        received_at=now,
        updated_at=now,
        version=1,
    )
    session.add(case)
    session.flush()
    return case


def test_pool_routes_need_staff(client: TestClient, staff: dict[str, str]) -> None:
    pool = open_round(client, staff, "300000.00")

    assert client.get(f"/cases/{pool['id']}/pool").status_code == 401
    assert client.get(f"/cases/{pool['id']}/pool", headers=auth(staff["owner"])).status_code in (403, 404)
    not_pool = client.get("/cases/999999/pool", headers=auth(staff["pia"]))
    assert not_pool.status_code == 404


def test_round_takes_applications_only_between_its_dates(
    client: TestClient, service: Sagsflow, staff: dict[str, str], clock: Clock
) -> None:
    pool = open_round(client, staff, "300000.00")
    clock.advance(days=43)  # 16 January 2027, the day after the deadline; the round is not closed yet

    late = post(client, staff["owner"], "/cases", application(0, "100000.00"))

    assert late.status_code == 409
    assert late.json()["error"]["code"] == "no_open_round"
    assert fetch(client, staff["pia"], pool)["phase"]["id"] == "round_open"


def test_closing_the_round_early_needs_a_reason(client: TestClient, staff: dict[str, str]) -> None:
    pool = open_round(client, staff, "300000.00")

    early = post(client, staff["pia"], f"/cases/{pool['id']}/steps/close_applications/complete", {"data": {}})

    assert early.status_code == 422
    assert "begrundelse" in early.json()["error"]["errors"][0]["message"]
    closed = post(
        client,
        staff["pia"],
        f"/cases/{pool['id']}/steps/close_applications/complete",
        {"data": {"early_close_reason": "Ordningen er lukket af ministeriet."}},
    )
    assert closed.status_code == 200, closed.json()
    assert closed.json()["phase"]["id"] == "ranking"


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_pool_commands_show_and_reconcile(
    client: TestClient, service: Sagsflow, staff: dict[str, str], clock: Clock, tmp_path: Path
) -> None:
    pool = open_round(client, staff, "300000.00")
    case = post(client, staff["owner"], "/cases", application(0, "100000.00")).json()
    assess(client, staff, fetch(client, staff["karl"], case))
    close_applications(client, staff, pool, clock)
    assert rank(client, staff, fetch(client, staff["pia"], pool)).status_code == 200
    service.dispatch_outbox()
    environment = {
        "SAGSFLOW_DATABASE_URL": service.database.url,
        "SAGSFLOW_DEFINITIONS": str(REPOSITORY),
        "SAGSFLOW_DIGITAL_POST_DIR": str(tmp_path / "post"),
        "SAGSFLOW_LANGUAGE": "da",
    }

    shown = CliRunner().invoke(app, ["pool", "show", pool["journal_number"]], env=environment)
    ledger_lines = CliRunner().invoke(app, ["pool", "ledger", pool["journal_number"]], env=environment)

    assert shown.exit_code == 0, shown.output
    assert "Budget 300.000,00 kr.: til rådighed 200.000,00 kr., reserveret 100.000,00 kr." in shown.output
    assert case["journal_number"] in shown.output
    assert ledger_lines.exit_code == 0, ledger_lines.output
    assert "reserve" in ledger_lines.output
    assert "finance:reserve:" in ledger_lines.output

    # The CLI's finance fake is not the test's, so the booked voucher is unknown to it: a mismatch, exit 1.
    reconciled = CliRunner().invoke(app, ["--lang", "en", "pool", "reconcile", pool["journal_number"]], env=environment)
    assert reconciled.exit_code == 1
    assert "The finance system does not know the voucher" in reconciled.output
    assert "Mismatches found: 1 case, 1 transaction" in reconciled.output


def test_payment_the_finance_system_rejects_fails_reconciliation(
    client: TestClient, service: Sagsflow, staff: dict[str, str], clock: Clock
) -> None:
    # 92001644 has no NemKonto in the finance fake's register, so the payment is rejected.
    pool = open_round(client, staff, "300000.00")
    case = post(client, staff["owner"], "/cases", application(0, "100000.00", cvr="92001644")).json()
    assess(client, staff, fetch(client, staff["karl"], case))
    close_applications(client, staff, pool, clock)
    assert rank(client, staff, fetch(client, staff["pia"], pool)).status_code == 200
    case = draft_commitment(client, staff, fetch(client, staff["karl"], case), "100000.00")
    case = approve(client, staff["anna"], case, "decision_approval").json()
    case = complete(
        client,
        staff["karl"],
        case,
        "payout_application",
        {"payout_amount": "100000.00", "payout_documentation": "Fakturaer."},
    )
    case = complete(client, staff["pia"], case, "payout_check", {"payout_approved_amount": "100000.00"})
    assert approve(client, staff["anna"], case, "payout_signoff").status_code == 200
    assert approve(client, staff["ole"], case, "payout_signoff").status_code == 200
    service.dispatch_outbox()

    report = client.get(f"/cases/{pool['id']}/pool/reconciliation", headers=auth(staff["pia"])).json()

    assert not report["ok"]
    payment = next(row for row in report["transactions"] if row["operation"] == "pay")
    assert payment["status"] == "failed"
    assert "afviste bilaget" in payment["problems"][0]
    assert "NemKonto" in payment["problems"][0]


def test_round_with_open_applications_cannot_close(
    client: TestClient, service: Sagsflow, staff: dict[str, str], clock: Clock
) -> None:
    pool = open_round(client, staff, "300000.00")
    case = post(client, staff["owner"], "/cases", application(0, "100000.00")).json()
    assess(client, staff, fetch(client, staff["karl"], case))
    close_applications(client, staff, pool, clock)
    pool = rank(client, staff, fetch(client, staff["pia"], pool)).json()

    response = post(
        client, staff["pia"], f"/cases/{pool['id']}/steps/close_round/complete", {"data": {"closing_note": "Slut."}}
    )

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "round_has_open_cases"
    assert case["journal_number"] in response.json()["error"]["message"]
    assert fetch(client, staff["pia"], pool)["version"] == pool["version"]
