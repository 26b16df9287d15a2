"""The admin CLI: database, deploy, tokens and cases, on a temporary SQLite database."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from engine.adapters.cvr import FakeCompanyRegister
from engine.adapters.digital_post import MemoryDigitalPost
from engine.adapters.species import OfflineSpeciesPlus
from engine.runtime.services import Services
from engine.service import Sagsflow
from engine.storage.database import Database
from tests.helpers import APPLICANT, REPOSITORY, example

runner = CliRunner()


@pytest.fixture
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    return {
        "SAGSFLOW_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "SAGSFLOW_DEFINITIONS": str(REPOSITORY),
        "SAGSFLOW_DIGITAL_POST_DIR": str(tmp_path / "post"),
        "SAGSFLOW_LANGUAGE": "da",
    }


def invoke(environment: dict[str, str], *arguments: str) -> tuple[int, str]:
    result = runner.invoke(app, list(arguments), env=environment)
    return result.exit_code, result.output


def test_upgrade_deploy_and_redeploy(environment: dict[str, str]) -> None:
    upgraded = invoke(environment, "db", "upgrade")
    first = invoke(environment, "deploy")
    second = invoke(environment, "deploy")

    assert upgraded == (0, "Databasen er på version 0001.\n")
    assert first[0] == 0
    assert "cites-import v1" in first[1]
    assert "1 nye versioner, 0 uændrede." in first[1]
    assert second[0] == 0
    assert "0 nye versioner, 1 uændrede." in second[1]


def test_changed_definition_deploys_new_version(environment: dict[str, str], tmp_path: Path) -> None:
    definitions = tmp_path / "definitions"
    shutil.copytree(REPOSITORY / "skeletons", definitions / "skeletons")
    shutil.copytree(REPOSITORY / "processes", definitions / "processes")
    environment = {**environment, "SAGSFLOW_DEFINITIONS": str(definitions)}
    invoke(environment, "db", "upgrade")
    invoke(environment, "deploy")
    process = definitions / "processes" / "afgoerelse" / "cites-import.yaml"
    process.write_text(
        process.read_text(encoding="utf-8").replace("{value: 8, unit: weeks}", "{value: 6, unit: weeks}"),
        encoding="utf-8",
    )

    code, output = invoke(environment, "deploy")

    assert code == 0
    assert "cites-import v2" in output


def test_deploy_of_broken_definitions_deploys_nothing(environment: dict[str, str], tmp_path: Path) -> None:
    definitions = tmp_path / "definitions"
    shutil.copytree(REPOSITORY / "skeletons", definitions / "skeletons")
    shutil.copytree(REPOSITORY / "processes", definitions / "processes")
    broken = definitions / "processes" / "afgoerelse" / "broken.yaml"
    broken.write_text("process: broken\nextends: afgoerelse\ntitle: {da: X, en: X}\n", encoding="utf-8")
    invoke(environment, "db", "upgrade")

    code, output = invoke({**environment, "SAGSFLOW_DEFINITIONS": str(definitions)}, "deploy")
    listed = invoke(environment, "case", "list")

    assert code == 1
    assert "processes/afgoerelse/broken.yaml:1:1: SF201" in output
    assert "legal_basis" in output
    assert listed == (0, "Ingen sager.\n")
    database = Database(environment["SAGSFLOW_DATABASE_URL"])
    service = Sagsflow(database, Services(OfflineSpeciesPlus(), FakeCompanyRegister(), MemoryDigitalPost()))
    assert service.list_processes("da") == []
    database.dispose()


def test_token_create_prints_token(environment: dict[str, str]) -> None:
    invoke(environment, "db", "upgrade")

    code, output = invoke(environment, "token", "create", "karen", "--role", "caseworker")

    assert code == 0
    assert output.startswith("sf_")


def test_token_create_rejects_bad_role(environment: dict[str, str]) -> None:
    invoke(environment, "db", "upgrade")

    code, output = invoke(environment, "token", "create", "karen", "--role", "Case Worker")

    assert code == 1
    assert "Rollen 'Case Worker' er ugyldig" in output


def test_token_demo_writes_env_file(environment: dict[str, str], tmp_path: Path) -> None:
    invoke(environment, "db", "upgrade")

    code, _ = invoke(environment, "token", "demo")

    lines = (tmp_path / "var" / "demo-tokens.env").read_text(encoding="utf-8").splitlines()
    assert code == 0
    assert [line.split("=")[0] for line in lines] == [
        "SAGSFLOW_CASEWORKER_TOKEN",
        "SAGSFLOW_APPROVER_TOKEN",
        "SAGSFLOW_APPLICANT_TOKEN",
    ]


def test_case_list_and_show(environment: dict[str, str]) -> None:
    invoke(environment, "db", "upgrade")
    invoke(environment, "deploy")
    database = Database(environment["SAGSFLOW_DATABASE_URL"])
    service = Sagsflow(database, Services(OfflineSpeciesPlus(), FakeCompanyRegister(), MemoryDigitalPost()))
    application = example("01")
    case = service.submit(APPLICANT, application["process"], application["data"], "da")
    database.dispose()

    listed = invoke(environment, "case", "list")
    shown = invoke(environment, "case", "show", case["journal_number"])
    english = invoke(environment, "--lang", "en", "case", "show", str(case["id"]))

    assert listed[0] == 0
    assert case["journal_number"] in listed[1]
    assert "1 af 1 sager." in listed[1]
    assert shown[0] == 0
    assert "[x] receipt/receipt_letter: Send kvittering" in shown[1]
    assert "[ ] screening/completeness_check" in shown[1]
    assert "1. Ansøgning: CITES-importtilladelse (filed)" in shown[1]
    assert "Checklist:" in english[1]


def test_case_show_unknown_exits_1(environment: dict[str, str]) -> None:
    invoke(environment, "db", "upgrade")

    code, output = invoke(environment, "case", "show", "2026-123456")

    assert code == 1
    assert "Fejl: Sagen '2026-123456' findes ikke." in output


def test_bad_database_url_is_clean_error(environment: dict[str, str]) -> None:
    code, output = invoke({**environment, "SAGSFLOW_DATABASE_URL": "mysql://nobody@nowhere/db"}, "case", "list")

    assert code == 1
    assert "Databasen 'mysql' understøttes ikke" in output
    assert "Traceback" not in output


def test_unmigrated_database_is_reported(environment: dict[str, str]) -> None:
    code, output = invoke(environment, "case", "list")

    assert code == 1
    assert "Kør 'sagsflow db upgrade'" in output


def test_case_list_rejects_unknown_status(environment: dict[str, str]) -> None:
    invoke(environment, "db", "upgrade")

    code, output = invoke(environment, "case", "list", "--status", "foo")

    assert code == 2
    assert "foo" in output
