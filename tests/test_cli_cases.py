"""Case work by CLI as named users (`sagsflow case submit/complete/approve/hearing`, `chat`), on SQLite."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from collections.abc import Mapping
from contextlib import closing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from engine.service import Sagsflow
from tests.helpers import EXAMPLES, REPOSITORY

runner = CliRunner()

KONGEPYTHON = EXAMPLES / "01-kongepython.json"
ORKIDE = EXAMPLES / "02-orkide.json"
MUSEUM = "Statens Naturhistoriske Museum,CVR,29979812"
GRANTED_DRAFT = {
    "decision_outcome": "granted",
    "decision_text": "Miljøstyrelsen giver tilladelse til indførsel af 60 levende Python regius fra Togo.",
    "statement_of_reasons": "Arten er opført på bilag B, og betingelserne i artikel 4, stk. 2, er opfyldt.",
}

# name, roles, teams: as tests.helpers, plus a user in another team and one who is deactivated.
USERS: list[tuple[str, list[str], list[str]]] = [
    ("karen", ["caseworker"], ["cites"]),
    ("bo", ["approver"], ["cites"]),
    ("both", ["caseworker", "approver"], ["cites"]),
    ("vera", ["caseworker"], ["vildt"]),
    ("gone", ["caseworker"], ["cites"]),
    ("kragelund", ["applicant"], []),
]


def settings_for(folder: Path) -> dict[str, str]:
    return {
        "SAGSFLOW_DATABASE_URL": f"sqlite:///{folder / 'cli.db'}",
        "SAGSFLOW_DEFINITIONS": str(REPOSITORY),
        "SAGSFLOW_DIGITAL_POST_DIR": str(folder / "post"),
        "SAGSFLOW_LANGUAGE": "da",
    }


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database with the shipped processes deployed and the users of `USERS`, set up once."""
    folder = tmp_path_factory.mktemp("cli-cases-template")
    env = settings_for(folder)
    assert invoke(env, "db", "upgrade")[0] == 0
    assert invoke(env, "deploy")[0] == 0
    for name, roles, teams in USERS:
        options = [item for role in roles for item in ("--role", role)]
        options += [item for team in teams for item in ("--team", team)]
        assert invoke(env, "user", "add", name, *options)[0] == 0
    assert invoke(env, "user", "deactivate", "gone")[0] == 0
    # The database runs in WAL mode: move the log into the file, so that copying the file copies everything.
    path = folder / "cli.db"
    with closing(sqlite3.connect(path)) as connection:
        busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    assert busy == 0
    return path


