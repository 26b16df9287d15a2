"""KLAP permits: the register of harbours and dumping sites, and each site's capacity in m³."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.app import create_app
from engine.adapters.cvr import FakeCompanyRegister
from engine.adapters.digital_post import MemoryDigitalPost
from engine.adapters.klap import (
    DumpingSite,
    Harbour,
    OfflineKlapRegister,
    SiteStatus,
    distance_km,
    parse_dumping_sites,
    parse_harbours,
    suggest_harbours,
)
from engine.adapters.natura2000 import DENMARK_EAST, DENMARK_NORTH, DENMARK_SOUTH, DENMARK_WEST
from engine.adapters.species import OfflineSpeciesPlus
from engine.auth import Actor
from engine.errors import Conflict, InvalidInput
from engine.runtime import ledger
from engine.runtime.commands import CaseCommand
from engine.runtime.hearings import open_hearing, record_reply
from engine.runtime.services import Services
from engine.service import Sagsflow
from engine.settings import Settings
from engine.storage.tables import Case, CaseEvent, Document, LedgerAccount, LedgerEntry, OutboxMessage
from tests.conftest import Clock, staff_tokens
from tests.helpers import APPLICANT, Tokens

auth = Tokens.header

# The KLAP team handles the permits (`team: klap` in the process).
TEAM = "klap"
CASEWORKER = Actor("karen", frozenset({"caseworker"}), (TEAM,))
APPROVER = Actor("bo", frozenset({"approver"}), (TEAM,))
APPROVER_2 = Actor("lise", frozenset({"approver"}), (TEAM,))


@pytest.fixture
def tokens(service: Sagsflow) -> Tokens:
    """Tokens of staff in the KLAP team and of two applicants, as the shared fixture makes them for CITES."""
    return staff_tokens(service, TEAM)


# A site with little room, so that a few permits fill it.
SMALL_SITE = DumpingSite(
    code="K_990",
    name="Prøvepladsen",
    waters_da="Kattegat",
    waters_en="Kattegat",
    latitude=56.30,
    longitude=11.00,
    status=SiteStatus.APPROVED,
    capacity_m3=50_000,
)


@pytest.fixture
def services(
    post: MemoryDigitalPost, clock: Clock, species: OfflineSpeciesPlus, companies: FakeCompanyRegister
) -> Services:
    """Build the services with SMALL_SITE added to the shipped register, for `service`, `client` and `tokens`."""
    register = OfflineKlapRegister(sites=[*OfflineKlapRegister().dumping_sites(), SMALL_SITE])
    return Services(species=species, companies=companies, digital_post=post, clock=clock, klap=register)


APPLICATION_CVR = "91312220"


def application(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "applicant_name": "Vesterhede Dyrepark ApS",
        "applicant_cvr": APPLICATION_CVR,
        "applicant_address": "Hedevej 41",
        "applicant_postcode": "6800",
        "applicant_city": "Varde",
        "applicant_email": "post@vesterhede.example",
        "harbour": "aar",
        "dumping_site": "K_990",
        "volume_applied_m3": 20_000,
        "dredging_area": "Havnebassin 3 og indsejlingen, i alt 2,1 ha, uddybes fra 6,5 til 7,5 m.",
        "sediment_analysis_reference": "Rapport 26-0417 af 12. oktober 2026",
        "contamination_class": "below_lower",
        "period_start": "2027-01-01",
        "period_end": "2031-12-31",
    }
    data.update(changes)
    return data


def submit(engine: Sagsflow, **changes: Any) -> dict[str, Any]:
    return engine.submit(APPLICANT, "klap-tilladelse", application(**changes), "da")


def complete(engine: Sagsflow, case: dict[str, Any], step_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return engine.complete_step(CASEWORKER, case["id"], step_id, data, None, "da")


def step(case: dict[str, Any], step_id: str) -> dict[str, Any]:
    rows: list[dict[str, Any]] = [row for row in case["checklist"] if row["step"] == step_id]
    return rows[-1]


def drafted(engine: Sagsflow, outcome: str = "granted", **changes: Any) -> dict[str, Any]:
    """Submit an application and take it to approval with a draft of `outcome`, without consultation."""
    case = submit(engine, **changes)
    case = complete(engine, case, "completeness_check", {"application_complete": True})
    case = complete(
        engine, case, "fact_assessment", {"assessment_note": "Analysen er i orden.", "consultation_required": False}
    )
    draft: dict[str, Any] = {
        "decision_outcome": outcome,
        "decision_text": "Miljøstyrelsen giver tilladelse til klapning.",
        "statement_of_reasons": "Materialet ligger under nedre aktionsniveau, og klappladsen har plads.",
    }
    if outcome != "refused":
        draft["granted_volume_m3"] = case["data"]["volume_applied_m3"]
    case = complete(engine, case, "draft_decision", draft)
    if case["phase"]["id"] == "partshoering":
        # A decision that does not grant everything first hears the applicant, who replies by e-mail.
        def hear(command: CaseCommand) -> None:
            open_hearing(command, "party_hearing", None, {})

        def reply(command: CaseCommand) -> None:
            record_reply(command, "party_hearing", APPLICATION_CVR, "Ingen bemærkninger.", [])

        engine.run_command(CASEWORKER, case["id"], None, "da", "open_hearing", hear)
        case = engine.run_command(CASEWORKER, case["id"], None, "da", "record_hearing_reply", reply)
    assert case["phase"]["id"] == "approval"
    return case


def site_use(engine: Sagsflow, code: str) -> dict[str, int] | None:
    """The site account's buckets, or None when no permit has been granted for the site yet."""
    with engine.database.read() as session:
        account = ledger.find_account(session, ledger.SITE, code)
        return None if account is None else ledger.balances(session, account).as_dict()


