"""case audit head: the newest audit event's sequence number and hash on the case row

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 10:00:00.000000

Existing cases get the sequence number and hash of their newest stored event. A chain
that was already cut short before this migration is anchored as it is, so verification
cannot detect newest events deleted before the upgrade.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENESIS_HASH = "0" * 64


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN, also on SQLite. Batch mode would copy `cases` and drop
    # the old table, and with foreign keys on, dropping it deletes every event, step and
    # document of every case through their ON DELETE CASCADE.
    op.add_column("cases", sa.Column("audit_events", sa.Integer(), server_default=sa.text("0"), nullable=False))
    op.add_column("cases", sa.Column("audit_head", sa.String(length=64), server_default=GENESIS_HASH, nullable=False))

    # Correlated subqueries, which SQLite and PostgreSQL both run.
    op.execute(
        sa.text(
            "UPDATE cases SET "
            "audit_events = COALESCE("
            "(SELECT MAX(case_events.sequence) FROM case_events WHERE case_events.case_id = cases.id), 0), "
            "audit_head = COALESCE("
            "(SELECT case_events.hash FROM case_events WHERE case_events.case_id = cases.id "
            "ORDER BY case_events.sequence DESC LIMIT 1), :genesis)"
        ).bindparams(genesis=GENESIS_HASH)
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite 3.35 and later drop a column in place; batch mode would drop `cases` (see upgrade).
        op.execute("ALTER TABLE cases DROP COLUMN audit_head")
        op.execute("ALTER TABLE cases DROP COLUMN audit_events")
    else:
        op.drop_column("cases", "audit_head")
        op.drop_column("cases", "audit_events")
