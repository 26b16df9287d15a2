"""Users, tokens and handover: managing users, what a token acts with, and reassigning work.

Most tests use the office of tests/helpers.py, whose process `wildlife-permit` belongs to
the team `vildt`. The CLI tests run on a temporary SQLite database, like tests/test_cli.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from cli.main import app
from engine import auth
from engine.adapters.cvr import FakeCompanyRegister
from engine.adapters.digital_post import MemoryDigitalPost
from engine.adapters.species import OfflineSpeciesPlus
from engine.auth import Actor
from engine.errors import BadRequest, Conflict, Forbidden, NotFound
from engine.runtime.audit import STATE_KEY
from engine.runtime.services import Services
from engine.service import Sagsflow
from engine.storage.database import Database
from engine.storage.tables import CaseEvent
from tests.helpers import ADMIN, APPLICANT, REPOSITORY, Tokens, load_office

auth_header = Tokens.header
runner = CliRunner()


def submit(client: TestClient, token: str, reference: str = "R-1") -> dict[str, Any]:
    response = client.post(
        "/cases", json={"process": "wildlife-permit", "data": {"reference": reference}}, headers=auth_header(token)
    )
    assert response.status_code == 201, response.json()
    body: dict[str, Any] = response.json()
    return body


def error(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    return body


# Managing users -------------------------------------------------------------------------------


def test_add_user_and_list(office: Sagsflow) -> None:
    added = office.add_user(
        ADMIN, "sync-bot", ["caseworker"], ["vildt", "vildt", "cites"], integration=True, display_name=" Sync "
    )
    users = {user["user"]: user for user in office.list_users(ADMIN)}

    assert added["kind"] == "integration"
    assert added["teams"] == ["vildt", "cites"], "order kept, repeats dropped"
    assert added["display_name"] == "Sync"
    assert added["active"] is True
    assert users["sync-bot"] == added
    assert users["vera"]["teams"] == ["vildt"]


def test_add_existing_user_is_conflict(office: Sagsflow) -> None:
    with pytest.raises(Conflict) as raised:
        office.add_user(ADMIN, "vera", ["caseworker"], [])

    assert raised.value.code == "user_exists"


@pytest.mark.parametrize(
    ("name", "roles", "teams", "code"),
    [
        ("ny bruger", ["caseworker"], [], "bad_request"),
        ("ny", ["Case Worker"], [], "bad_request"),
        ("ny", [], [], "bad_request"),
        ("ny", ["aprover"], [], "unknown_role"),
        ("ny", ["caseworker"], ["Vildt"], "invalid_team"),
        ("ny", ["caseworker"], ["vildt-og-natur"], "invalid_team"),
        ("ny", ["caseworker"], ["t" * 65], "invalid_team"),
    ],
    ids=["name", "role-shape", "no-role", "unknown-role", "team-case", "team-hyphen", "team-length"],
)
def test_add_user_rejects_invalid_values(
    office: Sagsflow, name: str, roles: list[str], teams: list[str], code: str
) -> None:
    with pytest.raises(BadRequest) as raised:
        office.add_user(ADMIN, name, roles, teams)

    assert raised.value.code == code
    assert "ny" not in [user["user"] for user in office.list_users(ADMIN)]


def test_user_management_needs_admin(office: Sagsflow) -> None:
    caseworker = Actor("vera", frozenset({"caseworker"}), ("vildt",))
    scoped_admin = Actor("adam", frozenset({"admin"}), (), frozenset({"cases:read"}))

    with pytest.raises(Forbidden) as by_caseworker:
        office.update_user(caseworker, "vera", teams=["*"])
    with pytest.raises(Forbidden) as by_scoped_admin:
        office.deactivate_user(scoped_admin, "vera")

    assert by_caseworker.value.code == "missing_role"
    assert by_scoped_admin.value.code == "missing_scope"
    assert {user["user"]: user for user in office.list_users(ADMIN)}["vera"]["teams"] == ["vildt"]


def test_update_unknown_user_is_404(office: Sagsflow) -> None:
    with pytest.raises(NotFound) as raised:
        office.update_user(ADMIN, "nobody", teams=["vildt"])

    assert raised.value.code == "unknown_user"


def test_update_user_over_http(office_client: TestClient, office_tokens: dict[str, str]) -> None:
    admin = auth_header(office_tokens["adam"])

    added = office_client.post("/users", json={"user": "ny", "roles": ["approver"], "teams": ["vildt"]}, headers=admin)
    changed = office_client.patch("/users/ny", json={"teams": ["cites"], "display_name": "Ny Person"}, headers=admin)
    deactivated = office_client.post("/users/ny/deactivate", headers=admin)
    by_caseworker = office_client.get("/users", headers=auth_header(office_tokens["vera"]))

    assert added.status_code == 201, added.json()
    assert changed.json()["teams"] == ["cites"]
    assert changed.json()["display_name"] == "Ny Person"
    assert deactivated.json()["active"] is False
    assert by_caseworker.status_code == 403
    assert error(by_caseworker)["code"] == "missing_role"


# Tokens and authentication --------------------------------------------------------------------


def test_token_for_existing_user_takes_its_roles(office: Sagsflow) -> None:
    token = office.create_token("trude")

    actor = office.authenticate(token)

    assert actor.roles == {"caseworker", "approver"}
    assert actor.teams == ("vildt",)
    assert actor.scopes is None


def test_token_with_roles_creates_missing_user(office: Sagsflow) -> None:
    token = office.create_token("ny", ["caseworker"], "laptop")

    actor = office.authenticate(token)
    users = {user["user"]: user for user in office.list_users(ADMIN)}

    assert actor.roles == {"caseworker"}
    assert actor.teams == ()
    assert users["ny"]["teams"] == []
    assert users["ny"]["kind"] == "person"


def test_token_for_unknown_user_needs_roles(office: Sagsflow) -> None:
    with pytest.raises(BadRequest) as raised:
        office.create_token("nobody")

    assert raised.value.code == "unknown_user"


def test_token_roles_must_match_user(office: Sagsflow) -> None:
    same = office.create_token("trude", ["approver", "caseworker"])

    with pytest.raises(BadRequest) as raised:
        office.create_token("trude", ["caseworker"])

    assert same.startswith("sf_")
    assert raised.value.code == "roles_differ"


def test_token_for_deactivated_user_is_refused(office: Sagsflow) -> None:
    office.deactivate_user(ADMIN, "vera")

    with pytest.raises(Conflict) as raised:
        office.create_token("vera")

    assert raised.value.code == "inactive_user"


def test_token_rejects_unknown_scope(office: Sagsflow) -> None:
    with pytest.raises(BadRequest) as raised:
        office.create_token("vera", scopes=["cases:write"])

    assert raised.value.code == "unknown_scope"
    assert "cases:read, cases:submit, cases:work, documents:write, admin" in raised.value.text.en


def test_token_stores_scopes(office: Sagsflow) -> None:
    token = office.create_token("vera", scopes=["cases:work", "cases:read", "cases:read"])

    assert office.authenticate(token).scopes == frozenset({"cases:read", "cases:work"})


def test_changed_roles_take_effect_at_once(
    office: Sagsflow, office_client: TestClient, office_tokens: dict[str, str]
) -> None:
    case = submit(office_client, office_tokens["anna"])
    vera = auth_header(office_tokens["vera"])
    before = office_client.get("/me", headers=vera).json()

    office.update_user(ADMIN, "vera", roles=["approver"])
    after = office_client.get("/me", headers=vera).json()
    completing = office_client.post(f"/cases/{case['id']}/steps/prepare/complete", json={"data": {}}, headers=vera)

    assert before["roles"] == ["caseworker"]
    assert after["roles"] == ["approver"]
    assert completing.status_code == 403
    assert error(completing)["code"] == "missing_role"


def test_changed_teams_take_effect_at_once(
    office: Sagsflow, office_client: TestClient, office_tokens: dict[str, str]
) -> None:
    case = submit(office_client, office_tokens["anna"])
    vera = auth_header(office_tokens["vera"])
    before = office_client.get(f"/cases/{case['id']}", headers=vera)

    office.update_user(ADMIN, "vera", teams=["cites"])
    after = office_client.get(f"/cases/{case['id']}", headers=vera)

    assert before.status_code == 200
    assert after.status_code == 404


def test_deactivated_user_token_is_401(
    office: Sagsflow, office_client: TestClient, office_tokens: dict[str, str]
) -> None:
    vera = auth_header(office_tokens["vera"], "en")

    office.deactivate_user(ADMIN, "vera")
    refused = office_client.get("/processes", headers=vera)
    office.update_user(ADMIN, "vera", active=True)
    restored = office_client.get("/processes", headers=vera)

    assert refused.status_code == 401
    assert error(refused)["code"] == "inactive_user"
    assert "The user 'vera' is deactivated" in error(refused)["message"]
    assert restored.status_code == 200


def test_token_without_user_row_keeps_its_roles(office: Sagsflow) -> None:
    # As left by schema revision 0001, which stored roles with each token and had no users.
    with office.database.write() as session:
        token = auth.create_token(session, "old-integration", ["caseworker"], office.services.clock())

    actor = office.authenticate(token)

    assert actor.roles == {"caseworker"}
    assert actor.teams == ()


# Handover ---------------------------------------------------------------------------------------


def assign(client: TestClient, token: str, case: dict[str, Any], assignee: str | None, step: str | None = None) -> Any:
    path = f"/cases/{case['id']}/assignee" if step is None else f"/cases/{case['id']}/steps/{step}/assignee"
    return client.post(path, json={"assignee": assignee, "version": case["version"]}, headers=auth_header(token))


def events(office: Sagsflow, case: dict[str, Any]) -> list[CaseEvent]:
    with office.database.read() as session:
        rows = session.scalars(select(CaseEvent).where(CaseEvent.case_id == case["id"]).order_by(CaseEvent.sequence))
        return list(rows)


def test_assign_case_is_audited(office: Sagsflow, office_client: TestClient, office_tokens: dict[str, str]) -> None:
    case = submit(office_client, office_tokens["anna"])

    response = assign(office_client, office_tokens["vera"], case, "trude")
    audit = events(office, case)

    assert response.status_code == 200, response.json()
    assert response.json()["assignee"] == "trude"
    assert response.json()["version"] == case["version"] + 1
    assert response.headers["ETag"] == f'"{case["version"] + 1}"'
    assert [event.command for event in audit] == ["submit", "assign_case"]
    assert audit[-1].actor == "vera"
    assert without_state(audit[-1].changes) == {"assignee": [None, "trude"]}


def test_assign_step_is_audited(office: Sagsflow, office_client: TestClient, office_tokens: dict[str, str]) -> None:
    case = submit(office_client, office_tokens["anna"])

    response = assign(office_client, office_tokens["vera"], case, "trude", "prepare")
    audit = events(office, case)

    assert response.status_code == 200, response.json()
    assert [step["assignee"] for step in response.json()["checklist"]] == ["trude"]
    assert response.json()["assignee"] is None
    assert audit[-1].command == "assign_step"
    assert without_state(audit[-1].changes) == {
        "step_assignee": {"step": "prepare", "phase": "work", "round": 1, "assignee": [None, "trude"]}
    }


def test_assign_nobody_clears_assignee(office_client: TestClient, office_tokens: dict[str, str]) -> None:
    case = submit(office_client, office_tokens["anna"])
    case = assign(office_client, office_tokens["vera"], case, "trude").json()

    response = assign(office_client, office_tokens["trude"], case, None)

    assert response.status_code == 200, response.json()
    assert response.json()["assignee"] is None


@pytest.mark.parametrize(
    ("assignee", "step", "code"),
    [
        ("nobody", None, "unknown_user"),
        ("no body", None, "invalid"),
        ("carl", None, "not_in_team"),
        ("anna", None, "not_staff"),
        ("alma", "prepare", "missing_role"),
        ("nobody", "prepare", "unknown_user"),
    ],
    ids=["unknown", "invalid-name", "other-team", "applicant", "step-role", "step-unknown"],
)
def test_assign_rejects_unfit_assignee(
    office_client: TestClient, office_tokens: dict[str, str], assignee: str, step: str | None, code: str
) -> None:
    case = submit(office_client, office_tokens["anna"])

    response = assign(office_client, office_tokens["vera"], case, assignee, step)
    after = office_client.get(f"/cases/{case['id']}", headers=auth_header(office_tokens["vera"])).json()

    assert response.status_code == 422
    assert error(response)["errors"][0]["field"] == "assignee"
    assert error(response)["errors"][0]["code"] == code
    assert after["version"] == case["version"]


def test_assign_rejects_deactivated_user(
    office: Sagsflow, office_client: TestClient, office_tokens: dict[str, str]
) -> None:
    case = submit(office_client, office_tokens["anna"])
    office.deactivate_user(ADMIN, "trude")

    response = assign(office_client, office_tokens["vera"], case, "trude")

    assert response.status_code == 422
    assert error(response)["errors"][0]["code"] == "inactive_user"


def test_assign_approval_to_preparer_is_refused(office_client: TestClient, office_tokens: dict[str, str]) -> None:
    case = submit(office_client, office_tokens["anna"])
    completed = office_client.post(
        f"/cases/{case['id']}/steps/prepare/complete", json={"data": {}}, headers=auth_header(office_tokens["trude"])
    ).json()

    to_preparer = assign(office_client, office_tokens["vera"], completed, "trude", "sign_off")
    to_other = assign(office_client, office_tokens["vera"], completed, "alma", "sign_off")

    assert to_preparer.status_code == 422
    assert error(to_preparer)["errors"][0]["code"] == "four_eyes"
    assert to_other.status_code == 200, to_other.json()


def test_assign_inactive_step_is_conflict(office_client: TestClient, office_tokens: dict[str, str]) -> None:
    case = submit(office_client, office_tokens["anna"])

    response = assign(office_client, office_tokens["vera"], case, "alma", "sign_off")

    assert response.status_code == 409
    assert error(response)["code"] == "step_not_active"


def test_applicant_may_not_assign_own_case(office_client: TestClient, office_tokens: dict[str, str]) -> None:
    case = submit(office_client, office_tokens["anna"])

    response = assign(office_client, office_tokens["anna"], case, "vera")

    assert response.status_code == 403
    assert error(response)["code"] == "missing_role"


def test_assign_with_stale_version_is_conflict(office_client: TestClient, office_tokens: dict[str, str]) -> None:
    case = submit(office_client, office_tokens["anna"])
    assign(office_client, office_tokens["vera"], case, "trude")

    response = assign(office_client, office_tokens["vera"], case, "vera")

    assert response.status_code == 409
    assert error(response)["code"] == "stale_version"


def test_assign_closed_case_is_conflict(office_client: TestClient, office_tokens: dict[str, str]) -> None:
    case = submit(office_client, office_tokens["anna"])
    office_client.post(
        f"/cases/{case['id']}/steps/prepare/complete", json={"data": {}}, headers=auth_header(office_tokens["vera"])
    )
    closed = office_client.post(
        f"/cases/{case['id']}/steps/sign_off/approve",
        json={"decision": "approve"},
        headers=auth_header(office_tokens["alma"]),
    ).json()

    response = assign(office_client, office_tokens["vera"], closed, "trude")

    assert closed["status"] == "closed"
    assert response.status_code == 409
    assert error(response)["code"] == "case_closed"


def test_cross_team_admin_may_assign(office_client: TestClient, office_tokens: dict[str, str]) -> None:
    case = submit(office_client, office_tokens["anna"])

    response = assign(office_client, office_tokens["adam"], case, "vera")

    assert response.status_code == 200, response.json()
    assert response.json()["assignee"] == "vera"


# The command line -------------------------------------------------------------------------------


@pytest.fixture
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    load_office(tmp_path / "office")
    return {
        "SAGSFLOW_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "SAGSFLOW_DEFINITIONS": str(tmp_path / "office"),
        "SAGSFLOW_DIGITAL_POST_DIR": str(tmp_path / "post"),
        "SAGSFLOW_LANGUAGE": "en",
    }


def invoke(environment: dict[str, str], *arguments: str) -> tuple[int, str]:
    result = runner.invoke(app, list(arguments), env=environment)
    return result.exit_code, result.output


def test_cli_manages_users(environment: dict[str, str]) -> None:
    invoke(environment, "db", "upgrade")
    invoke(environment, "deploy")

    added = invoke(environment, "user", "add", "vera", "--role", "caseworker", "--team", "vildt")
    bot = invoke(environment, "user", "add", "sync", "--role", "caseworker", "--team", "*", "--integration")
    updated = invoke(environment, "user", "update", "vera", "--team", "cites", "--display-name", "Vera Holm")
    deactivated = invoke(environment, "user", "deactivate", "sync")
    listed = invoke(environment, "user", "list")
    active = invoke(environment, "user", "list", "--active")

    assert added == (0, "vera  person  active  roles: caseworker  teams: vildt\n")
    assert bot[0] == 0
    assert "integration" in bot[1]
    assert updated == (0, "vera (Vera Holm)  person  active  roles: caseworker  teams: cites\n")
    assert deactivated == (0, "sync  integration  deactivated  roles: caseworker  teams: *\n")
    assert listed[1].endswith("2 users.\n")
    assert active[1].endswith("1 user.\n")


def test_cli_user_errors(environment: dict[str, str]) -> None:
    invoke(environment, "db", "upgrade")
    invoke(environment, "deploy")

    unknown_role = invoke(environment, "user", "add", "vera", "--role", "aprover")
    unknown_user = invoke(environment, "user", "update", "vera", "--team", "vildt")
    nothing = invoke(environment, "user", "update", "vera")

    assert unknown_role[0] == 1
    assert "Unknown role: aprover" in unknown_role[1]
    assert unknown_user == (
        1,
        "Error: The user 'vera' does not exist.\nList the users with 'sagsflow user list'.\n",
    )
    assert nothing[0] == 2


def test_cli_token_with_scopes(environment: dict[str, str]) -> None:
    invoke(environment, "db", "upgrade")
    invoke(environment, "deploy")
    invoke(environment, "user", "add", "portal", "--role", "applicant", "--integration")

    created = invoke(environment, "token", "create", "portal", "--scope", "cases:submit")
    unknown = invoke(environment, "token", "create", "portal", "--scope", "cases:everything")
    database = Database(environment["SAGSFLOW_DATABASE_URL"])
    service = Sagsflow(database, Services(OfflineSpeciesPlus(), FakeCompanyRegister(), MemoryDigitalPost()))
    actor = service.authenticate(created[1].strip())
    database.dispose()

    assert created[0] == 0
    assert actor.scopes == frozenset({"cases:submit"})
    assert actor.roles == {"applicant"}
    assert unknown[0] == 1
    assert "Unknown scope 'cases:everything'" in unknown[1]


def test_cli_assigns_case_and_step(environment: dict[str, str]) -> None:
    invoke(environment, "db", "upgrade")
    invoke(environment, "deploy")
    invoke(environment, "user", "add", "vera", "--role", "caseworker", "--team", "vildt")
    database = Database(environment["SAGSFLOW_DATABASE_URL"])
    service = Sagsflow(database, Services(OfflineSpeciesPlus(), FakeCompanyRegister(), MemoryDigitalPost()))
    case = service.submit(APPLICANT, "wildlife-permit", {"reference": "R-1"}, "da")
    database.dispose()

    to_case = invoke(environment, "assign", "case", case["journal_number"], "vera")
    to_step = invoke(environment, "assign", "step", str(case["id"]), "prepare", "vera", "--version", "2")
    cleared = invoke(environment, "assign", "case", str(case["id"]), "--clear")
    both = invoke(environment, "assign", "case", str(case["id"]), "vera", "--clear")
    unfit = invoke(environment, "assign", "case", str(case["id"]), "nobody")

    assert to_case == (0, f"{case['journal_number']} is handed over to vera (version 2).\n")
    assert to_step == (0, f"{case['journal_number']}/prepare is handed over to vera (version 3).\n")
    assert cleared == (0, f"{case['journal_number']} is handed over to nobody (version 4).\n")
    assert both[0] == 2
    assert unfit[0] == 1


def test_token_demo_creates_team_users(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    environment = {
        "SAGSFLOW_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}",
        "SAGSFLOW_DEFINITIONS": str(REPOSITORY),
        "SAGSFLOW_LANGUAGE": "en",
    }
    invoke(environment, "db", "upgrade")
    invoke(environment, "deploy")

    first = invoke(environment, "token", "demo")
    second = invoke(environment, "token", "demo")
    listed = invoke(environment, "user", "list")

    assert first[0] == 0
    assert second[0] == 0, "running it again updates the users"
    assert listed[1] == (
        "demo-ansoeger  person  active  roles: applicant  teams: -\n"
        "demo-godkender  person  active  roles: approver  teams: cites, natura, klap\n"
        "demo-godkender-2  person  active  roles: approver  teams: cites, natura, klap\n"
        "demo-sagsbehandler  person  active  roles: caseworker  teams: cites, natura, klap\n"
        "4 users.\n"
    )


def test_last_administrator_cannot_be_removed_over_http(
    office: Sagsflow, office_client: TestClient, office_tokens: dict[str, str]
) -> None:
    adam = auth_header(office_tokens["adam"], "en")

    deactivate_self = office_client.post("/users/adam/deactivate", headers=adam)
    drop_role = office_client.patch("/users/adam", json={"roles": ["caseworker"]}, headers=adam)
    office.add_user(ADMIN, "eva", ["admin"], [])
    with_second = office_client.post("/users/adam/deactivate", headers=adam)

    assert deactivate_self.status_code == 409
    assert error(deactivate_self)["code"] == "last_administrator"
    assert "'adam' is the last active administrator" in error(deactivate_self)["message"]
    assert drop_role.status_code == 409
    assert with_second.status_code == 200
    assert [user["user"] for user in office.list_users(ADMIN) if user["active"] and "admin" in user["roles"]] == ["eva"]


def without_state(changes: dict[str, Any]) -> dict[str, Any]:
    """Return an event's changes without the case-state hash that every event records."""
    return {key: value for key, value in changes.items() if key != STATE_KEY}


def test_user_names_differing_in_case_are_one_name(office: Sagsflow) -> None:
    with pytest.raises(Conflict) as taken:
        office.add_user(ADMIN, "Vera", ["approver"], ["vildt"])

    assert taken.value.code == "user_exists"
    assert "'vera' already exists" in taken.value.message("en")
