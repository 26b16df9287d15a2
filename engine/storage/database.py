"""Connections and transactions, for SQLite (embedded default) and PostgreSQL.

Every command runs in one transaction (`Database.write`). On SQLite a write transaction
starts with `BEGIN IMMEDIATE`, which takes the database's write lock up front: two
commands on one case then run one after the other, and the second sees what the first
committed instead of failing halfway with "database is locked". On PostgreSQL the
case row is locked with `SELECT ... FOR UPDATE` by the command itself.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from engine.errors import ConfigurationError, Conflict
from engine.i18n import Text

logger = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000
_WRITE_OPTION = "sagsflow_write"


def normalise_url(url: str) -> str:
    """Pick the psycopg 3 driver for plain `postgresql://` URLs."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so that BEGIN is ours.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get(_WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    """An engine plus the two kinds of sessions commands use: read and write."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        url = normalise_url(url)
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise ConfigurationError(
                Text(
                    f"Databaseadressen '{url}' kan ikke læses. Brug fx sqlite:///var/sagsflow.db "
                    "eller postgresql://bruger@vært/database.",
                    f"The database URL '{url}' cannot be parsed. Use e.g. sqlite:///var/sagsflow.db "
                    "or postgresql://user@host/database.",
                )
            ) from None
        self.url = url
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise ConfigurationError(
                Text(
                    f"Databasen '{self.dialect}' understøttes ikke; brug SQLite eller PostgreSQL.",
                    f"The database '{self.dialect}' is not supported; use SQLite or PostgreSQL.",
                )
            )
        if self.dialect == "sqlite" and parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)

        options: dict[str, Any] = {"echo": echo}
        if self.dialect == "postgresql":
            # No pre-ping: it costs a round trip per transaction. A connection the server has
            # dropped fails once, and SQLAlchemy then discards the whole pool.
            options.update(pool_size=10, max_overflow=20, pool_recycle=1800)
        self.engine = create_engine(url, **options)
        if self.dialect == "sqlite":
            _configure_sqlite(self.engine)
        self._reader = sessionmaker(self.engine, expire_on_commit=False)
        self._writer = sessionmaker(self.engine.execution_options(**{_WRITE_OPTION: True}), expire_on_commit=False)

    @property
    def is_postgresql(self) -> bool:
        return self.dialect == "postgresql"

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One command: commit if the block succeeds, roll everything back if it raises."""
        with self._writer() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._reader() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


# The errors by which SQLite and PostgreSQL report that another transaction has locked what a command needs.
_LOCK_ERROR_NAMES = ("SerializationFailure", "DeadlockDetected", "LockNotAvailable")


def busy_conflict(error: OperationalError) -> Exception:
    """Turn a lock timeout, deadlock or serialization failure into a `Conflict` (HTTP 409); return others unchanged."""
    text = str(error.orig).lower()
    if "database is locked" in text or type(error.orig).__name__ in _LOCK_ERROR_NAMES:
        return Conflict(
            Text(
                "Sagen er optaget af en anden handling lige nu; intet er gemt.",
                "The case is busy with another action right now; nothing was saved.",
            ),
            code="busy",
            hint=Text("Prøv igen om et øjeblik.", "Try again in a moment."),
        )
    return error


@contextmanager
def lock_errors_as_conflicts() -> Iterator[None]:
    """Raise `busy_conflict` for an `OperationalError` from the block, so that a client gets 409, not 500."""
    try:
        yield
    except OperationalError as error:
        raise busy_conflict(error) from error
