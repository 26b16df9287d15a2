"""examples/drive_cites.py against a real uvicorn server, for every example application.

The driver talks HTTP through urllib, so these tests serve the app with uvicorn in a
thread on a free 127.0.0.1 port instead of using the TestClient. They run on SQLite
only: the PostgreSQL path of the same lifecycle is covered by tests/test_cites_http.py.
"""

from __future__ import annotations

import importlib.util
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import uvicorn

from api.app import create_app
from engine.adapters.digital_post import MemoryDigitalPost
from engine.auth import Actor
from engine.service import Sagsflow
from engine.settings import Settings
from tests.helpers import EXAMPLES, REPOSITORY, Tokens

DRIVER_PATH = REPOSITORY / "examples" / "drive_cites.py"
SERVER_START_TIMEOUT_SECONDS = 10.0
OPERATOR = Actor("test-operator", frozenset({"admin"}))

# Overrides the `database` fixture's sqlite/postgresql parameters for one test.
sqlite_only = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


def load_driver() -> ModuleType:
    """Import examples/drive_cites.py, which is a script and not part of a package."""
    spec = importlib.util.spec_from_file_location("drive_cites", DRIVER_PATH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


driver = load_driver()


def write_tokens(path: Path, caseworker: str, approver: str, applicant: str) -> Path:
    path.write_text(
        f"SAGSFLOW_CASEWORKER_TOKEN={caseworker}\nSAGSFLOW_APPROVER_TOKEN={approver}\n"
        f"SAGSFLOW_APPLICANT_TOKEN={applicant}\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def server_url(service: Sagsflow) -> Iterator[str]:
    """Serve the API for `service` with uvicorn in a thread and yield its base URL."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(service, Settings()), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()

    deadline = time.monotonic() + SERVER_START_TIMEOUT_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            listener.close()
            pytest.fail(f"uvicorn did not start on port {port} within {SERVER_START_TIMEOUT_SECONDS} s")
        time.sleep(0.02)

    yield f"http://127.0.0.1:{port}"

    server.should_exit = True
    thread.join(timeout=SERVER_START_TIMEOUT_SECONDS)
    listener.close()


@pytest.fixture
def tokens_file(tokens: Tokens, tmp_path: Path) -> Path:
    return write_tokens(tmp_path / "demo-tokens.env", tokens.caseworker, tokens.approver, tokens.applicant)


@sqlite_only
@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.json")), ids=lambda path: path.stem)
def test_driver_closes_example_case(
    example: Path,
    server_url: str,
    tokens_file: Path,
    service: Sagsflow,
    post: MemoryDigitalPost,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = driver.main([str(example), "--url", server_url, "--tokens", str(tokens_file)])

    output = capsys.readouterr()
    assert code == 0, output.err
    assert output.err == ""
    cases = service.list_cases(OPERATOR, "da")
    assert cases["total"] == 1
    case = service.get_case(OPERATOR, cases["items"][0]["id"], "da")
    assert case["phase"]["id"] == "closed"
    assert case["status"] == "closed"

    opinion = next(step for step in case["checklist"] if step["step"] == "scientific_opinion")
    assert opinion["status"] == ("done" if case["data"]["eu_annex"] == "A" else "skipped")

    letters = service.list_letters(OPERATOR, case["id"])
    decisions = [letter for letter in letters if letter["letter"] == "decision"]
    assert len(decisions) == 1
    decision = decisions[0]
    assert decision["status"] == "sent"
    assert f"letter:{case['journal_number']}:{decision['number']}" in post.delivered
    assert case["data"]["species"] in decision["text"]
    assert "\nBegrundelse\n\n" in decision["text"]
    assert decision["text"].rstrip() in output.out
    assert "closing_check" in output.out.splitlines()[-1]


@sqlite_only
def test_driver_reports_four_eyes_rejection(
    server_url: str, tokens: Tokens, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # One user acts as caseworker and approver, so the server rejects the approval of their own draft.
    tokens_file = write_tokens(tmp_path / "tokens.env", tokens.both, tokens.both, tokens.applicant)

    code = driver.main([str(EXAMPLES / "01-kongepython.json"), "--url", server_url, "--tokens", str(tokens_file)])

    output = capsys.readouterr()
    assert code == 1
    assert "HTTP 403 (four_eyes)" in output.err
    assert "fire-øjne-princippet" in output.err
    assert "Traceback" not in output.err


@sqlite_only
def test_driver_reports_rejected_token_in_english(
    server_url: str, tokens: Tokens, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tokens_file = write_tokens(tmp_path / "tokens.env", tokens.caseworker, tokens.approver, "sf_not-a-real-token")

    code = driver.main(
        [str(EXAMPLES / "01-kongepython.json"), "--url", server_url, "--tokens", str(tokens_file), "--lang", "en"]
    )

    output = capsys.readouterr()
    assert code == 1
    assert "POST /cases returned HTTP 401 (unauthorized)" in output.err
    assert "Missing or invalid access token" in output.err
    assert output.out == ""


def test_driver_reports_unreachable_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    tokens_file = write_tokens(tmp_path / "tokens.env", "sf_a", "sf_b", "sf_c")

    code = driver.main(
        [str(EXAMPLES / "01-kongepython.json"), "--url", f"http://127.0.0.1:{port}", "--tokens", str(tokens_file)]
    )

    output = capsys.readouterr()
    assert code == 1
    assert f"kan ikke forbinde til http://127.0.0.1:{port}" in output.err
    assert "Traceback" not in output.err


def test_driver_reports_missing_tokens_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "absent.env"

    code = driver.main([str(EXAMPLES / "01-kongepython.json"), "--tokens", str(missing)])

    output = capsys.readouterr()
    assert code == 1
    assert f"nøglefilen {missing} findes ikke" in output.err
