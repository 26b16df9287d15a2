"""examples/drive_natura2000.py runs the example round over real HTTP, from pool case to reconciliation."""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest

from engine.service import Sagsflow
from tests.conftest import Clock
from tests.helpers import ADMIN, REPOSITORY
from tests.test_examples_driver import server_url, sqlite_only

__all__ = ["server_url"]  # the fixture, imported for the tests below

ROUND = REPOSITORY / "examples" / "natura2000" / "round-2027.json"


def load_driver() -> ModuleType:
    path = REPOSITORY / "examples" / "drive_natura2000.py"
    spec = importlib.util.spec_from_file_location("drive_natura2000", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("drive_natura2000", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def natura_tokens(service: Sagsflow, tmp_path: Path) -> Path:
    for name, roles in (("pia", ["caseworker"]), ("anna", ["approver"]), ("ole", ["approver"])):
        service.add_user(ADMIN, name, roles, ["natura"])
    lines = [
        f"SAGSFLOW_CASEWORKER_TOKEN={service.create_token('pia')}",
        f"SAGSFLOW_APPROVER_TOKEN={service.create_token('anna')}",
        f"SAGSFLOW_APPROVER_2_TOKEN={service.create_token('ole')}",
        f"SAGSFLOW_APPLICANT_TOKEN={service.create_token('gaard', ['applicant'])}",
    ]
    path = tmp_path / "demo-tokens.env"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@sqlite_only
def test_driver_runs_the_round_to_a_reconciled_pool(
    server_url: str, natura_tokens: Path, service: Sagsflow, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    # The driver dates the round from this machine's calendar, so the server must run on the real time.
    clock.now = datetime.now(UTC)
    driver = load_driver()

    code = driver.main([str(ROUND), "--url", server_url, "--tokens", str(natura_tokens), "--wait", "20"])

    output = capsys.readouterr()
    assert code == 0, output.err
    lines = output.out.splitlines()
    assert any("afvist ved modtagelsen" in line and "krydser" in line for line in lines)
    assert sum(1 for line in lines if "% af arealet i N" in line) == 10
    assert any("9 ansøgninger prioriteret: 5 inden for budgettet" in line for line in lines)
    assert sum(1 for line in lines if line.endswith("Tilsagn godkendt.")) == 5
    assert any("er godkendt af to godkendere" in line for line in lines)
    assert lines[-1].startswith("Puljen er afstemt: 10 sager og")
    pool = service.list_cases(ADMIN, "da", process_id="natura2000-puljesag")["items"][0]
    assert pool["phase"]["id"] == "commitments"


def test_driver_reports_a_missing_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    driver = load_driver()
    tokens = tmp_path / "tokens.env"
    tokens.write_text("SAGSFLOW_CASEWORKER_TOKEN=x\n", encoding="utf-8")

    code = driver.main([str(ROUND), "--tokens", str(tokens), "--lang", "en"])

    assert code == 1
    assert "lacks SAGSFLOW_APPLICANT_TOKEN" in capsys.readouterr().err