def count_rows(engine: Sagsflow) -> dict[str, int]:
    with engine.database.read() as session:
        return {
            table.__name__: session.scalar(select(func.count()).select_from(table)) or 0
            for table in (Case, CaseEvent, Document, OutboxMessage, LedgerAccount, LedgerEntry)
        }


# The register --------------------------------------------------------------------------------


def test_register_data_is_consistent() -> None:
    register = OfflineKlapRegister()
    harbours = register.harbours()
    sites = register.dumping_sites()

    assert len(harbours) >= 40
    assert len(sites) >= 25
    assert len({harbour.code for harbour in harbours}) == len(harbours)
    assert len({site.code for site in sites}) == len(sites)
    places: list[Harbour | DumpingSite] = [*harbours, *sites]
    for place in places:
        assert DENMARK_SOUTH <= place.latitude <= DENMARK_NORTH, place
        assert DENMARK_WEST <= place.longitude <= DENMARK_EAST, place
    assert all(site.capacity_m3 > 0 for site in sites)
    assert all(harbour.municipality for harbour in harbours)
    assert {site.status for site in sites} == {SiteStatus.APPROVED, SiteStatus.CLOSED}
    assert register.harbour(" aar ") == register.harbour("AAR")
    assert register.dumping_site("k_101") is not None
    assert register.dumping_site("K_999") is None


def test_register_rows_are_checked() -> None:
    header = "code,name,waters_da,waters_en,latitude,longitude,status,capacity_m3\n"
    row = "K_101,Aarhus Bugt,Kattegat,Kattegat,56.12,10.38,approved,900000\n"

    with pytest.raises(
        ValueError, match=r"sites.csv, line 3: duplicate code 'K_101', first given at sites.csv, line 2"
    ):
        parse_dumping_sites(header + row + row, "sites.csv")
    with pytest.raises(ValueError, match=r"line 2: the position 10.38, 56.12 lies outside Denmark"):
        parse_dumping_sites(header + row.replace("56.12,10.38", "10.38,56.12"), "sites.csv")
    with pytest.raises(ValueError, match=r"line 2: invalid capacity_m3 '-5'"):
        parse_dumping_sites(header + row.replace("900000", "-5"), "sites.csv")
    with pytest.raises(ValueError, match=r"line 2: invalid status 'open'"):
        parse_dumping_sites(header + row.replace("approved", "open"), "sites.csv")
    with pytest.raises(ValueError, match=r"harbours.csv, line 2: invalid harbour code 'AARH'"):
        parse_harbours(
            "code,name,municipality,latitude,longitude\nAARH,Aarhus Havn,Aarhus,56.15,10.23\n", "harbours.csv"
        )


