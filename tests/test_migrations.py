"""The Alembic migrations create exactly the schema the models declare."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from engine.storage.database import Database
from engine.storage.migrate import current_revision, head_revision
from engine.storage.tables import Base


def test_migrations_match_models(database: Database) -> None:
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)

    assert differences == []


def test_database_is_at_head(database: Database) -> None:
    assert current_revision(database) == head_revision(database)