@pytest.fixture
def environment(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A copy of the template database for one test."""
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(template, tmp_path / "cli.db")
    return settings_for(tmp_path)


def invoke(environment: dict[str, str], *arguments: str) -> tuple[int, str]:
    result = runner.invoke(app, list(arguments), env=environment)
    return result.exit_code, result.output


def submit(environment: dict[str, str], application: Path = KONGEPYTHON, user: str = "kragelund") -> str:
    """Submit an application as `user` and return the new case's journal number."""
    code, output = invoke(environment, "case", "submit", "cites-import", "--as", user, "--data", str(application))
    assert code == 0, output
    found = re.search(r"Sag (\d{4}-\d{6}) er oprettet", output)
    assert found is not None, output
    return found.group(1)


def complete(environment: dict[str, str], case: str, step: str, user: str, data: Mapping[str, object]) -> str:
    code, output = invoke(environment, "case", "complete", case, step, "--as", user, "--data", json.dumps(data))
    assert code == 0, output
    return output


def case_json(environment: dict[str, str], case: str) -> dict[str, object]:
    code, output = invoke(environment, "case", "show", case, "--json")
    assert code == 0, output
    view: dict[str, object] = json.loads(output)
    return view


def to_fact_finding(environment: dict[str, str], case: str) -> None:
    complete(environment, case, "completeness_check", "karen", {"application_complete": True})
    complete(environment, case, "export_permit_check", "karen", {"export_permit_verified": True})


def test_cites_case_to_approved_decision(environment: dict[str, str], tmp_path: Path) -> None:
    case = submit(environment)
    to_fact_finding(environment, case)
    assessed = complete(
        environment,
        case,
        "fact_assessment",
        "karen",
        {"assessment_note": "Ranchede dyr.", "consultation_required": False},
    )
    assert "Fase: Udkast til afgørelse" in assessed
    assert "Aktive trin: draft_decision" in assessed

    # The draft comes from a file, written by a user who is also an approver.
    draft_file = tmp_path / "draft.json"
    draft_file.write_text(json.dumps(GRANTED_DRAFT, ensure_ascii=False), encoding="utf-8")
    drafted = invoke(
        environment, "case", "complete", case, "draft_decision", "--as", "both", "--data", f"@{draft_file}"
    )
    assert drafted[0] == 0, drafted[1]
    assert "Fase: Godkendelse" in drafted[1]

    own = invoke(environment, "case", "approve", case, "decision_approval", "--as", "both", "--decision", "approve")
    assert own[0] == 1
    assert "fire-øjne-princippet" in own[1]
    assert "Traceback" not in own[1]

    bare = invoke(environment, "case", "approve", case, "decision_approval", "--as", "bo", "--decision", "reject")
    assert bare[0] == 1
    assert "comment: Skriv en kommentar, når du afviser et udkast." in bare[1]

    rejected = invoke(
        environment,
        "case",
        "approve",
        case,
        "decision_approval",
        "--as",
        "bo",
        "--decision",
        "reject",
        "--comment",
        "Angiv vilkår om mærkning.",
    )
    assert rejected[0] == 0, rejected[1]
    assert f"{case}: bo har afvist trinnet 'decision_approval'." in rejected[1]
    assert "Fase: Udkast til afgørelse" in rejected[1]

    complete(environment, case, "draft_decision", "both", {"conditions": "Dyrene skal mærkes med mikrochip."})
    approved = invoke(environment, "case", "approve", case, "decision_approval", "--as", "bo", "--decision", "approve")
    assert approved[0] == 0, approved[1]
    assert f"{case}: bo har godkendt trinnet 'decision_approval'." in approved[1]
    assert "Fase: Afslutning" in approved[1]
    assert "1 brev sendt." in approved[1]

    letters = invoke(environment, "case", "letters", case, "--json")
    assert letters[0] == 0, letters[1]
    decision = json.loads(letters[1])[-1]
    assert decision["title"] == "Afgørelse"
    assert decision["status"] == "sent"
    assert "Dyrene skal mærkes med mikrochip." in decision["text"]

    view = case_json(environment, case)
    checklist = view["checklist"]
    assert isinstance(checklist, list)
    approval = [row for row in checklist if row["step"] == "decision_approval"][-1]
    assert [entry["by"] for entry in approval["approvals"]] == ["bo"]
    drafts = [row for row in checklist if row["step"] == "draft_decision"]
    assert [row["completed_by"] for row in drafts] == ["both", "both"]

    trail = json.loads(invoke(environment, "audit", "show", case, "--json")[1])
    actors = [event["actor"] for event in trail["events"]]
    assert actors[0] == "kragelund"
    assert {"karen", "both", "bo"} <= set(actors)
    assert trail["verification"]["problem"] is None


def test_step_without_its_role_rejected(environment: dict[str, str]) -> None:
    case = submit(environment)

    code, output = invoke(
        environment,
        "case",
        "complete",
        case,
        "completeness_check",
        "--as",
        "bo",
        "--data",
        '{"application_complete": true}',
    )

    assert code == 1
    assert "Fejl: Trinnet kræver rollen 'Sagsbehandler' (caseworker), som du ikke har." in output
    assert case_json(environment, case)["version"] == 1


def test_duplicate_submission_names_open_case(environment: dict[str, str]) -> None:
    case = submit(environment)

    code, output = invoke(
        environment, "case", "submit", "cites-import", "--as", "kragelund", "--data", str(KONGEPYTHON)
    )

    assert code == 1
    assert f"Der er allerede en åben sag om det samme ({case}); ansøgningen er ikke oprettet." in output
    assert invoke(environment, "case", "list")[1].endswith("1 af 1 sag.\n")


def test_submit_reports_bad_json_file_by_name(environment: dict[str, str], tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"species": "Python regius",\n', encoding="utf-8")
    listing = tmp_path / "list.json"
    listing.write_text("[1, 2]", encoding="utf-8")

    invalid = invoke(environment, "case", "submit", "cites-import", "--as", "kragelund", "--data", str(broken))
    missing = invoke(environment, "case", "submit", "cites-import", "--as", "kragelund", "--data", "nowhere.json")
    not_object = invoke(environment, "case", "submit", "cites-import", "--as", "kragelund", "--data", str(listing))

    assert invalid[0] == 1
    assert f"Fejl: {broken} er ikke gyldig JSON:" in invalid[1]
    assert "(linje 2, kolonne 1)" in invalid[1]
    assert missing == (1, "Fejl: nowhere.json findes ikke eller er ikke en fil.\n")
    assert not_object[0] == 1
    assert f"{listing} skal indeholde et JSON-objekt" in not_object[1]


def test_submit_of_other_process_rejected(environment: dict[str, str], tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"process": "cites-export", "data": {}}), encoding="utf-8")

    code, output = invoke(environment, "case", "submit", "cites-import", "--as", "kragelund", "--data", str(other))

    assert code == 1
    assert f"{other} er en ansøgning til 'cites-export', ikke til 'cites-import'." in output