def test_harbour_suggestions_and_distances() -> None:
    register = OfflineKlapRegister()

    assert suggest_harbours(register, "Esbjerg")[0].code == "EBJ"
    assert {harbour.code for harbour in suggest_harbours(register, "AAH")} >= {"AAR", "AAL"}
    # A rough check: Aarhus and Copenhagen lie between 150 and 165 km apart in a straight line.
    assert 150 < distance_km(56.150, 10.230, 55.710, 12.600) < 165


# Field types ---------------------------------------------------------------------------------


def test_codes_stored_in_register_form(service: Sagsflow) -> None:
    case = submit(service, harbour=" ebj ", dumping_site="k_990")
    case = service.get_case(CASEWORKER, case["id"], "da")

    assert case["data"]["harbour"] == "EBJ"
    assert case["data"]["dumping_site"] == "K_990"
    assert case["data"]["harbour_name"] == "Esbjerg Havn"
    assert case["data"]["dumping_site_name"] == "Prøvepladsen"
    assert case["title"] == "EBJ → K_990, 20000 m³ – Vesterhede Dyrepark ApS"


def test_closed_site_and_unknown_harbour_rejected(service: Sagsflow) -> None:
    before = count_rows(service)

    with pytest.raises(InvalidInput) as raised:
        submit(service, harbour="Arhus", dumping_site="K_112")

    errors = {error.field: error for error in raised.value.errors}
    assert errors["data.harbour"].code == "unknown_harbour"
    assert errors["data.harbour"].text.da == "Havn (harbour): Havnen 'Arhus' findes ikke i registret over havne."
    assert errors["data.harbour"].hint is not None
    assert errors["data.harbour"].hint.en == "Did you mean: AAR (Aarhus Havn)?"
    assert errors["data.dumping_site"].code == "dumping_site_closed"
    assert errors["data.dumping_site"].text.en == (
        "Dumping site (dumping_site): The dumping site K_112 (Grådyb) is closed and cannot be used in new permits."
    )
    assert errors["data.dumping_site"].hint is not None
    assert errors["data.dumping_site"].hint.da.startswith("Vælg en godkendt klapplads; de nærmeste er K_111")
    assert count_rows(service) == before


def test_unknown_site_rejected_over_http(client: TestClient, tokens: Tokens) -> None:
    response = client.post(
        "/cases",
        json={"process": "klap-tilladelse", "data": application(dumping_site="K_999")},
        headers=auth(tokens.applicant, "en"),
    )

    assert response.status_code == 422
    error = response.json()["error"]["errors"][0]
    assert error["field"] == "data.dumping_site"
    assert error["code"] == "unknown_dumping_site"
    assert error["message"] == (
        "Dumping site (dumping_site): The dumping site 'K_999' is not in the register of dumping sites."
    )
    assert error["hint"].startswith("Did you mean: K_")


# The 5-year rule -----------------------------------------------------------------------------


FIVE_YEARS = (
    "A permit to dump dredged material runs for at most 5 years. Choose an end date at most 5 years after the start "
    "date, and apply for a new permit for the rest of the period."
)
END_BEFORE_START = "The end date of the dumping period must be after its start date."


