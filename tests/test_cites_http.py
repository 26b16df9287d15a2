"""The whole CITES import permit lifecycle over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from engine.adapters.digital_post import MemoryDigitalPost
from tests.helpers import Tokens, example

auth = Tokens.header


def complete(client: TestClient, token: str, case: dict[str, Any], step: str, data: dict[str, Any]) -> dict[str, Any]:
    response = client.post(
        f"/cases/{case['id']}/steps/{step}/complete",
        json={"data": data, "version": case["version"]},
        headers=auth(token),
    )
    assert response.status_code == 200, response.json()
    body: dict[str, Any] = response.json()
    return body


def approve(client: TestClient, token: str, case: dict[str, Any], decision: str, comment: str | None = None) -> Any:
    return client.post(
        f"/cases/{case['id']}/steps/decision_approval/approve",
        json={"decision": decision, "comment": comment, "version": case["version"]},
        headers=auth(token),
    )


def step(case: dict[str, Any], step_id: str) -> dict[str, Any]:
    """The newest instance of a step in the case's checklist."""
    instances: list[dict[str, Any]] = [entry for entry in case["checklist"] if entry["step"] == step_id]
    return instances[-1]


def test_cites_case_from_application_to_sent_decision(
    client: TestClient, tokens: Tokens, post: MemoryDigitalPost
) -> None:
    # Submission by the applicant: journal number, filed application, receipt letter sent.
    response = client.post("/cases", json=example("01"), headers=auth(tokens.applicant))
    assert response.status_code == 201, response.json()
    case = response.json()
    assert re.fullmatch(r"2026-\d{6}", case["journal_number"])
    assert response.headers["Location"] == f"/cases/{case['id']}"
    assert response.headers["ETag"] == f'"{case["version"]}"'
    assert case["phase"]["id"] == "screening"
    assert "checklist" not in case, "the applicant does not see the internal checklist"
    case = client.get(f"/cases/{case['id']}", headers=auth(tokens.caseworker)).json()
    assert case["active_steps"] == ["completeness_check"]
    assert case["title"] == "Python regius, 60 stk – Kragelund Terrarieimport ApS"
    assert [document["kind"] for document in case["documents"]] == ["application", "letter"]
    assert case["processing_deadline"] == "2027-01-29T22:59:59+00:00"  # 8 weeks from Friday 4 December 2026

    letters = client.get(f"/cases/{case['id']}/letters", headers=auth(tokens.applicant)).json()
    assert letters[0]["title"] == "Kvittering for modtagelse af ansøgning"
    assert letters[0]["status"] == "sent"
    assert "Python regius" in letters[0]["text"]
    assert case["journal_number"] in letters[0]["text"]
    assert len(post.delivered) == 1

    # Screening finds the application incomplete: a request for information goes out.
    refused = client.post(
        f"/cases/{case['id']}/steps/completeness_check/complete",
        json={"data": {"application_complete": False}},
        headers=auth(tokens.caseworker),
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["errors"][0]["field"] == "data.missing_information"

    case = complete(
        client,
        tokens.caseworker,
        case,
        "completeness_check",
        {"application_complete": False, "missing_information": "- Kopi af eksporttilladelsen fra Togo"},
    )
    assert case["phase"]["id"] == "awaiting_information"
    assert step(case, "information_request_letter")["outcome"] == "sent"
    # 21 calendar days from 4 December end on Christmas Day; the next working day is Monday 28 December.
    assert step(case, "information_received")["due_at"] == "2026-12-28T22:59:59+00:00"

    case = complete(
        client,
        tokens.caseworker,
        case,
        "information_received",
        {"information_received_note": "Eksporttilladelse modtaget pr. e-mail."},
    )
    assert case["phase"]["id"] == "screening"
    assert step(case, "completeness_check")["round"] == 2

    # Fact-finding: register lookups run by themselves; Annex B needs no scientific opinion.
    case = complete(client, tokens.caseworker, case, "completeness_check", {"application_complete": True})
    assert case["phase"]["id"] == "fact_finding"
    assert step(case, "applicant_lookup")["outcome"] == "found"
    assert step(case, "species_lookup")["outcome"] == "found"
    assert step(case, "scientific_opinion")["status"] == "skipped"
    assert case["data"]["cites_appendix"] == "II"
    assert case["data"]["eu_annex"] == "B"
    assert case["data"]["applicant_register_name"] == "Kragelund Terrarieimport ApS"
    assert sorted(case["active_steps"]) == ["export_permit_check", "fact_assessment"]

    case = complete(client, tokens.caseworker, case, "export_permit_check", {"export_permit_verified": True})
    case = complete(
        client,
        tokens.caseworker,
        case,
        "fact_assessment",
        {"assessment_note": "Ranchede dyr fra Togo; kvoten er ikke overskredet.", "consultation_required": True},
    )
    assert case["phase"]["id"] == "hoering"
    # The consultation goes to one party, who replies through the link in the letter.
    museum = {"name": "Statens Naturhistoriske Museum", "id_type": "CVR", "id": "29979812"}
    response = client.post(
        f"/cases/{case['id']}/steps/consultation/hearing",
        json={"parties": [museum], "merged": {"question": "Har museet bemærkninger?"}, "version": case["version"]},
        headers=auth(tokens.caseworker),
    )
    assert response.status_code == 200, response.json()
    case = response.json()
    assert step(case, "consultation")["status"] == "waiting"
    # 3 weeks from 4 December is Christmas Day; 26 December is a holiday and 27 December a Sunday.
    assert step(case, "consultation")["due_at"] == "2026-12-28T22:59:59+00:00"
    hearing_letter = client.get(f"/cases/{case['id']}/letters", headers=auth(tokens.caseworker)).json()[-1]
    assert "/hearing-replies/REDACTED" in hearing_letter["text"], "the filed letter keeps no reply token"
    sent = post.delivered[f"letter:{case['journal_number']}:{hearing_letter['number']}"]
    assert sent.recipient.id == "29979812"
    token = re.findall(r"/hearing-replies/([A-Za-z0-9_-]+)", sent.main_document_text)[0]
    shown = client.get(f"/hearing-replies/{token}")
    assert shown.status_code == 200, shown.json()
    assert shown.json()["journal_number"] == case["journal_number"]
    reply = client.post(f"/hearing-replies/{token}", json={"text": "Ingen bemærkninger."})
    assert reply.status_code == 201, reply.json()
    again = client.post(f"/hearing-replies/{token}", json={"text": "Alligevel en bemærkning."})
    assert again.status_code == 409

    case = client.get(f"/cases/{case['id']}", headers=auth(tokens.caseworker)).json()
    assert step(case, "consultation")["outcome"] == "answered"
    assert step(case, "hearing_reply_1")["label"] == "Høringssvar"
    assert case["phase"]["id"] == "draft"

    # The draft is written by a user who is also an approver: four eyes stop them.
    draft = {
        "decision_outcome": "granted",
        "decision_text": "Miljøstyrelsen giver tilladelse til indførsel af 60 levende Python regius fra Togo.",
        "statement_of_reasons": "Arten er opført på bilag B, og betingelserne i artikel 4, stk. 2, er opfyldt.",
    }
    case = complete(client, tokens.both, case, "draft_decision", draft)
    assert case["phase"]["id"] == "approval"
    own = approve(client, tokens.both, case, "approve")
    assert own.status_code == 403
    assert own.json()["error"]["code"] == "four_eyes"
    assert "fire-øjne-princippet" in own.json()["error"]["message"]

    # A rejection needs a comment and sends the draft back.
    bare = approve(client, tokens.approver, case, "reject")
    assert bare.status_code == 422
    assert bare.json()["error"]["errors"][0]["field"] == "comment"
    rejected = approve(client, tokens.approver, case, "reject", "Angiv hjemmel for vilkårene.")
    assert rejected.status_code == 200
    case = rejected.json()
    assert case["phase"]["id"] == "draft"
    assert step(case, "draft_decision")["round"] == 2

    case = complete(client, tokens.both, case, "draft_decision", {"conditions": "Dyrene skal mærkes med mikrochip."})
    approved = approve(client, tokens.approver, case, "approve")
    assert approved.status_code == 200, approved.json()
    case = approved.json()
    assert case["phase"]["id"] == "closing"
    assert step(case, "decision_approval")["approvals"][0]["by"] == "bo"

    # The decision letter: reasons, the complaint notice and the real expiry date of the appeal period.
    letters = client.get(f"/cases/{case['id']}/letters", headers=auth(tokens.caseworker)).json()
    decision = letters[-1]
    assert decision["title"] == "Afgørelse"
    assert decision["status"] == "sent"
    assert "\nBegrundelse\n\n" in decision["text"]
    assert "\nKlagevejledning\n\n" in decision["text"]
    # Four weeks from 4 December 2026 end on New Year's Day, a holiday: moved to Monday 4 January.
    assert "Fristen udløber den 4. januar 2027 kl. 23.59." in decision["text"]
    assert "Dyrene skal mærkes med mikrochip." in decision["text"]
    assert "691,00 kr." in decision["text"]
    assert "<h2>Klagevejledning</h2>" in decision["html"]
    assert len(post.delivered) == 4, "receipt, information request, consultation and decision"

    case = complete(client, tokens.caseworker, case, "closing_check", {})
    assert case["phase"]["id"] == "closed"
    assert case["status"] == "closed"
    assert case["closed_at"] is not None


def test_applicant_sees_own_case_only(client: TestClient, tokens: Tokens) -> None:
    case = client.post("/cases", json=example("01"), headers=auth(tokens.applicant)).json()

    own = client.get(f"/cases/{case['id']}", headers=auth(tokens.applicant))
    foreign = client.get(f"/cases/{case['id']}", headers=auth(tokens.other_applicant))
    listed = client.get("/cases", headers=auth(tokens.other_applicant)).json()

    assert own.status_code == 200
    assert foreign.status_code == 404
    assert listed["total"] == 0


def test_annex_a_species_needs_scientific_opinion(client: TestClient, tokens: Tokens) -> None:
    case = client.post("/cases", json=example("02"), headers=auth(tokens.applicant)).json()
    case = complete(client, tokens.caseworker, case, "completeness_check", {"application_complete": True})

    assert case["data"]["eu_annex"] == "A"
    assert step(case, "scientific_opinion")["status"] == "active"


def test_case_found_by_journal_number(client: TestClient, tokens: Tokens) -> None:
    case = client.post("/cases", json=example("01"), headers=auth(tokens.applicant)).json()

    response = client.get(f"/cases/{case['journal_number']}", headers=auth(tokens.caseworker))

    assert response.status_code == 200
    assert response.json()["id"] == case["id"]


def test_english_letters_for_english_case(client: TestClient, tokens: Tokens) -> None:
    application = {**example("01"), "language": "en"}
    case = client.post("/cases", json=application, headers=auth(tokens.applicant)).json()

    letters = client.get(f"/cases/{case['id']}/letters", headers=auth(tokens.applicant)).json()

    assert letters[0]["title"] == "Acknowledgement of receipt"
    assert "Acknowledgement of your application for a CITES import permit" in letters[0]["text"]
    assert "4 December 2026" in letters[0]["text"]


def test_export_from_eu_country_is_refused(client: TestClient, tokens: Tokens) -> None:
    application = example("01")
    application["data"]["country_of_export"] = "DK"

    response = client.post("/cases", json=application, headers=auth(tokens.applicant))

    assert response.status_code == 422
    assert response.json()["error"]["errors"][0]["code"] == "check_failed"
    assert "Eksportlandet ligger i EU" in response.json()["error"]["errors"][0]["message"]


def test_annex_a_permit_needs_positive_opinion(client: TestClient, tokens: Tokens) -> None:
    case = client.post("/cases", json=example("02"), headers=auth(tokens.applicant)).json()
    case = complete(client, tokens.caseworker, case, "completeness_check", {"application_complete": True})
    case = complete(client, tokens.caseworker, case, "export_permit_check", {"export_permit_verified": True})
    case = complete(client, tokens.caseworker, case, "scientific_opinion", {"scientific_authority_opinion": "negative"})
    case = complete(
        client,
        tokens.caseworker,
        case,
        "fact_assessment",
        {"assessment_note": "Negativ udtalelse.", "consultation_required": False},
    )
    draft = {
        "decision_outcome": "granted",
        "decision_text": "Tilladelse gives.",
        "statement_of_reasons": "Betingelserne for indførsel anses for opfyldt.",
    }

    granted = client.post(
        f"/cases/{case['id']}/steps/draft_decision/complete", json={"data": draft}, headers=auth(tokens.caseworker)
    )
    refused = client.post(
        f"/cases/{case['id']}/steps/draft_decision/complete",
        json={"data": {**draft, "decision_outcome": "refused", "decision_text": "Ansøgningen afslås."}},
        headers=auth(tokens.caseworker),
    )

    assert granted.status_code == 422
    assert "bilag A" in granted.json()["error"]["errors"][0]["message"]
    assert refused.status_code == 200
    assert refused.json()["phase"]["id"] == "partshoering", "a refusal needs a party hearing first"


def test_english_decision_cites_law_in_english(client: TestClient, tokens: Tokens) -> None:
    case = client.post("/cases", json={**example("01"), "language": "en"}, headers=auth(tokens.applicant)).json()
    case = complete(client, tokens.caseworker, case, "completeness_check", {"application_complete": True})
    case = complete(client, tokens.caseworker, case, "export_permit_check", {"export_permit_verified": True})
    case = complete(
        client, tokens.caseworker, case, "fact_assessment", {"assessment_note": "OK.", "consultation_required": False}
    )
    case = complete(
        client,
        tokens.caseworker,
        case,
        "draft_decision",
        {"decision_outcome": "granted", "decision_text": "Granted.", "statement_of_reasons": "The conditions are met."},
    )
    approve(client, tokens.approver, case, "approve")

    letters = client.get(f"/cases/{case['id']}/letters", headers=auth(tokens.applicant)).json()

    assert "Executive Order No. 1285 of 14 June 2021" in letters[-1]["text"]
    assert ": Article 4" in letters[-1]["text"]


def test_second_identical_application_is_refused(client: TestClient, tokens: Tokens) -> None:
    first = client.post("/cases", json=example("01"), headers=auth(tokens.applicant))
    second = client.post("/cases", json=example("01"), headers=auth(tokens.applicant))
    other_species = {**example("01"), "data": {**example("01")["data"], "species": "Chamaeleo calyptratus"}}
    third = client.post("/cases", json=other_species, headers=auth(tokens.applicant))

    assert first.status_code == 201
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "duplicate_application"
    assert first.json()["journal_number"] in second.json()["error"]["message"]
    assert third.status_code == 201


def test_intake_check_records_fee_and_missing_export_permit(client: TestClient, tokens: Tokens) -> None:
    complete_application = client.post("/cases", json=example("01"), headers=auth(tokens.applicant)).json()
    without_permit = {**example("02"), "data": {**example("02")["data"]}}
    del without_permit["data"]["export_permit_number"]
    incomplete_application = client.post("/cases", json=without_permit, headers=auth(tokens.applicant)).json()

    first = client.get(f"/cases/{complete_application['id']}", headers=auth(tokens.caseworker)).json()
    second = client.get(f"/cases/{incomplete_application['id']}", headers=auth(tokens.caseworker)).json()

    assert step(first, "intake_check")["outcome"] == "complete"
    assert step(second, "intake_check")["outcome"] == "incomplete"
    assert step(first, "intake_check")["missing"] == []
    assert step(second, "intake_check")["missing"] == ["export_permit_number"]
    assert first["data"]["fee_due"] == 69100, "money is stored in øre"
    assert second["phase"]["id"] == "screening", "an incomplete application still reaches the caseworker"


def test_party_hearing_cannot_be_completed_by_hand(client: TestClient, tokens: Tokens) -> None:
    case = client.post("/cases", json=example("01"), headers=auth(tokens.applicant)).json()
    case = complete(client, tokens.caseworker, case, "completeness_check", {"application_complete": True})
    case = complete(client, tokens.caseworker, case, "export_permit_check", {"export_permit_verified": True})
    case = complete(
        client, tokens.caseworker, case, "fact_assessment", {"assessment_note": "OK.", "consultation_required": False}
    )
    refusal = {
        "decision_outcome": "refused",
        "decision_text": "Ansøgningen afslås.",
        "statement_of_reasons": "Dokumentationen for dyrenes oprindelse er utilstrækkelig.",
    }
    case = complete(client, tokens.caseworker, case, "draft_decision", refusal)
    assert case["phase"]["id"] == "partshoering"

    by_hand = client.post(
        f"/cases/{case['id']}/steps/party_hearing/complete", json={"data": {}}, headers=auth(tokens.caseworker)
    )
    after = client.get(f"/cases/{case['id']}", headers=auth(tokens.caseworker)).json()

    assert by_hand.status_code == 400
    assert by_hand.json()["error"]["code"] == "wrong_step_kind"
    assert "/hearing" in by_hand.json()["error"]["message"]
    assert after["version"] == case["version"]
    assert step(after, "party_hearing")["status"] == "active"


def test_drafter_cannot_approve_after_empty_resubmission(client: TestClient, tokens: Tokens) -> None:
    case = client.post("/cases", json=example("01"), headers=auth(tokens.applicant)).json()
    case = complete(client, tokens.caseworker, case, "completeness_check", {"application_complete": True})
    case = complete(client, tokens.caseworker, case, "export_permit_check", {"export_permit_verified": True})
    case = complete(
        client, tokens.caseworker, case, "fact_assessment", {"assessment_note": "OK.", "consultation_required": False}
    )
    draft = {
        "decision_outcome": "granted",
        "decision_text": "Tilladelse gives, skrevet af Trine.",
        "statement_of_reasons": "Betingelserne i artikel 4 er opfyldt.",
    }
    case = complete(client, tokens.both, case, "draft_decision", draft)
    rejected = approve(client, tokens.approver, case, "reject", "Ret formuleringen.")
    assert rejected.status_code == 200, rejected.json()
    # A colleague sends the unchanged draft on: the text is still the one the approver wrote.
    case = complete(client, tokens.caseworker, rejected.json(), "draft_decision", {})

    own = approve(client, tokens.both, case, "approve")

    assert own.status_code == 403
    assert own.json()["error"]["code"] == "four_eyes"
    assert "tidligere runde" in own.json()["error"]["message"]
    handover = client.post(
        f"/cases/{case['id']}/steps/decision_approval/assignee",
        json={"assignee": "trine"},
        headers=auth(tokens.caseworker),
    )
    assert handover.status_code == 422
    assert approve(client, tokens.approver, case, "approve").status_code == 200
