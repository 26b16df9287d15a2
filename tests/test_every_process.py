"""Every shipped process runs: a case built from its own field schema reaches a final phase.

All definitions are deployed once per test worker into a database of its own, and each
process gets one case that `tests/process_driver.py` drives to a final phase. Every
process runs on SQLite. A sample (every skeleton's first process and one in eight of the
rest) runs on PostgreSQL too, in a schema of its own.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from engine.adapters.cvr import FakeCompanyRegister
from engine.adapters.digital_post import MemoryDigitalPost
from engine.adapters.species import OfflineSpeciesPlus
from engine.definitions.cache import load_cached
from engine.definitions.loader import LoadedDefinitions
from engine.runtime.services import Services
from engine.service import Sagsflow
from engine.storage.database import Database
from tests.conftest import POSTGRES_URL, Clock, migrated_schema, schema_url
from tests.helpers import REPOSITORY
from tests.process_driver import ProcessDriver

# A process's id is its file name (SF322 checks it), so the tests are known before loading.
PROCESS_FILES = {path.stem: path for path in sorted((REPOSITORY / "processes").glob("*/*.yaml"))}
PROCESS_IDS = sorted(PROCESS_FILES)
FIRST_OF_EACH_FOLDER = {
    min(path.stem for path in PROCESS_FILES.values() if path.parent == folder)
    for folder in {path.parent for path in PROCESS_FILES.values()}
}
SAMPLE = sorted(FIRST_OF_EACH_FOLDER | set(PROCESS_IDS[::8]))


@pytest.fixture(scope="module")
def loaded() -> LoadedDefinitions:
    definitions, _ = load_cached(REPOSITORY, None, REPOSITORY / "var" / "cache")
    return definitions


def _driver(database: Database, definitions: LoadedDefinitions) -> ProcessDriver:
    clock = Clock()
    services = Services(
        species=OfflineSpeciesPlus(),
        companies=FakeCompanyRegister(),
        digital_post=MemoryDigitalPost(),
        clock=clock,
    )
    service = Sagsflow(database, services)
    # The valid processes only, so that one broken file fails its own test and
    # test_definitions_are_valid, not the test of every other process.
    service.deploy(replace(definitions, problems=definitions.warnings), "test")
    return ProcessDriver(service, definitions.compiled, clock)


@pytest.fixture(scope="module")
def on_sqlite(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path, loaded: LoadedDefinitions
) -> Iterator[ProcessDriver]:
    path = tmp_path_factory.mktemp("every") / "sagsflow.db"
    shutil.copy(sqlite_template, path)
    database = Database(f"sqlite:///{path}")
    yield _driver(database, loaded)
    database.dispose()


@pytest.fixture(scope="module")
def on_postgresql(loaded: LoadedDefinitions) -> Iterator[ProcessDriver]:
    # A schema of its own: the `database` fixture empties the shared one before every test.
    with migrated_schema("sagsflow_every") as schema:
        if schema is None:
            pytest.skip(f"PostgreSQL at {POSTGRES_URL} is not reachable")
        database = Database(schema_url(schema))
        yield _driver(database, loaded)
        database.dispose()


def _run(driver: ProcessDriver, loaded: LoadedDefinitions, process_id: str) -> None:
    problems = [
        problem.format("en") for problem in loaded.errors if problem.location.file.endswith(f"/{process_id}.yaml")
    ]
    assert process_id in loaded.compiled, problems
    view = driver.run(process_id)
    assert view["process"]["id"] == process_id
    assert driver.finished(view["id"])


def test_definitions_are_valid(loaded: LoadedDefinitions) -> None:
    assert [problem.format("en") for problem in loaded.problems] == []
    assert sorted(loaded.compiled) == PROCESS_IDS


@pytest.mark.parametrize("process_id", PROCESS_IDS)
def test_process_reaches_a_final_phase_on_sqlite(
    on_sqlite: ProcessDriver, loaded: LoadedDefinitions, process_id: str
) -> None:
    _run(on_sqlite, loaded, process_id)


@pytest.mark.parametrize("process_id", SAMPLE)
def test_process_reaches_a_final_phase_on_postgresql(
    on_postgresql: ProcessDriver, loaded: LoadedDefinitions, process_id: str
) -> None:
    _run(on_postgresql, loaded, process_id)
