"""The Alembic migrations create exactly the schema the models declare."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select

from engine.runtime.audit import verify_chain
from engine.service import Sagsflow
from engine.storage.database import Database
from engine.storage.migrate import alembic_config, current_revision, head_revision, upgrade
from engine.storage.tables import Base, Case, CaseEvent
from tests.helpers import APPLICANT, example


def test_migrations_match_models(database: Database) -> None:
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)

    assert differences == []


def test_database_is_at_head(database: Database) -> None:
    assert current_revision(database) == head_revision(database)


def test_audit_head_backfilled_from_events(service: Sagsflow, database: Database) -> None:
    """Migration 0003 gives existing cases the sequence number and hash of their newest event."""
    application = example("01")
    case = service.submit(APPLICANT, application["process"], application["data"], "da")
    service.dispatch_outbox()
    config = alembic_config(database)
    try:
        with database.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0002")
    finally:
        upgrade(database)

    with database.read() as session:
        row = session.get_one(Case, case["id"])
        newest = session.scalars(
            select(CaseEvent).where(CaseEvent.case_id == case["id"]).order_by(CaseEvent.sequence.desc()).limit(1)
        ).one()
        report = verify_chain(session, case["id"])

    assert (newest.sequence, newest.command) == (2, "letter_sent")
    assert row.audit_events == 2
    assert row.audit_head == newest.hash
    assert report.ok, report.problem
