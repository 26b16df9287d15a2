"""`sagsflow portfolio`: the process map by skeleton, priority and deployment status."""

from __future__ import annotations

import csv
import io
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from engine.definitions.loader import load_definitions
from engine.portfolio import portfolio_rows, to_csv
from tests.helpers import FIRST_OF_A_KIND, REPOSITORY

runner = CliRunner()


@pytest.fixture
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    root = tmp_path / "definitions"
    shutil.copytree(REPOSITORY / "skeletons", root / "skeletons")
    for name in FIRST_OF_A_KIND:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPOSITORY / name, root / name)
        folder = (REPOSITORY / name).with_suffix("")
        if folder.is_dir():
            shutil.copytree(folder, (root / name).with_suffix(""))
    monkeypatch.chdir(tmp_path)
    return {
        "SAGSFLOW_DATABASE_URL": f"sqlite:///{tmp_path / 'portfolio.db'}",
        "SAGSFLOW_DEFINITIONS": str(root),
        "SAGSFLOW_CACHE_DIR": str(tmp_path / "cache"),
        "SAGSFLOW_DIGITAL_POST_DIR": str(tmp_path / "post"),
        "SAGSFLOW_LANGUAGE": "da",
    }


def invoke(environment: dict[str, str], *arguments: str) -> tuple[int, str]:
    result = runner.invoke(app, list(arguments), env=environment)
    return result.exit_code, result.output


def test_status_follows_deployment_and_changes(environment: dict[str, str]) -> None:
    root = Path(environment["SAGSFLOW_DEFINITIONS"])
    assert invoke(environment, "db", "upgrade")[0] == 0

    code, before = invoke(environment, "--lang", "en", "portfolio")
    assert code == 0, before
    assert before.count("not deployed") == len(FIRST_OF_A_KIND)
    assert "afgoerelse (afgoerelse): 2 processes, 0 deployed" in before
    assert "puljesag (tilskud): 1 process, 0 deployed" in before
    assert "Priority 1 (first)" in before

    assert invoke(environment, "deploy")[0] == 0
    path = root / "processes" / "afgoerelse" / "klap-tilladelse.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("cases_per_year: 60", "cases_per_year: 75"), "utf-8")
    code, after = invoke(environment, "--lang", "en", "portfolio", "--json")
    assert code == 0, after

    statuses = {row["process"]: row["status"] for row in json.loads(after)}
    assert statuses.pop("klap-tilladelse") == "changed"
    assert set(statuses.values()) == {"deployed"}


def test_csv_export(environment: dict[str, str], tmp_path: Path) -> None:
    assert invoke(environment, "db", "upgrade")[0] == 0
    target = tmp_path / "portfolio.csv"

    code, output = invoke(environment, "portfolio", "--csv", str(target))

    assert code == 0, output
    data = target.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert sorted(row["process"] for row in rows) == sorted(Path(name).stem for name in FIRST_OF_A_KIND)
    cites = next(row for row in rows if row["process"] == "cites-import")
    assert cites["priority"] == "1"
    assert cites["hours_saved_per_year"] == str(round(3200 * 25 / 60))
    assert cites["status"] == "not_deployed"
    assert cites["title_en"] == "CITES import permit"


def test_csv_cells_that_look_like_formulas_stay_text() -> None:
    compiled = load_definitions(REPOSITORY, [REPOSITORY / FIRST_OF_A_KIND[0]]).compiled.values()
    (row,) = portfolio_rows(compiled, {})
    tampered = replace(row, title={"da": '=HYPERLINK("http://x")', "en": "@SUM(A1)"})

    text = to_csv([tampered]).decode("utf-8-sig")

    assert "'=HYPERLINK" in text
    assert "'@SUM(A1)" in text


def test_invalid_definitions_stop_the_map(environment: dict[str, str]) -> None:
    root = Path(environment["SAGSFLOW_DEFINITIONS"])
    path = root / "processes" / "afgoerelse" / "cites-import.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("type: species", "type: art"), "utf-8")

    code, output = invoke(environment, "--lang", "en", "portfolio")

    assert code == 1
    assert "errors in the definitions; run 'sagsflow validate' first." in output


def test_csv_to_a_missing_folder_fails_clearly(environment: dict[str, str], tmp_path: Path) -> None:
    assert invoke(environment, "db", "upgrade")[0] == 0

    code, output = invoke(environment, "--lang", "en", "portfolio", "--csv", str(tmp_path / "missing" / "x.csv"))

    assert code == 1
    assert "Error: Could not write" in output
    assert "Traceback" not in output