def test_submit_of_bare_field_values(environment: dict[str, str], tmp_path: Path) -> None:
    values = tmp_path / "values.json"
    values.write_text(json.dumps(json.loads(KONGEPYTHON.read_text(encoding="utf-8"))["data"]), encoding="utf-8")

    result = runner.invoke(
        app, ["case", "submit", "cites-import", "--as", "kragelund", "--data", str(values), "--json"], env=environment
    )
    code, output, stdout = result.exit_code, result.output, result.stdout

    assert code == 0, output
    view = json.loads(stdout)
    assert view["phase"]["id"] == "screening"
    assert "checklist" not in view, "the applicant gets the applicant's view"
    assert result.stderr == "1 brev sendt.\n"


def test_submit_with_invalid_field_lists_it(environment: dict[str, str], tmp_path: Path) -> None:
    application = json.loads(KONGEPYTHON.read_text(encoding="utf-8"))
    application["data"]["quantity"] = 0
    path = tmp_path / "zero.json"
    path.write_text(json.dumps(application), encoding="utf-8")

    code, output = invoke(environment, "case", "submit", "cites-import", "--as", "kragelund", "--data", str(path))

    assert code == 1
    assert "  data.quantity: " in output


def test_unknown_and_deactivated_users_rejected(environment: dict[str, str]) -> None:
    unknown = invoke(environment, "case", "submit", "cites-import", "--as", "nobody", "--data", str(KONGEPYTHON))
    case = submit(environment)
    deactivated = invoke(
        environment,
        "case",
        "complete",
        case,
        "completeness_check",
        "--as",
        "gone",
        "--data",
        '{"application_complete": true}',
    )
    invalid = invoke(environment, "case", "submit", "cites-import", "--as", "no body", "--data", str(KONGEPYTHON))

    assert unknown == (1, "Fejl: Brugeren 'nobody' findes ikke.\nSe brugerne med 'sagsflow user list'.\n")
    assert deactivated[0] == 1
    assert "Fejl: Brugeren 'gone' er deaktiveret og kan ikke handle på sager." in deactivated[1]
    assert "sagsflow user update gone --activate" in deactivated[1]
    assert invalid[0] == 1
    assert "Brugernavnet 'no body' er ugyldigt" in invalid[1]


def test_case_work_requires_named_user(environment: dict[str, str]) -> None:
    case = submit(environment)

    code, output = invoke(environment, "case", "complete", case, "completeness_check")

    assert code == 2
    assert "--as" in output


