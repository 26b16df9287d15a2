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
    first = reserve_journal_numbers(session, year, 1)
    return first, format_journal_number(year, first)


def reserve_journal_numbers(session: Session, year: int, count: int) -> int:
    """Take the next `count` numbers of `year` at once and return the first; the rest follow without gaps.

    The counter row stays locked until the transaction ends, so the block is the caller's
    alone, and a rollback gives the numbers back.
    """
    if count < 1:
        raise ValueError(f"cannot reserve {count} journal numbers; reserve at least one")
    bump = (
        update(JournalCounter)
        .where(JournalCounter.year == year)
        .values(last_number=JournalCounter.last_number + count)
        .returning(JournalCounter.last_number)
    )
    last = session.execute(bump).scalar_one_or_none()
    if last is None:
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        session.execute(insert(JournalCounter).values(year=year, last_number=0).on_conflict_do_nothing())
        last = session.execute(bump).scalar_one()
    return int(last) - count + 1
