"""Who may see and change which case: teams, applicants, roles across teams and token scopes.

The office of tests/helpers.py has the process `wildlife-permit` of the team `vildt` and
the process `general-request`, which names no team.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from engine.auth import Actor
from engine.definitions.loader import load_definitions
from engine.errors import ConfigurationError, Forbidden, NotFound
from engine.people import Access
from engine.service import Sagsflow
from tests.helpers import ADMIN, Tokens, load_office

auth = Tokens.header
WILDLIFE = "wildlife-permit"
GENERAL = "general-request"


def submit(client: TestClient, token: str, process: str = WILDLIFE, reference: str = "R-1") -> dict[str, Any]:
    response = client.post("/cases", json={"process": process, "data": {"reference": reference}}, headers=auth(token))
    assert response.status_code == 201, response.json()
    body: dict[str, Any] = response.json()
    return body


def team_of(office: Sagsflow, case: dict[str, Any]) -> str | None:
    team: str | None = office.get_case(ADMIN, case["id"], "en")["team"]
    return team


def listed(client: TestClient, token: str) -> set[str]:
    response = client.get("/cases", headers=auth(token))
    assert response.status_code == 200, response.json()
    return {item["journal_number"] for item in response.json()["items"]}


# Teams on cases -------------------------------------------------------------------------------


def test_case_gets_process_team(office: Sagsflow, office_client: TestClient, office_tokens: dict[str, str]) -> None:
    by_applicant = submit(office_client, office_tokens["anna"])
    by_other_team = submit(office_client, office_tokens["frida"], reference="R-2")

    assert team_of(office, by_applicant) == "vildt"
    assert team_of(office, by_other_team) == "vildt"


def test_case_gets_submitters_first_team(
    office: Sagsflow, office_client: TestClient, office_tokens: dict[str, str]
) -> None:
    by_frida = submit(office_client, office_tokens["frida"], GENERAL)
    by_applicant = submit(office_client, office_tokens["anna"], GENERAL)
    by_every_team = submit(office_client, office_tokens["stella"], GENERAL)
    by_no_team = submit(office_client, office_tokens["per"], GENERAL)

    assert team_of(office, by_frida) == "skov"
    assert team_of(office, by_applicant) is None
    assert team_of(office, by_every_team) is None, "'*' is no team of its own"
    assert team_of(office, by_no_team) is None


def test_case_view_shows_team_to_staff_only(office_client: TestClient, office_tokens: dict[str, str]) -> None:
    case = submit(office_client, office_tokens["anna"])

    staff = office_client.get(f"/cases/{case['id']}", headers=auth(office_tokens["vera"])).json()
    applicant = office_client.get(f"/cases/{case['id']}", headers=auth(office_tokens["anna"])).json()

    assert staff["team"] == "vildt"
    assert staff["assignee"] is None
    assert [step["assignee"] for step in staff["checklist"]] == [None]
    assert "team" not in applicant
    assert "assignee" not in applicant
    assert "team" not in case, "the applicant's own submission is cut down too"


# Visibility -----------------------------------------------------------------------------------

CASE_REQUESTS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("get", "/cases/{case}", None),
    ("get", "/cases/{case}/letters", None),
    ("get", "/cases/{case}/documents/1", None),
    ("post", "/cases/{case}/steps/prepare/complete", {"data": {}}),
    ("post", "/cases/{case}/steps/sign_off/approve", {"decision": "approve"}),
    ("post", "/cases/{case}/assignee", {"assignee": "carl"}),
    ("post", "/cases/{case}/steps/prepare/assignee", {"assignee": "carl"}),
]


@pytest.mark.parametrize(("method", "path", "body"), CASE_REQUESTS, ids=[path for _, path, _ in CASE_REQUESTS])
def test_other_team_gets_404(
    office_client: TestClient,
    office_tokens: dict[str, str],
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    case = submit(office_client, office_tokens["anna"])
    carl = auth(office_tokens["carl"])

    response = office_client.request(method, path.format(case=case["id"]), json=body, headers=carl)
    missing = office_client.request(method, path.format(case=999999), json=body, headers=carl)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_case"
    assert missing.status_code == 404
    assert response.json()["error"]["message"].replace(str(case["id"]), "999999") == missing.json()["error"]["message"]


@pytest.mark.parametrize(("method", "path", "body"), CASE_REQUESTS, ids=[path for _, path, _ in CASE_REQUESTS])
def test_other_applicant_gets_404(
    office_client: TestClient,
    office_tokens: dict[str, str],
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    case = submit(office_client, office_tokens["anna"], GENERAL)

    response = office_client.request(
        method, path.format(case=case["id"]), json=body, headers=auth(office_tokens["otto"])
    )

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_case"


def test_case_list_shows_visible_cases(office_client: TestClient, office_tokens: dict[str, str]) -> None:
    wildlife = submit(office_client, office_tokens["anna"])["journal_number"]
    forest = submit(office_client, office_tokens["frida"], GENERAL)["journal_number"]
    untagged = submit(office_client, office_tokens["anna"], GENERAL, reference="R-2")["journal_number"]
    everything = {wildlife, forest, untagged}

    assert listed(office_client, office_tokens["vera"]) == {wildlife, untagged}
    assert listed(office_client, office_tokens["carl"]) == {untagged}
    assert listed(office_client, office_tokens["frida"]) == {forest, untagged}
    assert listed(office_client, office_tokens["per"]) == {untagged}
    assert listed(office_client, office_tokens["stella"]) == everything
    assert listed(office_client, office_tokens["adam"]) == everything
    assert listed(office_client, office_tokens["anna"]) == {wildlife, untagged}
    assert listed(office_client, office_tokens["otto"]) == set()


def test_case_list_total_counts_visible_cases_only(office_client: TestClient, office_tokens: dict[str, str]) -> None:
    submit(office_client, office_tokens["anna"])
    submit(office_client, office_tokens["anna"], GENERAL)

    response = office_client.get("/cases", headers=auth(office_tokens["carl"]))

    assert response.json()["total"] == 1


def test_team_member_works_on_team_case(office_client: TestClient, office_tokens: dict[str, str]) -> None:
    case = submit(office_client, office_tokens["anna"])

    response = office_client.post(
        f"/cases/{case['id']}/steps/prepare/complete",
        json={"data": {"note": "Checked."}, "version": case["version"]},
        headers=auth(office_tokens["vera"]),
    )

    assert response.status_code == 200, response.json()
    assert response.json()["phase"]["id"] == "approval"


def test_cross_team_roles_see_every_team(office: Sagsflow, office_client: TestClient) -> None:
    case = submit(office_client, office.create_token("anna"))
    approver_elsewhere = Actor("bent", frozenset({"approver"}), ("cites",))
    administrator = Actor("adam", frozenset({"admin"}))
    approvers_everywhere = Sagsflow(office.database, office.services, access=Access({"approver"}))

    with pytest.raises(NotFound):
        office.get_case(approver_elsewhere, case["id"], "en")
    seen = approvers_everywhere.get_case(approver_elsewhere, case["id"], "en")
    listed_cases = approvers_everywhere.list_cases(approver_elsewhere, "en")
    with pytest.raises(NotFound):
        approvers_everywhere.get_case(administrator, case["id"], "en")

    assert seen["team"] == "vildt"
    assert listed_cases["total"] == 1
    assert office.get_case(administrator, case["id"], "en")["team"] == "vildt"


def test_cross_team_roles_from_environment() -> None:
    assert Access.from_environment({}).cross_team_roles == {"admin"}
    assert Access.from_environment({"SAGSFLOW_CROSS_TEAM_ROLES": ""}).cross_team_roles == set()
    assert Access.from_environment({"SAGSFLOW_CROSS_TEAM_ROLES": "approver, admin"}).cross_team_roles == {
        "approver",
        "admin",
    }


def test_cross_team_roles_must_be_staff_roles() -> None:
    with pytest.raises(ConfigurationError, match="may only name staff roles"):
        Access.from_environment({"SAGSFLOW_CROSS_TEAM_ROLES": "admin,applicant"})


def test_duplicate_hides_case_from_others(office_client: TestClient, office_tokens: dict[str, str]) -> None:
    first = submit(office_client, office_tokens["anna"])
    body = {"process": WILDLIFE, "data": {"reference": "R-1"}}

    by_other = office_client.post("/cases", json=body, headers=auth(office_tokens["otto"]))
    by_same = office_client.post("/cases", json=body, headers=auth(office_tokens["anna"]))

    assert by_other.status_code == 409
    assert by_other.json()["error"]["code"] == "duplicate_application"
    assert first["journal_number"] not in by_other.json()["error"]["message"]
    assert by_same.status_code == 409
    assert first["journal_number"] in by_same.json()["error"]["message"]


def test_process_team_must_be_an_id(tmp_path: Path) -> None:
    loaded = load_office(tmp_path / "office")
    path = tmp_path / "office" / "processes" / "office" / "wildlife-permit.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("team: vildt", "team: Vildt og natur"), encoding="utf-8")

    reloaded = load_definitions(tmp_path / "office")

    assert not loaded.errors
    assert [problem.format("en") for problem in reloaded.errors] == [
        "processes/office/wildlife-permit.yaml:7:7: SF203 'Vildt og natur' is not a valid id. "
        "Use lower-case letters a-z, digits and _, starting with a letter."
    ]


# Scopes ---------------------------------------------------------------------------------------


def missing_scope(response: Any) -> str:
    assert response.status_code == 403, response.json()
    error = response.json()["error"]
    assert error["code"] == "missing_scope"
    assert error["field"] == "scope"
    message: str = error["message"]
    return message


def test_read_scope_allows_only_reading(
    office: Sagsflow, office_client: TestClient, office_tokens: dict[str, str]
) -> None:
    case = submit(office_client, office_tokens["anna"])
    reader = auth(office.create_token("vera", scopes=["cases:read"]), "en")

    read = office_client.get(f"/cases/{case['id']}", headers=reader)
    listing = office_client.get("/cases", headers=reader)
    document = office_client.get(f"/cases/{case['id']}/documents/1", headers=reader)
    completing = office_client.post(f"/cases/{case['id']}/steps/prepare/complete", json={"data": {}}, headers=reader)
    assigning = office_client.post(f"/cases/{case['id']}/assignee", json={"assignee": "vera"}, headers=reader)
    submitting = office_client.post("/cases", json={"process": GENERAL, "data": {"reference": "X"}}, headers=reader)

    assert read.status_code == 200
    assert listing.status_code == 200
    assert document.status_code == 200
    assert "'cases:work'" in missing_scope(completing)
    assert "'cases:work'" in missing_scope(assigning)
    assert "'cases:submit'" in missing_scope(submitting)


def test_submit_scope_allows_only_submitting(office: Sagsflow, office_client: TestClient) -> None:
    portal = auth(office.create_token("anna", scopes=["cases:submit"]), "en")

    created = office_client.post("/cases", json={"process": WILDLIFE, "data": {"reference": "R-1"}}, headers=portal)
    reading = office_client.get(f"/cases/{created.json()['id']}", headers=portal)
    listing = office_client.get("/cases", headers=portal)
    letters = office_client.get(f"/cases/{created.json()['id']}/letters", headers=portal)

    assert created.status_code == 201
    assert "'cases:read'" in missing_scope(reading)
    assert "'cases:read'" in missing_scope(listing)
    assert "'cases:read'" in missing_scope(letters)


def test_work_scope_allows_commands(office: Sagsflow, office_client: TestClient) -> None:
    case = submit(office_client, office.create_token("anna"))
    worker = auth(office.create_token("vera", scopes=["cases:work"]))

    assigned = office_client.post(f"/cases/{case['id']}/assignee", json={"assignee": "vera"}, headers=worker)
    completed = office_client.post(
        f"/cases/{case['id']}/steps/prepare/complete", json={"data": {"note": "Done."}}, headers=worker
    )
    reading = office_client.get(f"/cases/{case['id']}", headers=worker)

    assert assigned.status_code == 200, assigned.json()
    assert completed.status_code == 200, completed.json()
    assert "'cases:read'" in missing_scope(reading)


def test_scope_checked_before_case_lookup(office: Sagsflow, office_client: TestClient) -> None:
    portal = auth(office.create_token("anna", scopes=["cases:submit"]))

    response = office_client.get("/cases/999999", headers=portal)

    missing_scope(response)


def test_unscoped_token_has_full_rights(office: Sagsflow, office_client: TestClient) -> None:
    case = submit(office_client, office.create_token("anna"))
    full = auth(office.create_token("vera"))

    read = office_client.get(f"/cases/{case['id']}", headers=full)
    completed = office_client.post(f"/cases/{case['id']}/steps/prepare/complete", json={"data": {}}, headers=full)

    assert read.status_code == 200
    assert completed.status_code == 200, completed.json()


def test_scopes_do_not_add_rights(office: Sagsflow, office_client: TestClient) -> None:
    case = submit(office_client, office.create_token("anna"))
    applicant = auth(office.create_token("otto", scopes=["cases:read", "cases:work", "admin"]))

    read = office_client.get(f"/cases/{case['id']}", headers=applicant)
    users = office_client.get("/users", headers=applicant)

    assert read.status_code == 404
    assert users.status_code == 403
    assert users.json()["error"]["code"] == "missing_role"


def test_admin_scope_guards_user_management(office: Sagsflow, office_client: TestClient) -> None:
    reader = auth(office.create_token("adam", scopes=["cases:read"]))
    manager = auth(office.create_token("adam", scopes=["admin"]))

    refused = office_client.get("/users", headers=reader)
    allowed = office_client.get("/users", headers=manager)

    assert "'admin'" in missing_scope(refused)
    assert allowed.status_code == 200
    assert "vera" in [user["user"] for user in allowed.json()]


def test_scoped_actor_is_refused_in_engine(office: Sagsflow) -> None:
    reader = Actor("vera", frozenset({"caseworker"}), ("vildt",), frozenset({"cases:read"}))

    with pytest.raises(Forbidden) as raised:
        office.submit(reader, GENERAL, {"reference": "X"})

    assert raised.value.code == "missing_scope"
    assert raised.value.context["scope"] == "cases:submit"