def test_other_team_sees_no_case(environment: dict[str, str]) -> None:
    # A case that a caseworker submits (e.g. a paper application) gets the caseworker's team.
    case = submit(environment, user="karen")

    code, output = invoke(
        environment,
        "case",
        "complete",
        case,
        "completeness_check",
        "--as",
        "vera",
        "--data",
        '{"application_complete": true}',
    )

    assert code == 1
    assert f"Fejl: Sagen '{case}' findes ikke." in output
    assert invoke(environment, "case", "letters", case, "--as", "bo")[0] == 0
    assert invoke(environment, "case", "letters", case, "--as", "vera")[0] == 1


def test_complete_rejects_malformed_data_option(environment: dict[str, str]) -> None:
    case = submit(environment)

    broken = invoke(environment, "case", "complete", case, "completeness_check", "--as", "karen", "--data", "{oops")
    listing = invoke(environment, "case", "complete", case, "completeness_check", "--as", "karen", "--data", "[1]")
    missing = invoke(
        environment, "case", "complete", case, "completeness_check", "--as", "karen", "--data", "@none.json"
    )

    assert broken[0] == 2
    assert "Fejl: --data er ikke gyldig JSON:" in broken[1]
    assert listing[0] == 2
    assert "--data skal være et JSON-objekt" in listing[1]
    assert missing == (1, "Fejl: none.json findes ikke eller er ikke en fil.\n")


def test_stale_version_rejected(environment: dict[str, str]) -> None:
    case = submit(environment)
    complete(environment, case, "completeness_check", "karen", {"application_complete": True})

    code, output = invoke(
        environment,
        "case",
        "complete",
        case,
        "export_permit_check",
        "--as",
        "karen",
        "--data",
        '{"export_permit_verified": true}',
        "--version",
        "1",
    )

    assert code == 1
    assert "du sendte version 1, sagen er nu på version 2" in output


def test_hearing_opened_with_party_and_merged_text(environment: dict[str, str], tmp_path: Path) -> None:
    case = submit(environment)
    to_fact_finding(environment, case)
    complete(
        environment, case, "fact_assessment", "karen", {"assessment_note": "Høres.", "consultation_required": True}
    )

    code, output = invoke(
        environment,
        "case",
        "hearing",
        case,
        "consultation",
        "--as",
        "karen",
        "--party",
        MUSEUM,
        "--party",
        "Foreningen Dyr, Natur og Miljø,cvr,25798376,post@example.dk",
        "--merge",
        "question=Har museet bemærkninger til indførslen?",
    )

    assert code == 0, output
    assert f"{case}: høringen på trinnet 'consultation' er åbnet af karen." in output
    assert "2 breve sendt." in output
    view = case_json(environment, case)
    checklist = view["checklist"]
    assert isinstance(checklist, list)
    consultation = [row for row in checklist if row["step"] == "consultation"][-1]
    assert consultation["status"] == "waiting"
    letters = json.loads(invoke(environment, "case", "letters", case, "--json")[1])
    hearing_letter, association_letter = letters[-2:]
    assert hearing_letter["title"] == "Høring"
    assert hearing_letter["recipient"]["id"] == "29979812"
    assert association_letter["recipient"]["name"] == "Foreningen Dyr, Natur og Miljø"
    assert association_letter["recipient"]["id"] == "25798376"
    assert "Har museet bemærkninger til indførslen?" in hearing_letter["text"]
    assert (tmp_path / "post" / f"letter_{case}_{hearing_letter['number']}.json").is_file()

    scan = tmp_path / "svar.pdf"
    scan.write_bytes(b"%PDF-1.4\n%%EOF\n")
    recorded = invoke(
        environment,
        "case",
        "reply",
        case,
        "consultation",
        "--as",
        "karen",
        "--party",
        "29979812",
        "--text",
        "Ingen bemærkninger, se brevet.",
        "--file",
        str(scan),
    )
    unknown_party = invoke(
        environment, "case", "reply", case, "consultation", "--as", "karen", "--party", "Ukendt", "--text", "Svar."
    )

    assert recorded[0] == 0, recorded[1]
    assert f"{case}: høringssvaret fra '29979812' er registreret af karen." in recorded[1]
    assert unknown_party[0] == 1
    assert "Foreningen Dyr, Natur og Miljø (CVR 25798376)" in unknown_party[1]


