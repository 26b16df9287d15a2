"""Client mistakes over HTTP: each gets a JSON error naming the field and the fix, never a 500."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from engine.auth import Actor
from engine.errors import BadRequest
from engine.service import Sagsflow
from tests.helpers import Tokens, example

auth = Tokens.header


def error_of(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    return body["error"]  # type: ignore[no-any-return]


@pytest.fixture
def case(client: TestClient, tokens: Tokens) -> dict[str, Any]:
    response = client.post("/cases", json=example("01"), headers=auth(tokens.applicant))
    assert response.status_code == 201
    body: dict[str, Any] = response.json()
    return body


# 401 and 403 ---------------------------------------------------------------------------------


def test_missing_token_is_401(client: TestClient) -> None:
    response = client.post("/cases", json=example("01"))

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert error_of(response)["code"] == "unauthorized"
    assert error_of(response)["field"] == "Authorization"


def test_unknown_token_is_401(client: TestClient) -> None:
    response = client.get("/processes", headers=auth("sf_not-a-real-token"))

    assert response.status_code == 401


def test_revoked_token_is_401(client: TestClient, service: Sagsflow) -> None:
    token = service.create_token("ida", ["caseworker"])
    service.revoke_tokens("ida")

    response = client.get("/processes", headers=auth(token))

    assert response.status_code == 401


def test_reads_need_a_token(client: TestClient, case: dict[str, Any]) -> None:
    assert client.get("/processes").status_code == 401
    assert client.get(f"/cases/{case['id']}").status_code == 401
    assert client.get(f"/cases/{case['id']}/letters").status_code == 401


def test_health_needs_no_token(client: TestClient) -> None:
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_step_needs_its_role(client: TestClient, tokens: Tokens, case: dict[str, Any]) -> None:
    response = client.post(
        f"/cases/{case['id']}/steps/completeness_check/complete",
        json={"data": {"application_complete": True}},
        headers=auth(tokens.applicant),
    )

    assert response.status_code == 403
    assert error_of(response)["code"] == "missing_role"
    assert "caseworker" in error_of(response)["message"]


def test_approver_cannot_do_caseworker_task(client: TestClient, tokens: Tokens, case: dict[str, Any]) -> None:
    response = client.post(
        f"/cases/{case['id']}/steps/completeness_check/complete",
        json={"data": {"application_complete": True}},
        headers=auth(tokens.approver),
    )

    assert response.status_code == 403


def test_submission_needs_intake_role(client: TestClient, tokens: Tokens) -> None:
    response = client.post("/cases", json=example("01"), headers=auth(tokens.approver))

    assert response.status_code == 403
    assert error_of(response)["code"] == "missing_role"


# 404 -----------------------------------------------------------------------------------------


def test_unknown_case_is_404(client: TestClient, tokens: Tokens) -> None:
    by_id = client.get("/cases/999999", headers=auth(tokens.caseworker))
    by_number = client.get("/cases/2026-999999", headers=auth(tokens.caseworker))

    assert by_id.status_code == 404
    assert by_number.status_code == 404
    assert error_of(by_id)["code"] == "unknown_case"
    assert "2026-000001" in error_of(by_id)["hint"]


def test_unknown_process_is_404_with_known_ones(client: TestClient, tokens: Tokens) -> None:
    response = client.post("/cases", json={**example("01"), "process": "cites-eksport"}, headers=auth(tokens.applicant))

    assert response.status_code == 404
    assert error_of(response)["code"] == "unknown_process"
    assert error_of(response)["field"] == "process"
    assert "cites-import" in error_of(response)["hint"]


def test_unknown_step_is_404(client: TestClient, tokens: Tokens, case: dict[str, Any]) -> None:
    response = client.post(
        f"/cases/{case['id']}/steps/no_such_step/complete", json={"data": {}}, headers=auth(tokens.caseworker)
    )

    assert response.status_code == 404
    assert error_of(response)["code"] == "unknown_step"
    assert "completeness_check" in error_of(response)["hint"]


def test_unknown_document_is_404(client: TestClient, tokens: Tokens, case: dict[str, Any]) -> None:
    response = client.get(f"/cases/{case['id']}/documents/99", headers=auth(tokens.caseworker))

    assert response.status_code == 404
    assert error_of(response)["code"] == "unknown_document"


def test_document_is_readable(client: TestClient, tokens: Tokens, case: dict[str, Any]) -> None:
    response = client.get(f"/cases/{case['id']}/documents/1", headers=auth(tokens.caseworker))

    assert response.status_code == 200
    assert response.json()["kind"] == "application"
    assert "Python regius" in response.json()["text"]


def test_unknown_route_is_json_404(client: TestClient) -> None:
    response = client.get("/no/such/route")

    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


# 409 -----------------------------------------------------------------------------------------


def test_stale_version_is_409_and_changes_nothing(client: TestClient, tokens: Tokens, case: dict[str, Any]) -> None:
    response = client.post(
        f"/cases/{case['id']}/steps/completeness_check/complete",
        json={"data": {"application_complete": True}, "version": case["version"] + 3},
        headers=auth(tokens.caseworker),
    )
    after = client.get(f"/cases/{case['id']}", headers=auth(tokens.caseworker)).json()

    assert response.status_code == 409
    assert error_of(response)["code"] == "stale_version"
    assert after["version"] == case["version"]
    assert after["phase"]["id"] == "screening"
    assert "application_complete" not in after["data"]


def test_stale_if_match_is_409(client: TestClient, tokens: Tokens, case: dict[str, Any]) -> None:
    response = client.post(
        f"/cases/{case['id']}/steps/completeness_check/complete",
        json={"data": {"application_complete": True}},
        headers={**auth(tokens.caseworker), "If-Match": f'"{case["version"] + 5}"'},
    )

    assert response.status_code == 409


def test_current_if_match_is_accepted(client: TestClient, tokens: Tokens, case: dict[str, Any]) -> None:
    response = client.post(
        f"/cases/{case['id']}/steps/completeness_check/complete",
        json={"data": {"application_complete": True}},
        headers={**auth(tokens.caseworker), "If-Match": f'"{case["version"]}"'},
    )

    assert response.status_code == 200
    assert response.headers["ETag"] == f'"{case["version"] + 1}"'


def test_step_of_later_phase_is_409(client: TestClient, tokens: Tokens, case: dict[str, Any]) -> None:
    response = client.post(
        f"/cases/{case['id']}/steps/draft_decision/complete", json={"data": {}}, headers=auth(tokens.caseworker)
    )

    assert response.status_code == 409
    assert error_of(response)["code"] == "step_not_active"
    assert "completeness_check" in error_of(response)["hint"]


def test_completed_step_is_409(client: TestClient, tokens: Tokens, case: dict[str, Any]) -> None:
    url = f"/cases/{case['id']}/steps/completeness_check/complete"
    body = {"data": {"application_complete": False, "missing_information": "Eksporttilladelse"}}
    first = client.post(url, json=body, headers=auth(tokens.caseworker))
    second = client.post(url, json=body, headers=auth(tokens.caseworker))

    assert first.status_code == 200
    assert second.status_code == 409


# 422 -----------------------------------------------------------------------------------------


def submit_with(client: TestClient, tokens: Tokens, **changes: Any) -> Any:
    application = example("01")
    data = {**application["data"], **changes}
    for name in [name for name, value in changes.items() if value is None]:
        del data[name]
    return client.post("/cases", json={**application, "data": data}, headers=auth(tokens.applicant))


def field_errors(response: Any) -> dict[str, dict[str, Any]]:
    return {entry["field"]: entry for entry in error_of(response)["errors"]}


def test_unknown_field_lists_allowed(client: TestClient, tokens: Tokens) -> None:
    response = submit_with(client, tokens, colour="grøn")

    assert response.status_code == 422
    entry = field_errors(response)["data.colour"]
    assert entry["code"] == "unknown_field"
    assert "species" in entry["hint"]


def test_missing_required_field(client: TestClient, tokens: Tokens) -> None:
    response = submit_with(client, tokens, species=None)

    assert response.status_code == 422
    assert field_errors(response)["data.species"]["code"] == "required"
    assert "Art (videnskabeligt navn)" in field_errors(response)["data.species"]["message"]


def test_cvr_with_wrong_check_digit(client: TestClient, tokens: Tokens) -> None:
    response = submit_with(client, tokens, applicant_cvr="90131444")

    assert response.status_code == 422
    assert field_errors(response)["data.applicant_cvr"]["code"] == "invalid_checksum"


def test_unknown_species_suggests_names(client: TestClient, tokens: Tokens) -> None:
    response = submit_with(client, tokens, species="Python regus")

    assert response.status_code == 422
    entry = field_errors(response)["data.species"]
    assert entry["code"] == "unknown_species"
    assert "Python regius" in entry["hint"]


def test_every_bad_field_reported_at_once(client: TestClient, tokens: Tokens) -> None:
    response = submit_with(client, tokens, quantity="ti", country_of_origin="XX", purpose="Q2", applicant_email="nej")

    assert response.status_code == 422
    assert set(field_errors(response)) == {
        "data.quantity",
        "data.country_of_origin",
        "data.purpose",
        "data.applicant_email",
    }


def test_quantity_below_minimum(client: TestClient, tokens: Tokens) -> None:
    response = submit_with(client, tokens, quantity=0)

    assert response.status_code == 422
    assert "mindst 1" in field_errors(response)["data.quantity"]["message"]


def test_caseworker_field_not_accepted_at_intake(client: TestClient, tokens: Tokens) -> None:
    response = submit_with(client, tokens, decision_outcome="granted")

    assert response.status_code == 422
    assert field_errors(response)["data.decision_outcome"]["code"] == "unknown_field"


def test_unknown_top_level_key(client: TestClient, tokens: Tokens) -> None:
    response = client.post("/cases", json={**example("01"), "priority": "high"}, headers=auth(tokens.applicant))

    assert response.status_code == 422
    assert error_of(response)["field"] == "priority"


def test_data_must_be_object(client: TestClient, tokens: Tokens) -> None:
    response = client.post(
        "/cases", json={"process": "cites-import", "data": ["a", "b"]}, headers=auth(tokens.applicant)
    )

    assert response.status_code == 422
    assert error_of(response)["field"] == "data"


def test_form_field_of_other_step_is_rejected(client: TestClient, tokens: Tokens, case: dict[str, Any]) -> None:
    response = client.post(
        f"/cases/{case['id']}/steps/completeness_check/complete",
        json={"data": {"application_complete": True, "decision_outcome": "granted"}},
        headers=auth(tokens.caseworker),
    )

    assert response.status_code == 422
    assert "application_complete" in field_errors(response)["data.decision_outcome"]["hint"]


# 400 and 413 ---------------------------------------------------------------------------------


def test_malformed_json_is_400(client: TestClient, tokens: Tokens) -> None:
    response = client.post(
        "/cases",
        content=b'{"process": "cites-import", "data": {',
        headers={**auth(tokens.applicant), "Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_json"


def test_bad_if_match_is_400(client: TestClient, tokens: Tokens, case: dict[str, Any]) -> None:
    response = client.post(
        f"/cases/{case['id']}/steps/completeness_check/complete",
        json={"data": {"application_complete": True}},
        headers={**auth(tokens.caseworker), "If-Match": "*"},
    )

    assert response.status_code == 400
    assert error_of(response)["field"] == "If-Match"


def test_approve_on_task_is_400(client: TestClient, tokens: Tokens, case: dict[str, Any]) -> None:
    response = client.post(
        f"/cases/{case['id']}/steps/completeness_check/approve",
        json={"decision": "approve"},
        headers=auth(tokens.caseworker),
    )

    assert response.status_code == 400
    assert error_of(response)["code"] == "wrong_step_kind"


def test_oversized_body_is_413(client: TestClient, tokens: Tokens) -> None:
    application = example("01")
    application["data"]["specimen_description"] = "x" * 1_200_000

    response = client.post("/cases", json=application, headers=auth(tokens.applicant))

    assert response.status_code == 413
    assert error_of(response)["code"] == "too_large"


def test_long_text_is_422(client: TestClient, tokens: Tokens) -> None:
    response = submit_with(client, tokens, specimen_description="x" * 5000)

    assert response.status_code == 422
    assert "2000" in field_errors(response)["data.specimen_description"]["message"]


# Language ------------------------------------------------------------------------------------


def test_messages_follow_accept_language(client: TestClient, tokens: Tokens) -> None:
    application = example("01")
    application["data"]["applicant_cvr"] = "90131444"

    danish = client.post("/cases", json=application, headers=auth(tokens.applicant))
    english = client.post("/cases", json=application, headers=auth(tokens.applicant, "en-GB,en;q=0.9"))

    assert "kontrolsum" in field_errors(danish)["data.applicant_cvr"]["message"]
    assert "check digit" in field_errors(english)["data.applicant_cvr"]["message"]


def test_labels_follow_accept_language(client: TestClient, tokens: Tokens) -> None:
    response = client.get("/processes/cites-import", headers=auth(tokens.caseworker, "en"))

    assert response.status_code == 200
    assert response.json()["title"] == "CITES import permit"
    form = {entry["field"]: entry for entry in response.json()["application_form"]}
    assert form["species"]["label"] == "Species (scientific name)"
    assert form["species"]["required"] is True


# Never a 500 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        "text",
        {"process": None, "data": {}},
        {"process": "cites-import", "data": {"quantity": {"nested": True}}},
        {"process": "cites-import", "data": {"species": ["Python regius"]}},
        {"process": "cites-import", "data": {"applicant_cvr": 90131443}},
        {"process": "x" * 1000, "data": {}},
        {"process": "cites-import", "data": {"applicant_postcode": 8600}},
        {"process": "cites-import", "data": {"quantity": 1e308}},
        {"process": "cites-import", "data": {"quantity": True}},
    ],
)
def test_junk_bodies_never_500(client: TestClient, tokens: Tokens, body: Any) -> None:
    response = client.post("/cases", json=body, headers=auth(tokens.applicant))

    assert response.status_code in (400, 404, 422)
    assert "error" in response.json()


@pytest.mark.parametrize("reference", ["99999999999999999999", "%C2%B2", "2026-000001%00"])
def test_odd_case_references_are_404(client: TestClient, tokens: Tokens, reference: str) -> None:
    response = client.get(f"/cases/{reference}", headers=auth(tokens.caseworker))

    assert response.status_code == 404


def test_bad_value_does_not_trigger_false_requirement(client: TestClient, tokens: Tokens, case: dict[str, Any]) -> None:
    response = client.post(
        f"/cases/{case['id']}/steps/completeness_check/complete",
        json={"data": {"application_complete": "ja"}},
        headers=auth(tokens.caseworker),
    )

    assert response.status_code == 422
    assert list(field_errors(response)) == ["data.application_complete"]


def test_query_choice_error_is_danish(client: TestClient, tokens: Tokens) -> None:
    response = client.get("/cases?status=foo", headers=auth(tokens.caseworker))

    assert response.status_code == 422
    assert field_errors(response)["status"]["message"] == "Skal være en af: 'open' eller 'closed'."


def test_stale_version_message_names_versions(client: TestClient, tokens: Tokens, case: dict[str, Any]) -> None:
    response = client.post(
        f"/cases/{case['id']}/steps/completeness_check/complete",
        json={"data": {"application_complete": True}, "version": 7},
        headers=auth(tokens.caseworker),
    )

    assert "du sendte version 7, sagen er nu på version 1" in error_of(response)["message"]


def test_applicant_sees_no_internal_data(client: TestClient, tokens: Tokens, case: dict[str, Any]) -> None:
    client.post(
        f"/cases/{case['id']}/steps/completeness_check/complete",
        json={"data": {"application_complete": True}},
        headers=auth(tokens.caseworker),
    )

    seen = client.get(f"/cases/{case['id']}", headers=auth(tokens.applicant)).json()

    assert "checklist" not in seen
    assert "application_complete" not in seen["data"]
    assert "cites_appendix" not in seen["data"]
    assert seen["data"]["species"] == "Python regius"
    assert {document["kind"] for document in seen["documents"]} <= {"application", "letter"}


@pytest.mark.parametrize(
    "text",
    ["Navn\u0000", "\u202eeman", "\u200b\u200b", "ok\u0007"],
)
def test_unsafe_text_is_422(client: TestClient, tokens: Tokens, text: str) -> None:
    response = submit_with(client, tokens, applicant_name=text)

    assert response.status_code == 422
    assert "data.applicant_name" in field_errors(response)


def test_lone_surrogate_is_422(client: TestClient, tokens: Tokens) -> None:
    application = example("01")
    body = json.dumps(application).replace('"Kragelund Terrarieimport ApS"', '"\\ud800"', 1)

    response = client.post(
        "/cases", content=body.encode("ascii"), headers={**auth(tokens.applicant), "Content-Type": "application/json"}
    )

    assert response.status_code == 422
    assert "data.applicant_name" in field_errors(response)


def test_unsafe_comment_is_422(client: TestClient, tokens: Tokens, case: dict[str, Any]) -> None:
    response = client.post(
        f"/cases/{case['id']}/steps/decision_approval/approve",
        json={"decision": "reject", "comment": "nej\u0000"},
        headers=auth(tokens.approver),
    )

    assert response.status_code in (409, 422)


def test_postcode_must_exist(client: TestClient, tokens: Tokens) -> None:
    response = submit_with(client, tokens, applicant_postcode="0000")

    assert response.status_code == 422


@pytest.mark.parametrize(
    ("method", "url", "headers"),
    [
        ("get", "/cases/1/documents/99999999999999999999999", {}),
        ("get", "/cases?offset=9223372036854775808", {}),
        ("get", "/cases?process=%00", {}),
        ("post", "/cases/1/steps/completeness_check/complete", {"If-Match": '"²"'.encode("latin-1")}),
    ],
)
def test_odd_requests_are_client_errors(
    client: TestClient, tokens: Tokens, case: dict[str, Any], method: str, url: str, headers: dict[str, Any]
) -> None:
    response = getattr(client, method)(
        url, headers={**auth(tokens.caseworker), **headers}, **({"json": {"data": {}}} if method == "post" else {})
    )

    assert 400 <= response.status_code < 500


def test_version_must_be_an_integer(client: TestClient, tokens: Tokens, case: dict[str, Any]) -> None:
    response = client.post(
        f"/cases/{case['id']}/steps/completeness_check/complete",
        json={"data": {"application_complete": True}, "version": "1"},
        headers=auth(tokens.caseworker),
    )

    assert response.status_code == 422


def test_unknown_role_token_is_refused(service: Sagsflow) -> None:
    with pytest.raises(BadRequest, match="Known roles: admin, applicant, approver, caseworker"):
        service.create_token("ida", ["aprover"])


def test_applicant_sees_only_sent_letters(client: TestClient, tokens: Tokens, service: Sagsflow) -> None:
    # The API sends letters right after each command; a letter still queued stays internal.
    application = example("01")
    case = service.submit(Actor("kragelund", frozenset({"applicant"})), "cites-import", application["data"], "da")

    letters = client.get(f"/cases/{case['id']}/letters", headers=auth(tokens.applicant)).json()
    staff = client.get(f"/cases/{case['id']}/letters", headers=auth(tokens.caseworker)).json()
    document = client.get(f"/cases/{case['id']}/documents/2", headers=auth(tokens.applicant))

    assert letters == []
    assert [letter["status"] for letter in staff] == ["queued"]
    assert document.status_code == 404


def test_bound_errors_name_the_bound(client: TestClient, tokens: Tokens) -> None:
    headers = {"Authorization": f"Bearer {tokens.caseworker}"}

    too_small = client.get("/cases", params={"limit": 0}, headers=headers)
    too_large = client.get("/cases", params={"limit": 100000}, headers={**headers, "Accept-Language": "en"})

    assert too_small.status_code == 422
    assert error_of(too_small)["errors"][0]["message"] == "Skal være mindst 1."
    assert too_large.status_code == 422
    assert error_of(too_large)["errors"][0]["message"].startswith("Must be at most ")


def test_invalid_json_hint_is_in_the_request_language(client: TestClient, tokens: Tokens) -> None:
    response = client.post(
        "/cases",
        content=b"{not json",
        headers={"Authorization": f"Bearer {tokens.applicant}", "Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert error_of(response)["hint"].startswith("Ret JSON-syntaksen; parseren meldte:")


def test_json_sent_as_text_is_415(client: TestClient, tokens: Tokens) -> None:
    response = client.post(
        "/cases",
        content=json.dumps(example("01")).encode(),
        headers={"Authorization": f"Bearer {tokens.applicant}", "Content-Type": "text/plain"},
    )

    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_content_type"
    assert "text/plain" in error_of(response)["message"]
    assert "application/json" in error_of(response)["hint"]