@pytest.mark.parametrize(
    ("start", "end", "rejection"),
    [
        ("2027-01-01", "2032-01-01", None),
        ("2027-01-01", "2032-01-02", FIVE_YEARS),
        ("2028-02-29", "2033-02-28", None),
        ("2028-02-29", "2033-03-01", FIVE_YEARS),
        ("2027-06-01", "2027-06-01", END_BEFORE_START),
    ],
)
def test_period_runs_at_most_five_years(service: Sagsflow, start: str, end: str, rejection: str | None) -> None:
    if rejection is None:
        case = submit(service, period_start=start, period_end=end)
        assert case["phase"]["id"] == "screening"
        return

    with pytest.raises(InvalidInput) as raised:
        submit(service, period_start=start, period_end=end)

    assert [error.code for error in raised.value.errors] == ["check_failed"]
    assert raised.value.errors[0].text.en == rejection


# Capacity at submission ----------------------------------------------------------------------


def test_capacity_check_records_what_is_left(service: Sagsflow) -> None:
    case = submit(service)
    case = service.get_case(CASEWORKER, case["id"], "da")

    assert step(case, "capacity_check")["outcome"] == "within_capacity"
    assert case["data"]["site_remaining_m3"] == 50_000
    assert site_use(service, "K_990") is None, "a check reserves nothing"


def test_application_beyond_capacity_rejected(service: Sagsflow) -> None:
    case = drafted(service, volume_applied_m3=40_000)
    service.approve(APPROVER, case["id"], "decision_approval", "approve", None, None, "da")
    before = count_rows(service)

    with pytest.raises(Conflict) as raised:
        submit(service, volume_applied_m3=10_001, period_start="2027-02-01")

    assert raised.value.code == "capacity_exceeded"
    assert raised.value.field == "data.volume_applied_m3"
    assert raised.value.text.da == (
        "Klappladsen K_990 (Prøvepladsen) har 10.000 m³ tilbage af sin godkendte kapacitet, så der er ikke plads "
        "til de 10.001 m³, der søges om. Ansøgningen er ikke modtaget."
    )
    assert raised.value.hint is not None
    assert raised.value.hint.en == "Apply for at most 10,000 m³, or choose another dumping site."
    assert count_rows(service) == before

    # What is left still fits, and the journal number taken is the next one: the rejection used none.
    fits = submit(service, volume_applied_m3=10_000, period_start="2027-02-01")
    assert fits["journal_number"] == "2026-000002"


def test_rejection_at_submission_over_http(client: TestClient, tokens: Tokens, service: Sagsflow) -> None:
    before = count_rows(service)

    response = client.post(
        "/cases",
        json={"process": "klap-tilladelse", "data": application(volume_applied_m3=60_000)},
        headers=auth(tokens.applicant, "en"),
    )

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "capacity_exceeded"
    assert error["field"] == "data.volume_applied_m3"
    assert error["message"] == (
        "The dumping site K_990 (Prøvepladsen) has 50,000 m³ left of its approved capacity, so there is no room "
        "for the 60,000 m³ applied for. The application was not received."
    )
    assert count_rows(service) == before


# The permit end to end -----------------------------------------------------------------------


