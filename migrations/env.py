"""Alembic environment: runs migrations on the connection Sagsflow hands over, or on the URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from engine.storage.database import Database
from engine.storage.tables import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("No database: set sqlalchemy.url or pass a connection in config.attributes.")
    database = Database(url)
    try:
        with database.engine.connect() as new_connection:
            _run(new_connection)
    finally:
        database.dispose()


if context.is_offline_mode():
    raise RuntimeError("Offline (SQL script) migrations are not supported; run 'sagsflow db upgrade'.")
run_migrations_online()
