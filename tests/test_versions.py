"""Versions: a changed definition deploys as a new version, running cases stay, and can be moved."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from engine.definitions.loader import LoadedDefinitions, load_definitions
from engine.definitions.model import ResolvedProcess
from engine.errors import BadRequest, Conflict
from engine.service import Sagsflow
from engine.storage.tables import CaseEvent
from engine.versions import diff_definitions, load_version, migrate_cases, parse_mapping
from tests.conftest import Clock
from tests.helpers import APPLICANT, CASEWORKER, FIRST_OF_A_KIND, REPOSITORY, example

RENAMED_SCREENING = """\
  - replace: completeness_check
    step:
      id: completeness_review
      kind: task
      role: caseworker
      label: {da: Gennemgå ansøgningen, en: Review the application}
      form:
        - field: application_complete
          required: true
        - field: missing_information
          required_if: not application_complete
"""


@pytest.fixture
def definitions_copy(tmp_path: Path) -> Path:
    root = tmp_path / "definitions"
    shutil.copytree(REPOSITORY / "skeletons", root / "skeletons")
    shutil.copytree(REPOSITORY / "processes", root / "processes")
    return root


def changed_definitions(root: Path) -> LoadedDefinitions:
    path = root / "processes" / "afgoerelse" / "cites-import.yaml"
    text = path.read_text(encoding="utf-8")
    assert text.count("\nsteps:\n") == 1
    path.write_text(text.replace("\nsteps:\n", "\nsteps:\n" + RENAMED_SCREENING), encoding="utf-8")
    # The processes the `service` fixture deploys, so that only the changed one is new.
    loaded = load_definitions(root, [root / name for name in FIRST_OF_A_KIND])
    assert not loaded.errors, [problem.format("en") for problem in loaded.errors]
    return loaded


_submitted = iter(range(1_000_000))


def submit(service: Sagsflow) -> int:
    application = example("01", next(_submitted))
    case_id: int = service.submit(APPLICANT, application["process"], application["data"], "da")["id"]
    return case_id


def test_changed_definition_is_new_version_and_cases_stay(service: Sagsflow, definitions_copy: Path) -> None:
    case_id = submit(service)

    results = service.deploy(changed_definitions(definitions_copy), "test")
    case = service.get_case(CASEWORKER, case_id, "da")
    newer = submit(service)

    assert {result.process_id: (result.version, result.created) for result in results}["cites-import"] == (2, True)
    assert [result.process_id for result in results if result.created] == ["cites-import"]
    assert case["process"]["version"] == 1
    assert case["active_steps"] == ["completeness_check"]
    assert service.get_case(CASEWORKER, newer, "da")["active_steps"] == ["completeness_review"]


def test_diff_names_the_change(service: Sagsflow, definitions_copy: Path) -> None:
    service.deploy(changed_definitions(definitions_copy), "test")

    with service.database.read() as session:
        old = ResolvedProcess.model_validate(load_version(session, "cites-import", 1).definition)
        new = ResolvedProcess.model_validate(load_version(session, "cites-import", 2).definition)
    changes = [str(change) for change in diff_definitions(old, new)]

    assert changes == ["- step completeness_check", "+ step completeness_review"]


def test_migration_without_mapping_changes_nothing(service: Sagsflow, definitions_copy: Path, clock: Clock) -> None:
    case_id = submit(service)
    service.deploy(changed_definitions(definitions_copy), "test")
    before = service.get_case(CASEWORKER, case_id, "da")

    with pytest.raises(Conflict) as refused, service.database.write() as session:
        migrate_cases(session, "cites-import", 2, {}, clock(), "admin", dry_run=False)
    after = service.get_case(CASEWORKER, case_id, "da")

    assert refused.value.code == "unmapped_cases"
    assert "--map completeness_check=" in refused.value.text.en
    assert after == before


def test_dry_run_reports_and_changes_nothing(service: Sagsflow, definitions_copy: Path, clock: Clock) -> None:
    case_id = submit(service)
    service.deploy(changed_definitions(definitions_copy), "test")

    with service.database.write() as session:
        report = migrate_cases(
            session, "cites-import", 2, {"completeness_check": "completeness_review"}, clock(), "admin", dry_run=True
        )

    assert not report.applied
    assert report.moves[0].renamed_steps == {"completeness_check": "completeness_review"}
    assert service.get_case(CASEWORKER, case_id, "da")["process"]["version"] == 1


def test_migration_moves_case_and_audits(service: Sagsflow, definitions_copy: Path, clock: Clock) -> None:
    case_id = submit(service)
    service.deploy(changed_definitions(definitions_copy), "test")
    before = service.get_case(CASEWORKER, case_id, "da")

    with service.database.write() as session:
        report = migrate_cases(
            session, "cites-import", 2, {"completeness_check": "completeness_review"}, clock(), "admin", dry_run=False
        )
    moved = service.get_case(CASEWORKER, case_id, "da")
    continued = service.complete_step(
        CASEWORKER, case_id, "completeness_review", {"application_complete": True}, moved["version"], "da"
    )

    assert report.applied
    assert moved["process"]["version"] == 2
    assert moved["version"] == before["version"] + 1
    assert moved["active_steps"] == ["completeness_review"]
    assert continued["phase"]["id"] == "fact_finding"
    with service.database.read() as session:
        event = session.scalars(
            select(CaseEvent).where(CaseEvent.case_id == case_id, CaseEvent.command == "migrate_case")
        ).one()
    assert event.changes["process_version"] == [1, 2]
    assert event.changes["renamed_steps"] == {"completeness_check": "completeness_review"}


def test_unchanged_redeploy_keeps_version(service: Sagsflow, definitions: LoadedDefinitions) -> None:
    results = service.deploy(definitions, "test")

    assert {(result.version, result.created) for result in results} == {(1, False)}
    assert len(results) == len(definitions.compiled)


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (["a=b", "a=c"], "'a' is mapped twice"),
        (["a=b=c"], "is not a mapping"),
        (["=b"], "is not a mapping"),
    ],
)
def test_bad_mapping_text_is_refused(pairs: list[str], message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        parse_mapping(pairs)


def test_mapping_with_unknown_ids_is_refused(service: Sagsflow, definitions_copy: Path, clock: Clock) -> None:
    submit(service)
    service.deploy(changed_definitions(definitions_copy), "test")

    with pytest.raises(BadRequest, match="'typo' in --map typo=completeness_review"), service.database.write() as s:
        migrate_cases(s, "cites-import", 2, {"typo": "completeness_review"}, clock(), "admin", dry_run=True)
    with (
        pytest.raises(BadRequest, match="'nowhere' in --map completeness_check=nowhere"),
        service.database.write() as s,
    ):
        migrate_cases(s, "cites-import", 2, {"completeness_check": "nowhere"}, clock(), "admin", dry_run=True)


def test_mapping_to_step_of_another_phase_names_it(service: Sagsflow, definitions_copy: Path, clock: Clock) -> None:
    submit(service)
    service.deploy(changed_definitions(definitions_copy), "test")

    with service.database.write() as session:
        report = migrate_cases(
            session, "cites-import", 2, {"completeness_check": "draft_decision"}, clock(), "admin", dry_run=True
        )

    assert (
        "is mapped to 'draft_decision', which is not a step of the phase 'screening'"
        in report.refused[0].problems[0].en
    )
