"""Journal numbers (journalnumre): `<year>-<sequence>`, unique per year, e.g. 2026-000042."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from engine.storage.tables import JournalCounter


def format_journal_number(year: int, sequence: int) -> str:
    return f"{year}-{sequence:06d}"


def next_journal_number(session: Session, year: int) -> tuple[int, str]:
    """Take the next number of `year`; the counter row stays locked until the transaction ends."""
    bump = (
        update(JournalCounter)
        .where(JournalCounter.year == year)
        .values(last_number=JournalCounter.last_number + 1)
        .returning(JournalCounter.last_number)
    )
    sequence = session.execute(bump).scalar_one_or_none()
    if sequence is None:
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        session.execute(insert(JournalCounter).values(year=year, last_number=0).on_conflict_do_nothing())
        sequence = session.execute(bump).scalar_one()
    return sequence, format_journal_number(year, sequence)
