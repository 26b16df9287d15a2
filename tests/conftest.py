"""Shared fixtures: a migrated database per test on SQLite and on PostgreSQL.

Tests that take the `database` fixture (or anything built on it) run twice, with ids
`[sqlite]` and `[postgresql]`. PostgreSQL comes from `SAGSFLOW_TEST_POSTGRES_URL`
(default postgresql://postgres@127.0.0.1:5432/test); each pytest worker migrates a
schema of its own once and empties it before every test. When the server cannot be
reached the PostgreSQL tests are skipped, unless `SAGSFLOW_REQUIRE_POSTGRES=1` (as in
CI), which turns that into a failure.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from api.app import create_app
from engine.adapters.cvr import FakeCompanyRegister
from engine.adapters.digital_post import MemoryDigitalPost
from engine.adapters.species import OfflineSpeciesPlus
from engine.definitions.loader import LoadedDefinitions, load_definitions
from engine.people import Access
from engine.runtime.services import Services
from engine.service import Sagsflow
from engine.settings import Settings
from engine.storage.database import Database, normalise_url
from engine.storage.migrate import upgrade
from engine.storage.tables import Base
from tests.helpers import ADMIN, FIRST_OF_A_KIND, OFFICE_USERS, REPOSITORY, TEAM, Tokens, load_office

POSTGRES_URL = os.environ.get("SAGSFLOW_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_POSTGRES = os.environ.get("SAGSFLOW_REQUIRE_POSTGRES") == "1"
# CLI tests run in temporary folders; one shared definitions cache spares each of them a
# full load of the repository's 250 processes.
os.environ.setdefault("SAGSFLOW_CACHE_DIR", str(REPOSITORY / "var" / "cache"))


@dataclass
class Clock:
    """A settable clock; tests start on a Friday morning in Copenhagen.

    With `delay` set, every reading sleeps first. Commands read the clock while they hold
    the case lock, so a delay makes two racing commands overlap for certain.
    """

    now: datetime = field(default_factory=lambda: datetime(2026, 12, 4, 9, 30, tzinfo=UTC))
    delay: float = 0.0

    def __call__(self) -> datetime:
        if self.delay:
            time.sleep(self.delay)
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


# Databases ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    database = Database(f"sqlite:///{path}")
    upgrade(database)
    database.dispose()
    return path


@contextmanager
def migrated_schema(prefix: str) -> Iterator[str | None]:
    """Create a migrated PostgreSQL schema and drop it afterwards; None when the server is not there."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalise_url(POSTGRES_URL))
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as error:
        admin.dispose()
        if REQUIRE_POSTGRES:
            pytest.fail(f"PostgreSQL at {POSTGRES_URL} is required (SAGSFLOW_REQUIRE_POSTGRES=1) but failed: {error}")
        yield None
        return
    database = Database(schema_url(schema))
    upgrade(database)
    database.dispose()
    try:
        yield schema
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_schema() -> Iterator[str | None]:
    with migrated_schema("sagsflow_test") as schema:
        yield schema


def schema_url(schema: str) -> str:
    separator = "&" if "?" in POSTGRES_URL else "?"
    return f"{normalise_url(POSTGRES_URL)}{separator}options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path, postgres_schema: str | None
) -> Iterator[Database]:
    if request.param == "sqlite":
        path = tmp_path / "sagsflow.db"
        shutil.copy(sqlite_template, path)
        db = Database(f"sqlite:///{path}")
    else:
        if postgres_schema is None:
            pytest.skip(f"PostgreSQL at {POSTGRES_URL} is not reachable")
        db = Database(schema_url(postgres_schema))
        tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
        with db.engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    yield db
    db.dispose()


# The engine ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def definitions() -> LoadedDefinitions:
    # The first-of-a-kind processes that the feature tests use; tests/test_every_process.py
    # deploys and runs all of them.
    loaded = load_definitions(REPOSITORY, [REPOSITORY / path for path in FIRST_OF_A_KIND])
    assert not loaded.errors, [problem.format("en") for problem in loaded.errors]
    return loaded


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def post() -> MemoryDigitalPost:
    return MemoryDigitalPost()


@pytest.fixture(scope="session")
def species() -> OfflineSpeciesPlus:
    return OfflineSpeciesPlus()


@pytest.fixture(scope="session")
def companies() -> FakeCompanyRegister:
    return FakeCompanyRegister()


@pytest.fixture
def services(
    post: MemoryDigitalPost, clock: Clock, species: OfflineSpeciesPlus, companies: FakeCompanyRegister
) -> Services:
    return Services(species=species, companies=companies, digital_post=post, clock=clock)


@pytest.fixture
def service(database: Database, services: Services, definitions: LoadedDefinitions) -> Sagsflow:
    engine = Sagsflow(database, services)
    engine.deploy(definitions, "test")
    return engine


@pytest.fixture
def office(tmp_path: Path, database: Database, services: Services) -> Sagsflow:
    """The engine with the small office of tests/helpers.py deployed and its users stored.

    Only `admin` sees every team's cases here, whatever `SAGSFLOW_CROSS_TEAM_ROLES` says.
    """
    engine = Sagsflow(database, services, access=Access())
    engine.deploy(load_office(tmp_path / "office"), "test")
    for name, roles, teams in OFFICE_USERS:
        engine.add_user(ADMIN, name, roles, teams)
    return engine


# HTTP ----------------------------------------------------------------------------------------


@pytest.fixture
def tokens(service: Sagsflow) -> Tokens:
    """Tokens of staff in the CITES team and of two applicants, who belong to no team."""
    return staff_tokens(service, TEAM)


def staff_tokens(service: Sagsflow, team: str) -> Tokens:
    """Add the test staff to `team` and two applicants without a team, and create a token for each."""
    for name, roles in (
        ("karen", ["caseworker"]),
        ("mads", ["caseworker"]),
        ("bo", ["approver"]),
        ("trine", ["caseworker", "approver"]),
    ):
        service.add_user(ADMIN, name, roles, [team])
    return Tokens(
        caseworker=service.create_token("karen"),
        caseworker_2=service.create_token("mads"),
        approver=service.create_token("bo"),
        applicant=service.create_token("kragelund", ["applicant"]),
        other_applicant=service.create_token("lindholt", ["applicant"]),
        both=service.create_token("trine"),
    )


@pytest.fixture
def client(service: Sagsflow) -> Iterator[TestClient]:
    with TestClient(create_app(service, Settings()), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def office_tokens(office: Sagsflow) -> dict[str, str]:
    """A token without scopes for every office user, by user name."""
    return {name: office.create_token(name) for name, _, _ in OFFICE_USERS}


@pytest.fixture
def office_client(office: Sagsflow) -> Iterator[TestClient]:
    with TestClient(create_app(office, Settings(), dispatch_interval=0), raise_server_exceptions=False) as test_client:
        yield test_client