def test_party_hearing_hears_case_party(environment: dict[str, str]) -> None:
    case = submit(environment)
    to_fact_finding(environment, case)
    complete(
        environment, case, "fact_assessment", "karen", {"assessment_note": "Afslag.", "consultation_required": False}
    )
    refusal = {**GRANTED_DRAFT, "decision_outcome": "refused"}
    drafted = complete(environment, case, "draft_decision", "karen", refusal)
    assert "Aktive trin: party_hearing" in drafted

    code, output = invoke(environment, "case", "hearing", case, "party_hearing", "--as", "karen")

    assert code == 0, output
    letters = json.loads(invoke(environment, "case", "letters", case, "--json")[1])
    assert letters[-1]["recipient"]["id"] == "90131443", "the applicant's CVR number"


def test_hearing_rejects_malformed_options(environment: dict[str, str]) -> None:
    case = submit(environment)

    party = invoke(environment, "case", "hearing", case, "consultation", "--as", "karen", "--party", "Museet")
    merge = invoke(
        environment, "--lang", "en", "case", "hearing", case, "consultation", "--as", "karen", "--merge", "x"
    )
    wrong_kind = invoke(environment, "case", "hearing", case, "completeness_check", "--as", "karen", "--party", MUSEUM)

    assert party[0] == 2
    assert "--party 'Museet' skal have formen NAVN,CVR,NUMMER" in party[1]
    assert merge == (2, "Error: --merge 'x' must have the form KEY=TEXT, e.g. question=Any comments?\n")
    assert wrong_kind[0] == 1
    assert "Trinnet 'completeness_check' er ikke en høring" in wrong_kind[1]


def test_chat_post_and_list(environment: dict[str, str]) -> None:
    case = submit(environment)

    posted = invoke(environment, "chat", "post", case, "--as", "karen", "Kan du tage eksporttilladelsen?")
    by_applicant = invoke(environment, "chat", "post", case, "--as", "kragelund", "Hej")
    listed = invoke(environment, "chat", "list", case)
    as_bo = invoke(environment, "chat", "list", case, "--as", "bo", "--json")

    assert posted[0] == 0, posted[1]
    assert "er skrevet af karen (sagen er nu på version 2)" in posted[1]
    assert by_applicant[0] == 1
    assert listed[0] == 0
    assert "karen" in listed[1]
    assert "        Kan du tage eksporttilladelsen?" in listed[1]
    assert listed[1].endswith("1 af 1 besked.\n")
    assert [item["text"] for item in json.loads(as_bo[1])["items"]] == ["Kan du tage eksporttilladelsen?"]


def test_english_messages(environment: dict[str, str]) -> None:
    code, output = invoke(
        environment, "--lang", "en", "case", "submit", "cites-import", "--as", "kragelund", "--data", str(ORKIDE)
    )

    assert code == 0, output
    assert re.search(r"^Case \d{4}-\d{6} was created \(id 1\): ", output)
    assert "  Phase: Screening   Status: open   Version: 1" in output
    assert "1 letter sent." in output


def test_processes_lists_deployed_versions(environment: dict[str, str]) -> None:
    code, output = invoke(environment, "processes")

    assert code == 0
    assert re.search(r"^cites-import\s+v1\s", output, re.MULTILINE)
    assert re.search(r"^klap-ordningssag\s+v1\s", output, re.MULTILINE)
    shipped = sum(1 for _ in (REPOSITORY / "processes").rglob("*.yaml"))
    assert output.endswith(f"{shipped} processer udrullet.\n")


def test_failed_delivery_keeps_command(environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(self: Sagsflow, limit: int = 1000) -> None:
        raise OSError("the digital post folder is read-only")

    monkeypatch.setattr(Sagsflow, "dispatch_outbox", fail)

    code, output = invoke(
        environment, "case", "submit", "cites-import", "--as", "kragelund", "--data", str(KONGEPYTHON)
    )

    assert code == 0, output
    assert "Advarsel: handlingen er gemt, men breve kunne ikke sendes: OSError:" in output
    assert "Kør 'sagsflow outbox dispatch'." in output
    assert invoke(environment, "case", "list")[1].endswith("1 af 1 sag.\n")
