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
from engine.storage.migrate import head_revision
from tests.helpers import APPLICANT, REPOSITORY, example

runner = CliRunner()


@pytest.fixture
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    return {
        "SAGSFLOW_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "SAGSFLOW_DEFINITIONS": str(REPOSITORY),
        "SAGSFLOW_DIGITAL_POST_DIR": str(tmp_path / "post"),
        # Shared by the tests, so that the definitions are loaded from the files once.
        "SAGSFLOW_CACHE_DIR": str(REPOSITORY / "var" / "cache"),
        "SAGSFLOW_LANGUAGE": "da",
    }


def invoke(environment: dict[str, str], *arguments: str) -> tuple[int, str]:
    result = runner.invoke(app, list(arguments), env=environment)
    return result.exit_code, result.output


# The shipped processes, as `deploy` and the error for an unknown process list them.
PROCESS_IDS = sorted(path.stem for path in (REPOSITORY / "processes").rglob("*.yaml"))


def test_upgrade_deploy_and_redeploy(environment: dict[str, str]) -> None:
    upgraded = invoke(environment, "db", "upgrade")
    first = invoke(environment, "deploy")
    second = invoke(environment, "deploy")

    newest = head_revision(Database(environment["SAGSFLOW_DATABASE_URL"]))
    assert upgraded == (0, f"Databasen er på version {newest}.\n")
    assert first[0] == 0
    assert "cites-import v1" in first[1]
    assert "natura2000-puljesag v1" in first[1]
    assert f"{len(PROCESS_IDS)} nye versioner, 0 uændrede." in first[1]
    assert second[0] == 0
    assert f"0 nye versioner, {len(PROCESS_IDS)} uændrede." in second[1]


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
        "SAGSFLOW_APPROVER_2_TOKEN",
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
    assert "1 af 1 sag." in listed[1]
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


def test_show_marks_origins(environment: dict[str, str]) -> None:
    code, output = invoke(environment, "show", "cites-import")

    assert code == 0
    assert "cites-import: CITES-importtilladelse" in output
    assert "  [S] applicant_name*: text, application, Ansøgers navn" in output
    assert "  [S→P] applicant_cvr*: cvr, application, CVR-nummer" in output
    assert "      [P] species_lookup: Slå arten op i Species+  (handling species_plus_lookup; -)" in output
    assert "            kun når: eu_annex == 'A'" in output
    assert "      → fact_finding  når application_complete" in output


def test_show_unknown_process(environment: dict[str, str]) -> None:
    code, output = invoke(environment, "--lang", "en", "show", "cites-udfoer")

    assert code == 1
    assert (
        "Error: the process 'cites-udfoer' does not exist. Known processes: " + ", ".join(PROCESS_IDS) + "." in output
    )


def test_diagram_mermaid_and_dot(environment: dict[str, str]) -> None:
    mermaid = invoke(environment, "diagram", "cites-import")
    dot = invoke(environment, "diagram", "cites-import", "--format", "dot")

    assert mermaid[1].startswith("stateDiagram-v2\n  [*] --> receipt\n")
    assert "  screening --> fact_finding: application_complete\n" in mermaid[1]
    assert "  closed --> [*]\n" in mermaid[1]
    assert dot[1].startswith('digraph "cites-import" {')
    assert '"screening" -> "fact_finding" [label="application_complete"];' in dot[1]
    assert dot[1].rstrip().endswith("}")


def test_fmt_normalises_and_keeps_comments(environment: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "messy.yaml"
    path.write_text(
        "# A comment that stays\nprocess: demo\nlegal_basis:\n- title: {da: Lov, en: Act}\n  reference: x\n"
    )

    checked = invoke(environment, "fmt", "--check", str(path))
    fixed = invoke(environment, "fmt", str(path))
    again = invoke(environment, "fmt", "--check", str(path))

    assert checked[0] == 1
    assert fixed[0] == 0
    assert path.read_text() == (
        "# A comment that stays\nprocess: demo\nlegal_basis:\n  - title: {da: Lov, en: Act}\n    reference: x\n"
    )
    assert again[0] == 0


def test_fmt_refuses_broken_yaml(environment: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("process: demo\nprocess: again\n")

    code, output = invoke(environment, "fmt", str(path))

    assert code == 1
    assert "SF101" in output
    assert path.read_text() == "process: demo\nprocess: again\n"


def test_shipped_definitions_are_formatted(environment: dict[str, str]) -> None:
    code, output = invoke(environment, "fmt", "--check", str(REPOSITORY / "skeletons"), str(REPOSITORY / "processes"))

    assert code == 0, output


def test_diff_and_migrate_cases(environment: dict[str, str], tmp_path: Path) -> None:
    definitions = tmp_path / "definitions"
    shutil.copytree(REPOSITORY / "skeletons", definitions / "skeletons")
    shutil.copytree(REPOSITORY / "processes", definitions / "processes")
    changed = {**environment, "SAGSFLOW_DEFINITIONS": str(definitions)}
    invoke(changed, "db", "upgrade")
    invoke(changed, "deploy")
    database = Database(environment["SAGSFLOW_DATABASE_URL"])
    service = Sagsflow(database, Services(OfflineSpeciesPlus(), FakeCompanyRegister(), MemoryDigitalPost()))
    application = example("01")
    case = service.submit(APPLICANT, application["process"], application["data"], "da")
    database.dispose()
    process = definitions / "processes" / "afgoerelse" / "cites-import.yaml"
    process.write_text(
        process.read_text(encoding="utf-8").replace(
            "  - insert_after: export_permit_check\n",
            "  - remove: consultation\n  - insert_after: export_permit_check\n",
        ),
        encoding="utf-8",
    )
    invoke(changed, "deploy")

    diff = invoke(changed, "diff", "cites-import", "1", "2")
    dry = invoke(changed, "migrate-cases", "cites-import", "--to", "2", "--dry-run")
    moved = invoke(changed, "migrate-cases", "cites-import", "--to", "2")
    shown = invoke(changed, "case", "show", case["journal_number"])

    assert diff == (0, "- step consultation\n1 ændring.\n")
    assert dry[0] == 0
    assert f"{case['journal_number']}  v1 → v2  screening  ok" in dry[1]
    assert moved[0] == 0
    assert "1 sag flyttet." in moved[1]
    assert "(cites-import v2)" in shown[1]


def test_migrate_cases_unknown_version(environment: dict[str, str]) -> None:
    invoke(environment, "db", "upgrade")
    invoke(environment, "deploy")

    code, output = invoke(environment, "migrate-cases", "cites-import", "--to", "9")

    assert code == 1
    assert "Processen 'cites-import' har ingen version 9." in output
    assert "Udrullede versioner: 1." in output


def test_serve_rejects_port_out_of_range(environment: dict[str, str]) -> None:
    code, output = invoke(environment, "serve", "--port", "99999")

    assert code == 2
    assert "65535" in output
    assert "Traceback" not in output


def test_unknown_language_is_rejected(environment: dict[str, str]) -> None:
    code, output = invoke(environment, "--lang", "xx", "validate")

    assert code == 2
    assert "Ukendt sprog 'xx'; brug da eller en." in output
