"""hearing parties: postal address

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("hearing_parties", schema=None) as batch_op:
        batch_op.add_column(sa.Column("address", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("postcode", sa.String(length=4), nullable=True))
        batch_op.add_column(sa.Column("city", sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("hearing_parties", schema=None) as batch_op:
        batch_op.drop_column("city")
        batch_op.drop_column("postcode")
        batch_op.drop_column("address")