def test_granted_permit_allocates_volume(
    client: TestClient, tokens: Tokens, service: Sagsflow, post: MemoryDigitalPost
) -> None:
    def complete_http(token: str, case: dict[str, Any], step_id: str, data: dict[str, Any]) -> dict[str, Any]:
        response = client.post(
            f"/cases/{case['id']}/steps/{step_id}/complete",
            json={"data": data, "version": case["version"]},
            headers=auth(token),
        )
        assert response.status_code == 200, response.json()
        body: dict[str, Any] = response.json()
        return body

    response = client.post(
        "/cases",
        json={"process": "klap-tilladelse", "data": application(volume_applied_m3=30_000)},
        headers=auth(tokens.applicant),
    )
    assert response.status_code == 201, response.json()
    case = client.get(f"/cases/{response.json()['id']}", headers=auth(tokens.caseworker)).json()
    receipt = client.get(f"/cases/{case['id']}/letters", headers=auth(tokens.applicant)).json()[0]
    assert (
        "klappe 30.000 m³ havbundsmateriale fra Aarhus Havn (AAR) på klappladsen K_990 Prøvepladsen"
        in (receipt["text"])
    )

    # Screening and fact-finding send the case to consultation, and the one party's reply is recorded.
    case = complete_http(tokens.caseworker, case, "completeness_check", {"application_complete": True})
    case = complete_http(
        tokens.caseworker,
        case,
        "fact_assessment",
        {"assessment_note": "Sedimentet ligger under nedre aktionsniveau.", "consultation_required": True},
    )
    assert case["phase"]["id"] == "hoering"
    fishers = {"name": "Fjordby Fiskeriforening", "id_type": "CVR", "id": "92000001"}
    response = client.post(
        f"/cases/{case['id']}/steps/consultation/hearing",
        json={"parties": [fishers], "merged": {"question": "Har I bemærkninger?"}, "version": case["version"]},
        headers=auth(tokens.caseworker),
    )
    assert response.status_code == 200, response.json()
    response = client.post(
        f"/cases/{case['id']}/steps/consultation/hearing/replies",
        json={"party": "92000001", "text": "Ingen bemærkninger til klapningen."},
        headers=auth(tokens.caseworker),
    )
    assert response.status_code == 200, response.json()
    case = response.json()
    assert step(case, "consultation")["outcome"] == "answered"
    assert case["phase"]["id"] == "draft"

    # A draft that grants more than applied for is rejected, and then four eyes stop the drafter.
    draft = {
        "decision_outcome": "granted",
        "granted_volume_m3": 35_000,
        "decision_text": "Miljøstyrelsen giver tilladelse til klapning af 30.000 m³ på K_990.",
        "statement_of_reasons": "Materialet ligger under nedre aktionsniveau, og høringen gav ingen bemærkninger.",
        "conditions": "Klapning må kun ske fra 1. oktober til 31. marts.",
        "version": case["version"],
    }
    too_much = client.post(
        f"/cases/{case['id']}/steps/draft_decision/complete",
        json={"data": {k: v for k, v in draft.items() if k != "version"}, "version": case["version"]},
        headers=auth(tokens.both),
    )
    assert too_much.status_code == 422
    assert too_much.json()["error"]["errors"][0]["message"] == (
        "Den tilladte mængde må ikke være større end den ansøgte."
    )
    draft["granted_volume_m3"] = 30_000
    case = complete_http(tokens.both, case, "draft_decision", {k: v for k, v in draft.items() if k != "version"})
    assert case["phase"]["id"] == "approval"
    own = client.post(
        f"/cases/{case['id']}/steps/decision_approval/approve",
        json={"decision": "approve", "version": case["version"]},
        headers=auth(tokens.both),
    )
    assert own.status_code == 403
    assert own.json()["error"]["code"] == "four_eyes"
    assert site_use(service, "K_990") is None, "nothing is taken before the permit is granted"

    approved = client.post(
        f"/cases/{case['id']}/steps/decision_approval/approve",
        json={"decision": "approve", "version": case["version"]},
        headers=auth(tokens.approver),
    )
    assert approved.status_code == 200, approved.json()
    case = approved.json()
    assert case["phase"]["id"] == "closing"
    assert step(case, "capacity_allocation")["outcome"] == "allocated"
    assert case["data"]["site_remaining_m3"] == 20_000
    assert site_use(service, "K_990") == {"available": 20_000, "reserved": 0, "committed": 30_000, "paid": 0}

    letters = client.get(f"/cases/{case['id']}/letters", headers=auth(tokens.caseworker)).json()
    decision = letters[-1]
    assert decision["title"] == "Afgørelse"
    assert "Tilladt mængde: 30.000 m³ (ansøgt: 30.000 m³)" in decision["text"]
    assert "som herefter har 20.000 m³ tilbage" in decision["text"]
    assert "Klapning må kun ske fra 1. oktober til 31. marts." in decision["text"]
    assert "\nKlagevejledning\n\n" in decision["text"]

    audit = client.get(f"/cases/{case['id']}/audit", headers=auth(tokens.caseworker)).json()
    movements = [entry for event in audit["events"] for entry in event["changes"].get("ledger", [])]
    assert movements == [
        {"operation": "commit", "amount": 30_000, "unit": "m3", "from": "available", "to": "committed", "site": "K_990"}
    ]


