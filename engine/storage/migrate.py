"""Apply the Alembic migrations in `migrations/` to a database."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

import migrations
from engine.errors import ConfigurationError
from engine.i18n import Text
from engine.storage.database import Database

MIGRATIONS_DIR = Path(migrations.__file__).resolve().parent


def alembic_config(database: Database) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database.url.replace("%", "%%"))
    return config


def upgrade(database: Database, revision: str = "head") -> None:
    """Migrate the database to `revision` (default: the newest) in one transaction."""
    config = alembic_config(database)
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_revision(database: Database) -> str | None:
    with database.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision(database: Database) -> str | None:
    return ScriptDirectory.from_config(alembic_config(database)).get_current_head()


def _redacted(database: Database) -> str:
    return make_url(database.url).render_as_string(hide_password=True)


def ensure_current(database: Database) -> None:
    """Raise `ConfigurationError` unless the database answers and is migrated to the newest revision."""
    try:
        current = current_revision(database)
    except OperationalError as error:
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        raise ConfigurationError(
            Text(
                f"Kan ikke forbinde til databasen {_redacted(database)}: {reason}",
                f"Cannot connect to the database {_redacted(database)}: {reason}",
            )
        ) from None
    head = head_revision(database)
    if current != head:
        raise ConfigurationError(
            Text(
                f"Databasen er på version {current or '(tom)'}, men koden kræver {head}. Kør 'sagsflow db upgrade'.",
                f"The database is at revision {current or '(empty)'}, but the code needs {head}. "
                "Run 'sagsflow db upgrade'.",
            )
        )
