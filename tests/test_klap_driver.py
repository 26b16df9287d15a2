"""examples/drive_klap.py runs KLAP over real HTTP: permit, scheme case, bulk requests, a report, exports."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from engine.adapters.cvr import FakeCompanyRegister
from engine.adapters.digital_post import MailboxDigitalPost
from engine.adapters.species import OfflineSpeciesPlus
from engine.runtime.services import Services
from engine.service import Sagsflow
from tests.conftest import Clock
from tests.helpers import ADMIN, REPOSITORY
from tests.test_examples_driver import server_url, sqlite_only

__all__ = ["server_url"]  # the fixture, imported for the test below

PERMITS = REPOSITORY / "examples" / "klap" / "klap-tilladelser.csv"


def load_driver() -> ModuleType:
    examples = str(REPOSITORY / "examples")
    if examples not in sys.path:
        sys.path.insert(0, examples)
    spec = importlib.util.spec_from_file_location("drive_klap", REPOSITORY / "examples" / "drive_klap.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def services(tmp_path: Path, clock: Clock, species: OfflineSpeciesPlus, companies: FakeCompanyRegister) -> Services:
    """Letters go to a folder, as with `make run`, so the driver can read the report link from them."""
    post = MailboxDigitalPost(tmp_path / "post")
    return Services(species=species, companies=companies, digital_post=post, clock=clock)


@sqlite_only
def test_driver_runs_klap_end_to_end(
    server_url: str, service: Sagsflow, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, roles in (("karen", ["caseworker"]), ("bo", ["approver"]), ("lise", ["approver"])):
        service.add_user(ADMIN, name, roles, ["klap"])
    tokens = tmp_path / "demo-tokens.env"
    tokens.write_text(
        f"SAGSFLOW_CASEWORKER_TOKEN={service.create_token('karen')}\n"
        f"SAGSFLOW_APPROVER_TOKEN={service.create_token('bo')}\n"
        f"SAGSFLOW_APPROVER_2_TOKEN={service.create_token('lise')}\n"
        f"SAGSFLOW_APPLICANT_TOKEN={service.create_token('roedvig', ['applicant'])}\n",
        encoding="utf-8",
    )
    driver = load_driver()
    arguments = [str(PERMITS), "--url", server_url, "--tokens", str(tokens), "--wait", "20"]
    arguments += ["--post", str(tmp_path / "post"), "--output", str(tmp_path / "exports"), "--period", "2026"]

    code = driver.main(arguments)

    output = capsys.readouterr()
    assert code == 0, output.err
    permits = sum(1 for _ in csv.DictReader(PERMITS.open(encoding="utf-8")))
    assert f"{permits + 1} anmodninger og breve oprettet" in output.out
    assert f"Kørt igen: 0 nye, {permits + 1} fandtes allerede." in output.out
    assert "HTTP 409 (already_reported)" in output.out
    assert f"{permits + 1} anmodninger, 1 svar, {permits} mangler" in output.out
    rows = list(csv.DictReader((tmp_path / "exports" / "klap-2026.csv").open(encoding="utf-8-sig")))
    assert len(rows) == permits + 1
    assert sum(1 for row in rows if row["Status"] == "indberettet") == 1
    assert (tmp_path / "exports" / "klap-2026.xlsx").stat().st_size > 0