def test_english_decision_letter(service: Sagsflow) -> None:
    case = service.submit(APPLICANT, "klap-tilladelse", application(volume_applied_m3=12_500), "en")
    case = complete(service, case, "completeness_check", {"application_complete": True})
    case = complete(service, case, "fact_assessment", {"assessment_note": "OK.", "consultation_required": False})
    case = complete(
        service,
        case,
        "draft_decision",
        {
            "decision_outcome": "granted",
            "granted_volume_m3": 12_500,
            "decision_text": "The permit is granted.",
            "statement_of_reasons": "The material is below the lower action level.",
        },
    )
    service.approve(APPROVER, case["id"], "decision_approval", "approve", None, None, "en")

    letters = service.list_letters(CASEWORKER, case["id"])
    assert "12,500 m³ of seabed material from Aarhus Havn (AAR)" in letters[0]["text"]
    assert "Volume permitted: 12,500 m³ (applied for: 12,500 m³)" in letters[-1]["text"]
    assert "which now has 37,500 m³ left" in letters[-1]["text"]


def test_refused_permit_takes_no_capacity(service: Sagsflow) -> None:
    case = drafted(service, outcome="refused")
    case = service.approve(APPROVER, case["id"], "decision_approval", "approve", None, None, "da")

    assert step(case, "capacity_allocation")["outcome"] == "skipped"
    assert site_use(service, "K_990") is None
    assert "er afslået" in service.list_letters(CASEWORKER, case["id"])[-1]["text"]


def test_draft_checks_volume_and_contamination(service: Sagsflow) -> None:
    case = submit(service, contamination_class="above_upper")
    case = complete(service, case, "completeness_check", {"application_complete": True})
    case = complete(service, case, "fact_assessment", {"assessment_note": "Forurenet.", "consultation_required": False})
    draft = {
        "decision_outcome": "granted",
        "granted_volume_m3": 15_000,
        "decision_text": "Tilladelse.",
        "statement_of_reasons": "Klappladsen har plads nok til materialet.",
    }

    with pytest.raises(InvalidInput) as raised:
        complete(service, case, "draft_decision", draft)

    assert [error.text.da for error in raised.value.errors] == [
        "Ved fuldt medhold er den tilladte mængde den ansøgte. Vælg delvist medhold for en mindre mængde.",
        "Materialet ligger over øvre aktionsniveau og må ikke klappes. Vælg afslag.",
    ]
    with pytest.raises(InvalidInput) as missing:
        complete(
            service,
            case,
            "draft_decision",
            {**draft, "decision_outcome": "partially_granted", "granted_volume_m3": None},
        )
    assert missing.value.errors[0].field == "data.granted_volume_m3"


# Two permits racing for the last capacity ------------------------------------------------------


