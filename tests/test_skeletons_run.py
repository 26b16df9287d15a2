"""Cases run on each skeleton: grants with payout, inspections with enforcement, simple cases."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from engine.adapters.digital_post import MemoryDigitalPost
from engine.auth import Actor
from engine.definitions.loader import load_definitions
from engine.errors import Forbidden, InvalidInput
from engine.runtime.commands import CaseCommand
from engine.runtime.hearings import open_hearing, submit_reply
from engine.runtime.services import Services
from engine.runtime.worker import Worker
from engine.service import Sagsflow
from engine.storage.database import Database
from tests.conftest import Clock
from tests.helpers import APPROVER, APPROVER_2, CASEWORKER, REPOSITORY

PROCESSES = {
    "tilskud": """
process: test-grant
extends: tilskud
title: {da: Testtilskud, en: Test grant}
legal_basis: [{title: {da: Testlov, en: Test act}, reference: "§ 1"}]
classification: "02.01.01"
""",
    "tilsyn": """
process: test-inspection
extends: tilsyn
title: {da: Testtilsyn, en: Test inspection}
legal_basis: [{title: {da: Testlov, en: Test act}, reference: "§ 2"}]
classification: "03.01.01"
""",
    "simpel": """
process: test-simple
extends: simpel
title: {da: Testhenvendelse, en: Test request}
legal_basis: [{title: {da: Testlov, en: Test act}, reference: "§ 3"}]
classification: "04.01.01"
""",
}

# About 1.2 km by 1.1 km near Silkeborg.
AREA = {
    "type": "Polygon",
    "coordinates": [[[9.50, 56.17], [9.52, 56.17], [9.52, 56.18], [9.50, 56.18], [9.50, 56.17]]],
}
APPLICANT = Actor("vesterhede", frozenset({"applicant"}))


@pytest.fixture
def engine(tmp_path: Path, database: Database, services: Services) -> Sagsflow:
    root = tmp_path / "definitions"
    shutil.copytree(REPOSITORY / "skeletons", root / "skeletons")
    for skeleton, text in PROCESSES.items():
        path = root / "processes" / skeleton / "process.yaml"
        path.parent.mkdir(parents=True)
        path.write_text(text, encoding="utf-8")
    loaded = load_definitions(root)
    assert [problem.format("en") for problem in loaded.errors] == []
    service = Sagsflow(database, services)
    service.deploy(loaded, "test")
    return service


def grant_application(**changes: Any) -> dict[str, Any]:
    data = {
        "applicant_name": "Vesterhede Dyrepark ApS",
        "applicant_cvr": "91312220",
        "applicant_address": "Hedevej 41",
        "applicant_postcode": "6800",
        "applicant_city": "Varde",
        "applicant_email": "post@vesterhede.example",
        "co_applicants": [
            {"name": "Vesterhede Dyrepark ApS", "cvr": "91312220", "share": 60},
            {"name": "Fonden Sønderbæk Botaniske Have", "cvr": "93147030", "share": 40},
        ],
        "project_title": "Sammenhængende hede ved Vesterhede",
        "project_description": "Rydning af opvækst og etablering af afgræsning.",
        "area": AREA,
        "requested_amount": "250000.00",
    }
    data.update(changes)
    return data


def step(case: dict[str, Any], step_id: str) -> dict[str, Any]:
    rows: list[dict[str, Any]] = [row for row in case["checklist"] if row["step"] == step_id]
    return rows[-1]


def complete(engine: Sagsflow, case: dict[str, Any], step_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return engine.complete_step(CASEWORKER, case["id"], step_id, data, None, "da")


def test_grant_from_application_to_payout(engine: Sagsflow) -> None:
    case = engine.submit(APPLICANT, "test-grant", grant_application(), "da")
    case = engine.get_case(CASEWORKER, case["id"], "da")

    # About 0.02° of longitude by 0.01° of latitude at 56° N: roughly 124 by 111 hectares' sides.
    assert 130 < float(case["data"]["area_ha"]) < 145
    case = complete(engine, case, "completeness_check", {"application_complete": True})
    assert case["phase"]["id"] == "assessment"
    assert case["data"]["score"] == round(float(case["data"]["area_ha"]))
    case = complete(engine, case, "eligibility", {"eligible": True, "eligibility_note": "Opfylder betingelserne."})
    case = complete(engine, case, "pool_ranking", {"ranking_outcome": "within_budget"})

    with pytest.raises(InvalidInput) as too_much:
        complete(
            engine,
            case,
            "grant_draft",
            {
                "grant_outcome": "commitment",
                "committed_amount": "300000",
                "statement_of_reasons": "Projektet er prioriteret.",
                "land_registration_required": True,
            },
        )
    assert "overstige det ansøgte beløb" in too_much.value.errors[0].text.da

    case = complete(
        engine,
        case,
        "grant_draft",
        {
            "grant_outcome": "commitment",
            "committed_amount": "200000",
            "statement_of_reasons": "Projektet er prioriteret.",
            "land_registration_required": True,
        },
    )
    # 145,000 + 120,000 EUR received earlier plus 200,000 DKK (about 26,810 EUR) stays under EUR 300,000.
    assert case["data"]["de_minimis_result"] == "within"
    assert case["phase"]["id"] == "approval"
    case = engine.approve(APPROVER, case["id"], "decision_approval", "approve", None, None, "da")
    assert case["phase"]["id"] == "payout_request"
    assert case["data"]["land_registration_reference"].startswith("TL-2026-")

    with pytest.raises(InvalidInput):
        complete(engine, case, "payout_application", {"payout_amount": "250000", "payout_documentation": "Fakturaer."})
    case = complete(
        engine, case, "payout_application", {"payout_amount": "180000", "payout_documentation": "Fakturaer."}
    )
    case = complete(engine, case, "payout_check", {"payout_approved_amount": "175000"})

    case = engine.approve(APPROVER, case["id"], "payout_signoff", "approve", None, None, "da")
    assert case["phase"]["id"] == "payout_approval", "six eyes: one approval is not enough"
    case = engine.approve(APPROVER_2, case["id"], "payout_signoff", "approve", None, None, "da")
    assert case["phase"]["id"] == "closing"
    letters = engine.list_letters(CASEWORKER, case["id"])
    assert [letter["letter"] for letter in letters] == ["receipt", "grant_decision", "payout_letter"]
    assert "200.000,00 kr." in letters[1]["text"]
    assert "Fonden Sønderbæk Botaniske Have (40 %)" in letters[1]["text"]
    assert "175.000,00 kr." in letters[2]["text"]


def test_grant_de_minimis_ceiling_sends_draft_back(engine: Sagsflow) -> None:
    case = engine.submit(APPLICANT, "test-grant", grant_application(requested_amount="900000"), "da")
    case = complete(engine, case, "completeness_check", {"application_complete": True})
    case = complete(engine, case, "eligibility", {"eligible": True, "eligibility_note": "Ok."})
    case = complete(engine, case, "pool_ranking", {"ranking_outcome": "within_budget"})

    # 265,000 EUR already received plus 800,000 DKK (about 107,240 EUR) exceeds EUR 300,000.
    case = complete(
        engine,
        case,
        "grant_draft",
        {
            "grant_outcome": "commitment",
            "committed_amount": "800000",
            "statement_of_reasons": "Projektet er prioriteret.",
            "land_registration_required": False,
        },
    )

    assert case["data"]["de_minimis_result"] == "exceeded"
    assert case["phase"]["id"] == "draft"


def test_grant_rejects_invalid_area_and_shares(engine: Sagsflow) -> None:
    bowtie = {
        "type": "Polygon",
        "coordinates": [[[9.5, 56.17], [9.52, 56.18], [9.52, 56.17], [9.5, 56.18], [9.5, 56.17]]],
    }
    shares = [{"name": "A", "cvr": "91312220", "share": 60}, {"name": "B", "cvr": "93147030", "share": 30}]

    with pytest.raises(InvalidInput) as raised:
        engine.submit(APPLICANT, "test-grant", grant_application(area=bowtie, co_applicants=shares), "da")

    fields = {error.field: error for error in raised.value.errors}
    assert fields["data.area"].code == "invalid_geometry"
    assert "Self-intersection" in fields["data.area"].text.en
    assert "100" in fields["data.co_applicants"].text.en


def test_refused_grant_closes_without_payout(engine: Sagsflow) -> None:
    case = engine.submit(APPLICANT, "test-grant", grant_application(), "da")
    case = complete(engine, case, "completeness_check", {"application_complete": True})
    case = complete(
        engine, case, "eligibility", {"eligible": False, "eligibility_note": "Arealet ligger uden for området."}
    )
    assert case["phase"]["id"] == "draft"

    case = complete(
        engine,
        case,
        "grant_draft",
        {"grant_outcome": "refusal", "statement_of_reasons": "Arealet ligger uden for området."},
    )
    case = engine.approve(APPROVER, case["id"], "decision_approval", "approve", None, None, "da")

    assert case["phase"]["id"] == "closing"
    assert "Afslag på tilskud" in engine.list_letters(CASEWORKER, case["id"])[-1]["text"]


def inspection(engine: Sagsflow) -> dict[str, Any]:
    data = {
        "subject_name": "Havnen i Fjordby A/S",
        "subject_cvr": "90131443",
        "subject_address": "Kajgade 1",
        "subject_postcode": "8600",
        "subject_city": "Silkeborg",
        "inspection_site": "Klapplads Fjordby Nord",
    }
    return engine.submit(CASEWORKER, "test-inspection", data, "da")


def open_party_hearing(command: CaseCommand) -> None:
    open_hearing(command, "party_hearing", None, {})


def test_inspection_with_hearing_and_order(engine: Sagsflow, post: MemoryDigitalPost, clock: Clock) -> None:
    case = inspection(engine)
    case = complete(
        engine,
        case,
        "select_subject",
        {"selection_basis": "risk", "inspection_announced": True, "planned_date": "2026-12-15"},
    )
    assert step(case, "notice_letter")["outcome"] == "sent"
    case = complete(
        engine,
        case,
        "inspection_report",
        {
            "inspection_type": "physical",
            "inspection_date": "2026-12-15",
            "findings": "Logbogen for klapning mangler for oktober.",
            "violations_found": True,
        },
    )
    assert case["phase"]["id"] == "partshoering"
    assert step(case, "party_hearing")["status"] == "active"

    case = engine.run_command(CASEWORKER, case["id"], None, "da", "open_hearing", open_party_hearing)
    # 14 calendar days from 4 December end on Friday 18 December.
    assert step(case, "party_hearing")["due_at"] == "2026-12-18T22:59:59+00:00"
    assert step(case, "party_hearing")["status"] == "waiting"
    hearing_letter = engine.list_letters(CASEWORKER, case["id"])[-1]
    assert "Havnen i Fjordby A/S\nKajgade 1" in hearing_letter["text"]
    assert "18. december 2026" in hearing_letter["text"]
    assert "/hearing-replies/REDACTED" in hearing_letter["text"], "the filed letter keeps no reply token"

    engine.dispatch_outbox()
    sent = post.delivered[f"letter:{case['journal_number']}:{hearing_letter['number']}"]
    token = re.findall(r"/hearing-replies/([A-Za-z0-9_-]+)", sent.main_document_text)[0]
    submit_reply(engine.database, engine.services, engine.catalog, token, "Logbogen er nu udfyldt.", None)
    case = engine.get_case(CASEWORKER, case["id"], "da")
    assert step(case, "party_hearing")["outcome"] == "answered"
    assert step(case, "hearing_reply_1")["label"] == "Høringssvar"
    assert case["phase"]["id"] == "enforcement_draft"

    case = complete(
        engine,
        case,
        "enforcement_proposal",
        {
            "hearing_reply_summary": "Logbogen er nu udfyldt.",
            "enforcement_type": "order",
            "enforcement_text": "Påbud om at føre logbog.",
            "compliance_deadline": "2027-01-15",
            "statement_of_reasons": "Logbogen er et vilkår i tilladelsen.",
        },
    )
    with pytest.raises(Forbidden):
        engine.approve(CASEWORKER, case["id"], "enforcement_approval", "approve", None, None, "da")
    case = engine.approve(APPROVER, case["id"], "enforcement_approval", "approve", None, None, "da")

    assert case["phase"]["id"] == "enforcement"
    decision = engine.list_letters(CASEWORKER, case["id"])[-1]
    assert "Påbud om at føre logbog." in decision["text"]
    assert "15. januar 2027" in decision["text"]
    assert "Klagevejledning" in decision["text"]
    # The follow-up waits for the compliance deadline, 15 January 2027, to end.
    assert step(case, "compliance_wait")["status"] == "waiting"
    assert step(case, "compliance_wait")["due_at"] == "2027-01-15T22:59:59+00:00"
    worker = Worker(engine.database, engine.services, engine.catalog, name="worker-1")
    worker.run_round()
    assert engine.get_case(CASEWORKER, case["id"], "da")["phase"]["id"] == "enforcement"
    clock.advance(days=43)
    worker.run_round()
    case = engine.get_case(CASEWORKER, case["id"], "da")
    assert step(case, "compliance_wait")["outcome"] == "elapsed"
    assert case["phase"]["id"] == "compliance_check"
    case = complete(engine, case, "follow_up", {"compliance_confirmed": True})
    case = complete(engine, case, "close_inspection", {})
    assert case["status"] == "closed"


def test_inspection_without_violations_skips_hearing(engine: Sagsflow) -> None:
    case = inspection(engine)
    case = complete(engine, case, "select_subject", {"selection_basis": "random", "inspection_announced": False})
    assert step(case, "notice_letter")["status"] == "skipped"
    case = complete(
        engine,
        case,
        "inspection_report",
        {
            "inspection_type": "digital",
            "inspection_date": "2026-12-04",
            "findings": "Alt i orden.",
            "violations_found": False,
        },
    )

    assert case["phase"]["id"] == "closing"
    assert not any(row["phase"] == "partshoering" for row in case["checklist"])


def test_simple_case(engine: Sagsflow) -> None:
    data = {
        "applicant_name": "Ida Jensen",
        "applicant_email": "ida@example.dk",
        "subject": "Spørgsmål om affaldssortering",
        "request_text": "Hvordan sorterer jeg maling?",
    }
    case = engine.submit(CASEWORKER, "test-simple", data, "da")
    case = complete(
        engine, case, "handle", {"handling_note": "Besvaret.", "reply_text": "Maling afleveres på genbrugspladsen."}
    )

    assert case["status"] == "closed"
    letters = engine.list_letters(CASEWORKER, case["id"])
    assert "genbrugspladsen" in letters[-1]["text"]
    # No address was given: the name stands alone, with no empty address lines after it.
    assert "Ida Jensen\n\nOdense C, 4. december 2026\n" in letters[0]["text"]


def test_inspection_letters_go_to_inspected_party(engine: Sagsflow, post: MemoryDigitalPost) -> None:
    case = inspection(engine)
    complete(
        engine,
        case,
        "select_subject",
        {"selection_basis": "risk", "inspection_announced": True, "planned_date": "2026-12-15"},
    )

    engine.dispatch_outbox()

    notice = next(iter(post.delivered.values()))
    assert (notice.recipient.id_type, notice.recipient.id) == ("CVR", "90131443")
    assert notice.recipient.name == "Havnen i Fjordby A/S"


def test_co_applicant_names_are_escaped_in_letters(engine: Sagsflow) -> None:
    parties = [
        {"name": "[Klik](http://evil.example)", "cvr": "91312220", "share": 50},
        {"name": "*Fed* ejer", "cvr": "93147030", "share": 50},
    ]
    case = engine.submit(APPLICANT, "test-grant", grant_application(co_applicants=parties), "da")
    case = complete(engine, case, "completeness_check", {"application_complete": True})
    case = complete(engine, case, "eligibility", {"eligible": False, "eligibility_note": "Uden for området."})
    case = complete(
        engine,
        case,
        "grant_draft",
        {"grant_outcome": "refusal", "statement_of_reasons": "Arealet ligger uden for området."},
    )
    engine.approve(APPROVER, case["id"], "decision_approval", "approve", None, None, "da")

    decision = engine.list_letters(CASEWORKER, case["id"])[-1]

    assert "<a " not in decision["html"]
    assert "[Klik](http://evil.example)" in decision["text"]
    assert "*Fed* ejer" in decision["text"]
