"""case work: users, hearings, notes, uploads

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 22:22:55.736605
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column(
            "roles", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column(
            "teams", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("name", name=op.f("uq_users_name")),
    )
    op.create_table(
        "case_messages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_messages_case_id_cases"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_messages")),
    )
    with op.batch_alter_table("case_messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_messages_case_id"), ["case_id"], unique=False)

    op.create_table(
        "case_notes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_notes_case_id_cases"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_notes")),
    )
    with op.batch_alter_table("case_notes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_notes_case_id"), ["case_id"], unique=False)

    op.create_table(
        "hearings",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("step_instance_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "merged", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("opened_by", sa.String(length=200), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_hearings_case_id_cases"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["step_instance_id"], ["case_steps.id"], name=op.f("fk_hearings_step_instance_id_case_steps")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hearings")),
        sa.UniqueConstraint("step_instance_id", name=op.f("uq_hearings_step_instance_id")),
    )
    with op.batch_alter_table("hearings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_hearings_case_id"), ["case_id"], unique=False)

    op.create_table(
        "hearing_parties",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("hearing_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("id_type", sa.String(length=8), nullable=False),
        sa.Column("party_id", sa.String(length=32), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("letter_document_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("reply_document_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.ForeignKeyConstraint(
            ["hearing_id"], ["hearings.id"], name=op.f("fk_hearing_parties_hearing_id_hearings"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["letter_document_id"], ["documents.id"], name=op.f("fk_hearing_parties_letter_document_id_documents")
        ),
        sa.ForeignKeyConstraint(
            ["reply_document_id"], ["documents.id"], name=op.f("fk_hearing_parties_reply_document_id_documents")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hearing_parties")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_hearing_parties_token_hash")),
    )
    with op.batch_alter_table("hearing_parties", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_hearing_parties_hearing_id"), ["hearing_id"], unique=False)

    op.create_table(
        "outbox_attempts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"], ["outbox.id"], name=op.f("fk_outbox_attempts_message_id_outbox"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_attempts")),
    )
    with op.batch_alter_table("outbox_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_attempts_message_id"), ["message_id"], unique=False)

    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "scopes", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True
            )
        )

    with op.batch_alter_table("case_steps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("assignee", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_case_steps_status_due_at", ["status", "due_at"], unique=False)

    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("team", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("assignee", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("duplicate_key", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f("ix_cases_assignee"), ["assignee"], unique=False)
        batch_op.create_index(
            "ix_cases_status_processing_deadline_at", ["status", "processing_deadline_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_cases_team"), ["team"], unique=False)
        batch_op.create_index(
            "uq_cases_open_duplicate_key",
            ["duplicate_key"],
            unique=True,
            sqlite_where=sa.text("status = 'open' AND duplicate_key IS NOT NULL"),
            postgresql_where=sa.text("status = 'open' AND duplicate_key IS NOT NULL"),
        )

    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("content", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("filename", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("size", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_column("size")
        batch_op.drop_column("filename")
        batch_op.drop_column("content")

    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_cases_open_duplicate_key",
            sqlite_where=sa.text("status = 'open' AND duplicate_key IS NOT NULL"),
            postgresql_where=sa.text("status = 'open' AND duplicate_key IS NOT NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_cases_team"))
        batch_op.drop_index("ix_cases_status_processing_deadline_at")
        batch_op.drop_index(batch_op.f("ix_cases_assignee"))
        batch_op.drop_column("escalated_at")
        batch_op.drop_column("duplicate_key")
        batch_op.drop_column("assignee")
        batch_op.drop_column("team")

    with op.batch_alter_table("case_steps", schema=None) as batch_op:
        batch_op.drop_index("ix_case_steps_status_due_at")
        batch_op.drop_column("escalated_at")
        batch_op.drop_column("assignee")

    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("scopes")

    with op.batch_alter_table("outbox_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_attempts_message_id"))

    op.drop_table("outbox_attempts")
    with op.batch_alter_table("hearing_parties", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hearing_parties_hearing_id"))

    op.drop_table("hearing_parties")
    with op.batch_alter_table("hearings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hearings_case_id"))

    op.drop_table("hearings")
    with op.batch_alter_table("case_notes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_notes_case_id"))

    op.drop_table("case_notes")
    with op.batch_alter_table("case_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_messages_case_id"))

    op.drop_table("case_messages")
    op.drop_table("users")