def race(*attempts: Callable[[], Any]) -> list[Any]:
    """Run the attempts in threads released at the same moment; return their results."""
    barrier = threading.Barrier(len(attempts))
    results: list[Any] = [None] * len(attempts)

    def run(index: int, attempt: Callable[[], Any]) -> None:
        barrier.wait()
        results[index] = attempt()

    threads = [threading.Thread(target=run, args=(index, attempt)) for index, attempt in enumerate(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


# Without an earlier permit both approvals also race to open the site's account.
@pytest.mark.parametrize(("earlier", "volume"), [(0, 30_000), (10_000, 25_000)])
def test_racing_permits_for_last_capacity(
    service: Sagsflow, tokens: Tokens, clock: Clock, request: pytest.FixtureRequest, earlier: int, volume: int
) -> None:
    if "postgresql" not in request.node.callspec.id:
        pytest.skip("SQLite takes one writer at a time, so the two approvals cannot overlap")
    if earlier:
        case = drafted(service, volume_applied_m3=earlier, period_start="2027-05-01")
        service.approve(APPROVER, case["id"], "decision_approval", "approve", None, None, "da")
    first = drafted(service, volume_applied_m3=volume)
    second = drafted(service, volume_applied_m3=volume, period_start="2027-03-01")
    app = create_app(service, Settings())

    with TestClient(app) as one, TestClient(app) as other:
        clock.delay = 0.2
        responses = race(
            lambda: one.post(
                f"/cases/{first['id']}/steps/decision_approval/approve",
                json={"decision": "approve", "version": first["version"]},
                headers=auth(tokens.approver),
            ),
            lambda: other.post(
                f"/cases/{second['id']}/steps/decision_approval/approve",
                json={"decision": "approve", "version": second["version"]},
                headers=auth(tokens.both),
            ),
        )
        clock.delay = 0.0

    left = SMALL_SITE.capacity_m3 - earlier - volume
    assert sorted(response.status_code for response in responses) == [200, 409]
    lost = next(response for response in responses if response.status_code == 409).json()["error"]
    assert lost["code"] == "capacity_exceeded"
    assert f"har {left:,} m³ tilbage".replace(",", ".") in lost["message"]
    assert site_use(service, "K_990") == {"available": left, "reserved": 0, "committed": earlier + volume, "paid": 0}

    loser = first if responses[0].status_code == 409 else second
    unchanged = service.get_case(CASEWORKER, loser["id"], "da")
    assert unchanged["version"] == loser["version"]
    assert unchanged["phase"]["id"] == "approval"
    assert step(unchanged, "decision_approval")["status"] == "active"
    assert [letter["letter"] for letter in service.list_letters(CASEWORKER, loser["id"])] == ["receipt"]


def test_second_permit_beyond_capacity_conflicts(service: Sagsflow) -> None:
    first = drafted(service, volume_applied_m3=30_000)
    second = drafted(service, volume_applied_m3=30_000, period_start="2027-03-01")
    service.approve(APPROVER, first["id"], "decision_approval", "approve", None, None, "da")

    with pytest.raises(Conflict) as raised:
        service.approve(APPROVER_2, second["id"], "decision_approval", "approve", None, None, "da")

    assert raised.value.code == "capacity_exceeded"
    assert raised.value.text.en == (
        "The dumping site K_990 (Prøvepladsen) has 20,000 m³ left; the permit of 30,000 m³ would exceed its "
        "capacity. Nothing was changed."
    )
    assert service.get_case(CASEWORKER, second["id"], "da")["version"] == second["version"]
    assert site_use(service, "K_990") == {"available": 20_000, "reserved": 0, "committed": 30_000, "paid": 0}


def test_site_closed_before_grant_conflicts(service: Sagsflow, services: Services) -> None:
    case = drafted(service)
    closed = dataclasses.replace(SMALL_SITE, status=SiteStatus.CLOSED)
    services.klap = OfflineKlapRegister(sites=[closed])

    with pytest.raises(Conflict) as raised:
        service.approve(APPROVER, case["id"], "decision_approval", "approve", None, None, "da")

    assert raised.value.code == "dumping_site_closed"
    assert raised.value.text.da == (
        "Klappladsen K_990 (Prøvepladsen) er lukket, så tilladelsen kan ikke gives til den. Intet er ændret."
    )
    assert service.get_case(CASEWORKER, case["id"], "da")["version"] == case["version"]
    assert site_use(service, "K_990") is None
