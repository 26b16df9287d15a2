"""`sagsflow validate` through typer's CliRunner, on the repository and on broken trees in tmp_path."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from cli.main import app
from tests.definitions.helpers import DEMO_FILE, HEADER, demo, write
from tests.helpers import REPOSITORY

runner = CliRunner()
PROBLEM_LINE = re.compile(r"^[\w./-]+:\d+:\d+: SF\d{3} .+$")


def broken_tree(root: Path) -> None:
    """Write a process with an unknown role (line 10) and an unknown letter (line 12)."""
    text = demo(
        """\
        steps:
          - insert_after: fact_assessment
            step: {id: extra, kind: task, role: inspector, label: {da: A, en: B}}
          - insert_after: extra
            step: {id: notice, kind: letter, letter: postcard, label: {da: A, en: B}}
        """
    )
    write(root, DEMO_FILE, text)


PROCESS_IDS = sorted(path.stem for path in (REPOSITORY / "processes").rglob("*.yaml"))


def test_repository_is_valid() -> None:
    result = runner.invoke(app, ["--lang", "en", "validate", "--root", str(REPOSITORY)])

    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"OK: {len(PROCESS_IDS)} processes and 6 skeletons are valid (0 warnings).\n"
        "Processes per skeleton: afgoerelse 142, ordningssag 1, puljesag 1, simpel 6, tilskud 26, tilsyn 76.\n"
    )


def test_repository_is_valid_in_danish() -> None:
    result = runner.invoke(app, ["validate", "--root", str(REPOSITORY)], env={"SAGSFLOW_LANGUAGE": "da"})

    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"OK: {len(PROCESS_IDS)} processer og 6 skeletter er gyldige (0 advarsler).\n"
        "Processer pr. skelet: afgoerelse 142, ordningssag 1, puljesag 1, simpel 6, tilskud 26, tilsyn 76.\n"
    )


def test_broken_tree_prints_problem_lines(root: Path) -> None:
    broken_tree(root)
    result = runner.invoke(app, ["--lang", "en", "validate", "--root", str(root)])
    lines = result.stdout.splitlines()

    assert result.exit_code == 1
    assert len(lines) == 2
    for line in lines:
        assert PROBLEM_LINE.match(line), line
    assert lines[0] == (
        f"{DEMO_FILE}:10:41: SF314 The role 'inspector' does not exist. Known roles: applicant, approver, caseworker."
    )
    assert lines[1].startswith(f"{DEMO_FILE}:12:46: SF310 The letter 'postcard' does not exist.")
    assert result.stderr == "2 errors and 0 warnings in 2 files.\n"


def test_broken_tree_in_danish_by_default(root: Path) -> None:
    broken_tree(root)
    result = runner.invoke(app, ["validate", "--root", str(root)], env={"SAGSFLOW_LANGUAGE": "da"})

    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == (
        f"{DEMO_FILE}:10:41: SF314 Rollen 'inspector' findes ikke. Kendte roller: applicant, approver, caseworker."
    )
    assert result.stderr == "2 fejl og 0 advarsler i 2 filer.\n"


def test_lang_option_overrides_configured_language(root: Path) -> None:
    broken_tree(root)
    result = runner.invoke(app, ["--lang", "en", "validate", "--root", str(root)], env={"SAGSFLOW_LANGUAGE": "da"})

    assert result.exit_code == 1
    assert "The role 'inspector' does not exist." in result.stdout
    assert "Rollen" not in result.stdout


def test_json_output(root: Path) -> None:
    broken_tree(root)
    result = runner.invoke(app, ["--lang", "en", "validate", "--root", str(root), "--format", "json"])
    report = json.loads(result.stdout)

    assert result.exit_code == 1
    assert report["valid"] is False
    assert report["files"] == 2
    assert report["processes"] == []
    assert [problem["code"] for problem in report["problems"]] == ["SF314", "SF310"]
    assert report["problems"][0] == {
        "file": DEMO_FILE,
        "line": 10,
        "column": 41,
        "code": "SF314",
        "name": "unknown-role",
        "severity": "error",
        "message": "The role 'inspector' does not exist.",
        "hint": "Known roles: applicant, approver, caseworker.",
    }


def test_json_output_on_repository() -> None:
    result = runner.invoke(app, ["validate", "--root", str(REPOSITORY), "--format", "json"])
    report = json.loads(result.stdout)

    assert result.exit_code == 0
    assert report == {
        "valid": True,
        "files": 6 + len(PROCESS_IDS),
        "processes": PROCESS_IDS,
        "by_skeleton": {"afgoerelse": 142, "ordningssag": 1, "puljesag": 1, "simpel": 6, "tilskud": 26, "tilsyn": 76},
        "problems": [],
    }


def test_warning_alone_passes(root: Path) -> None:
    write(root, "processes/tilladelser/demo.yaml", HEADER)
    result = runner.invoke(app, ["--lang", "en", "validate", "--root", str(root)])

    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "processes/tilladelser/demo.yaml:1:10: SF322 warning: The process 'demo' extends 'afgoerelse' but lives in "
        "the folder 'tilladelser'. Move the file to processes/afgoerelse/.",
        "OK: 1 process and 1 skeleton are valid (1 warning).",
    ]


def test_single_file_argument(root: Path) -> None:
    broken_tree(root)
    good = write(root, "processes/afgoerelse/good.yaml", HEADER.replace("process: demo", "process: good"))
    result = runner.invoke(app, ["--lang", "en", "validate", "--root", str(root), str(good)])

    assert result.exit_code == 0, result.output
    assert result.stdout == "OK: 1 process and 1 skeleton are valid (0 warnings).\n"


def test_unknown_format_is_rejected() -> None:
    result = runner.invoke(app, ["--lang", "en", "validate", "--root", str(REPOSITORY), "--format", "xml"])

    assert result.exit_code == 2
    assert result.stderr == "Error: --format must be text or json.\n"


def test_root_without_skeletons(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--lang", "en", "validate", "--root", str(tmp_path)])

    assert result.exit_code == 1
    assert result.stderr == f"Error: found no 'skeletons/' folder in {tmp_path} or above it. Use --root.\n"
