"""`sagsflow scheme`: members, import, the bulk run with its progress bar, the overview and the exports."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from engine.service import Sagsflow
from engine.storage.database import Database
from tests.helpers import ADMIN, REPOSITORY
from tests.scheme_helpers import Klap, open_scheme, permit_row, permits_csv

runner = CliRunner()
POPULATION = REPOSITORY / "examples" / "klap" / "klap-tilladelser.csv"


@pytest.fixture
def scheme(service: Sagsflow) -> Klap:
    service.add_user(ADMIN, "sigrid", ["caseworker"], ["klap"])
    service.add_user(ADMIN, "bo", ["approver"], ["klap"])
    return open_scheme(service)


@pytest.fixture
def environment(database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    return {
        "SAGSFLOW_DATABASE_URL": database.url,
        "SAGSFLOW_DEFINITIONS": str(REPOSITORY),
        "SAGSFLOW_DIGITAL_POST_DIR": str(tmp_path / "post"),
        "SAGSFLOW_LANGUAGE": "da",
    }


def invoke(environment: dict[str, str], *arguments: str) -> tuple[int, str]:
    result = runner.invoke(app, list(arguments), env=environment)
    return result.exit_code, result.output


def test_import_and_bulk_run_of_the_example_population(environment: dict[str, str], scheme: Klap) -> None:
    imported = invoke(environment, "scheme", "import", scheme.journal_number, str(POPULATION), "--as", "sigrid")
    first = invoke(environment, "scheme", "requests", scheme.journal_number, "--period", "2026", "--as", "sigrid")
    again = invoke(
        environment, "--lang", "en", "scheme", "requests", scheme.journal_number, "--period", "2026", "--as", "sigrid"
    )

    assert imported == (0, f"210 rækker indlæst i {scheme.journal_number}: 210 nye, 0 opdateret.\n")
    assert first[0] == 0, first[1]
    assert "Opretter anmodninger" in first[1]
    summary = "210 nye anmodninger for 2026 (0 fandtes i forvejen, 210 aktive medlemmer). Svarfrist: 2027-02-01."
    assert summary in first[1]
    assert again == (
        0,
        "0 new requests for 2026 (210 existed already, 210 active members). Reply by: 2027-02-01.\n",
    )


def test_members_and_overview(environment: dict[str, str], scheme: Klap) -> None:
    scheme.add_members(2)
    invoke(environment, "scheme", "requests", scheme.journal_number, "--period", "2026", "--as", "sigrid")

    members = invoke(environment, "scheme", "members", scheme.journal_number)
    overview = invoke(environment, "--lang", "en", "scheme", "overview", scheme.journal_number, "--period", "2026")

    assert members[0] == 0
    first_line = members[1].splitlines()[0]
    assert first_line.split() == ["KLAP-2024-00001", "-", "aktiv", "Havneselskab", "nr.", "1", "A/S"]
    assert members[1].endswith("Viser 2 af 2 medlemmer.\n")
    assert overview[0] == 0
    lines = overview[1].splitlines()
    assert lines[0] == f"{scheme.journal_number} KLAP-tilladelser: 2 active members, 0 left."
    assert lines[2].split() == ["2026", "2", "0", "2", "0", "0", "2027-02-01"]
    assert lines[3].split()[2] == "awaiting"


def test_export_writes_a_file_once(environment: dict[str, str], scheme: Klap, tmp_path: Path) -> None:
    scheme.add_members(1)
    invoke(environment, "scheme", "requests", scheme.journal_number, "--period", "2026", "--as", "sigrid")

    written = invoke(environment, "scheme", "export", scheme.journal_number, "--period", "2026", "--format", "xlsx")
    again = invoke(environment, "scheme", "export", scheme.journal_number, "--period", "2026", "--format", "xlsx")

    name = f"ordningssag-{scheme.journal_number}-2026.xlsx"
    assert written == (0, f"Gemt i {name}.\n")
    assert (tmp_path / name).read_bytes()[:2] == b"PK"
    assert again[0] == 1
    assert "findes allerede; brug --force" in again[1]


def test_import_errors_name_the_lines(environment: dict[str, str], scheme: Klap, tmp_path: Path) -> None:
    file = tmp_path / "permits.csv"
    file.write_bytes(permits_csv([permit_row(1), permit_row(2, applicant_cvr="12345678")]))

    code, output = invoke(environment, "scheme", "import", scheme.journal_number, str(file), "--as", "sigrid")

    assert code == 1
    assert "  lines.3.applicant_cvr: Linje 3: " in output


def test_bulk_run_needs_a_caseworker(environment: dict[str, str], scheme: Klap) -> None:
    scheme.add_members(1)

    code, output = invoke(environment, "scheme", "requests", scheme.journal_number, "--period", "2026", "--as", "bo")

    assert code == 1
    assert "Kun en sagsbehandler kan ændre ordningens medlemmer og sende anmodninger." in output


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--reply-by", "1. februar"], "--reply-by skal være en dato"),
        (["--chunk-size", "0"], "chunk-size"),
    ],
)
def test_bulk_run_rejects_malformed_options(
    environment: dict[str, str], scheme: Klap, arguments: list[str], message: str
) -> None:
    code, output = invoke(
        environment, "scheme", "requests", scheme.journal_number, "--period", "2026", "--as", "sigrid", *arguments
    )

    assert code == 2
    assert message in output
