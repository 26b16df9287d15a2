"""Database tables, declared with SQLAlchemy 2's typed ORM mapping.

The same schema runs on SQLite (the embedded default) and PostgreSQL. Times are stored
in UTC; JSON columns become JSONB on PostgreSQL. Cases carry a version column that
SQLAlchemy checks on every update (optimistic concurrency).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
Id = BigInteger().with_variant(Integer(), "sqlite")
Json = JSON().with_variant(JSONB(), "postgresql")


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, also on SQLite, which keeps no zone."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; pass an aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class CaseStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class StepStatus(StrEnum):
    ACTIVE = "active"
    WAITING = "waiting"  # a hearing or timer that runs by itself until replies or a due time
    DONE = "done"
    SKIPPED = "skipped"


class DocumentKind(StrEnum):
    APPLICATION = "application"
    LETTER = "letter"
    UPLOAD = "upload"
    HEARING_REPLY = "hearing_reply"
    # A party's report through the link of a scheme's request (engine/runtime/schemes.py).
    REPORT = "report"


class DocumentStatus(StrEnum):
    FILED = "filed"
    QUEUED = "queued"
    SENT = "sent"
    # A letter the outbox gave up on; `sagsflow outbox retry` queues it again.
    FAILED = "failed"


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class LedgerBucket(StrEnum):
    """The state of an amount in a ledger account. Every entry moves an amount between two buckets."""

    AVAILABLE = "available"
    RESERVED = "reserved"
    COMMITTED = "committed"
    PAID = "paid"


class HearingStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime(), dict[str, Any]: Json, list[Any]: Json}


class ProcessVersion(Base):
    """An immutable, deployed version of a resolved process."""

    __tablename__ = "process_versions"
    __table_args__ = (
        UniqueConstraint("process_id", "version"),
        # Not unique: reverting a file to earlier content deploys that content as a new version.
        Index("ix_process_versions_process_id_content_hash", "process_id", "content_hash"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    process_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    skeleton: Mapped[str] = mapped_column(String(64))
    content_hash: Mapped[str] = mapped_column(String(64))
    definition: Mapped[dict[str, Any]] = mapped_column(Json)
    deployed_at: Mapped[datetime]
    deployed_by: Mapped[str] = mapped_column(String(200))


class JournalCounter(Base):
    """The last journal number issued per year."""

    __tablename__ = "journal_counters"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_number: Mapped[int] = mapped_column(Integer)


class Case(Base):
    __tablename__ = "cases"
    __table_args__ = (
        UniqueConstraint("journal_year", "journal_sequence"),
        Index("ix_cases_process_id_status", "process_id", "status"),
        Index(
            "uq_cases_open_duplicate_key",
            "duplicate_key",
            unique=True,
            sqlite_where=text("status = 'open' AND duplicate_key IS NOT NULL"),
            postgresql_where=text("status = 'open' AND duplicate_key IS NOT NULL"),
        ),
        Index("ix_cases_status_processing_deadline_at", "status", "processing_deadline_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    journal_number: Mapped[str] = mapped_column(String(32), unique=True)
    journal_year: Mapped[int] = mapped_column(Integer)
    journal_sequence: Mapped[int] = mapped_column(Integer)
    process_id: Mapped[str] = mapped_column(String(64))
    process_version_id: Mapped[int] = mapped_column(ForeignKey("process_versions.id"))
    phase: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=CaseStatus.OPEN)
    title: Mapped[str] = mapped_column(String(300))
    language: Mapped[str] = mapped_column(String(2))
    data: Mapped[dict[str, Any]] = mapped_column(Json)
    created_by: Mapped[str] = mapped_column(String(200))
    received_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    processing_deadline_at: Mapped[datetime | None]
    document_count: Mapped[int] = mapped_column(Integer, default=0)
    team: Mapped[str | None] = mapped_column(String(64), index=True)
    assignee: Mapped[str | None] = mapped_column(String(200), index=True)
    # Identifies the applicant and key fields; at most one open case per key (see the index below).
    duplicate_key: Mapped[str | None] = mapped_column(String(64))
    escalated_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(Integer)
    # The head of the case's audit chain: the sequence number and hash of its newest event,
    # updated with each appended event (engine/runtime/audit.py). Verification compares the
    # newest stored event with them, so a deleted or rewritten newest event is detected.
    audit_events: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    audit_head: Mapped[str] = mapped_column(String(64), default="0" * 64, server_default="0" * 64)

    # The engine sets the version itself, once per command (`CaseCommand.finish`); SQLAlchemy
    # still puts the loaded version into every UPDATE's WHERE clause, so a stale write fails.
    __mapper_args__ = {"version_id_col": version, "version_id_generator": False}


class CaseStep(Base):
    """One step instance of a case's checklist; a phase entered twice gets a new round."""

    __tablename__ = "case_steps"
    __table_args__ = (
        UniqueConstraint("case_id", "phase", "round", "step_id"),
        Index("ix_case_steps_status_due_at", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    phase: Mapped[str] = mapped_column(String(64))
    round: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer)
    step_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    required: Mapped[bool] = mapped_column(Boolean)
    outcome: Mapped[str | None] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    started_at: Mapped[datetime]
    due_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    completed_by: Mapped[str | None] = mapped_column(String(200))
    assignee: Mapped[str | None] = mapped_column(String(200))
    escalated_at: Mapped[datetime | None]


class Document(Base):
    """A case document (akt): the application, a letter, later uploads."""

    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("case_id", "number"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(300))
    letter_id: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(2))
    content_type: Mapped[str] = mapped_column(String(100))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    # An uploaded file's bytes; letters and applications keep their text in body_text.
    content: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    filename: Mapped[str | None] = mapped_column(String(255))
    size: Mapped[int | None] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[dict[str, Any] | None] = mapped_column(Json)
    step_instance_id: Mapped[int | None] = mapped_column(ForeignKey("case_steps.id"))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200))
    sent_at: Mapped[datetime | None]

    # Lets a command file a letter for a step row that is not inserted yet; both are
    # written in the command's single flush.
    step: Mapped[CaseStep | None] = relationship(lazy="raise")


class OutboxMessage(Base):
    """A side effect waiting to be carried out by the dispatcher, written in the command's transaction."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    document_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id"))
    channel: Mapped[str] = mapped_column(String(32))
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(Json)
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    receipt: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]

    document: Mapped[Document | None] = relationship(lazy="raise")


class CaseEvent(Base):
    """An append-only audit event; `hash` chains it to the case's previous event.

    The case row keeps the newest event's sequence number and hash (`audit_events`,
    `audit_head`). The outbox dispatcher moves that head without raising the case version,
    so a letter being sent does not make a client's version stale.
    """

    __tablename__ = "case_events"
    __table_args__ = (UniqueConstraint("case_id", "sequence"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    sequence: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))
    command: Mapped[str] = mapped_column(String(64))
    changes: Mapped[dict[str, Any]] = mapped_column(Json)
    previous_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class OutboxAttempt(Base):
    """One try to deliver an outbox message, kept for the record whether it succeeded or not."""

    __tablename__ = "outbox_attempts"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("outbox.id", ondelete="CASCADE"), index=True)
    attempted_at: Mapped[datetime]
    succeeded: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str] = mapped_column(String(200))


class CaseNote(Base):
    """A note on a case (offentlighedsloven § 13: oral information that matters is written down)."""

    __tablename__ = "case_notes"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class CaseMessage(Base):
    """A chat message between the people working on a case."""

    __tablename__ = "case_messages"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class Hearing(Base):
    """A hearing (høring) or party hearing (partshøring) opened from a step of a case."""

    __tablename__ = "hearings"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    step_instance_id: Mapped[int] = mapped_column(ForeignKey("case_steps.id"), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=HearingStatus.OPEN)
    deadline_at: Mapped[datetime]
    merged: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    opened_by: Mapped[str] = mapped_column(String(200))
    opened_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]


class HearingParty(Base):
    """A party asked in a hearing, with the single-use token of its reply link (only its hash is kept)."""

    __tablename__ = "hearing_parties"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    hearing_id: Mapped[int] = mapped_column(ForeignKey("hearings.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    id_type: Mapped[str] = mapped_column(String(8))
    party_id: Mapped[str] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(254))
    # The postal address for a letter by physical mail: all three or none. A party with
    # id_type NONE has an empty party_id and always an address.
    address: Mapped[str | None] = mapped_column(String(200))
    postcode: Mapped[str | None] = mapped_column(String(4))
    city: Mapped[str | None] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    letter_document_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id"))
    reply_document_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id"))


class User(Base):
    """A person or an integration that may hold tokens; roles and teams are read at each request."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16), default="person")
    roles: Mapped[list[Any]] = mapped_column(Json)
    # Teams whose cases the user sees; "*" sees every team's cases.
    teams: Mapped[list[Any]] = mapped_column(Json)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]


class ApiToken(Base):
    """A bearer token; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_name: Mapped[str] = mapped_column(String(200), index=True)
    roles: Mapped[list[Any]] = mapped_column(Json)
    label: Mapped[str | None] = mapped_column(String(200))
    # For integration tokens: the operations allowed, e.g. ["cases:read", "cases:submit"]; None allows all.
    scopes: Mapped[list[Any] | None] = mapped_column(Json)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class CaseLink(Base):
    """A link from one case to another: an application to its pool case, a permit to its scheme case."""

    __tablename__ = "case_links"
    __table_args__ = (UniqueConstraint("case_id", "linked_case_id", "kind"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    linked_case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200))


class LedgerAccount(Base):
    """A quantity shared by many cases: a pool's budget in øre, or a dumping site's capacity in m³.

    `total` is the whole amount. The entries move parts of it between the buckets available,
    reserved, committed and paid, so the buckets always add up to `total`.
    """

    __tablename__ = "ledger_accounts"
    __table_args__ = (UniqueConstraint("kind", "key"), CheckConstraint("total >= 0", name="total_not_negative"))

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(64))
    unit: Mapped[str] = mapped_column(String(8))
    total: Mapped[int] = mapped_column(BigInteger)
    # The pool case that owns a pool account; None for a dumping site.
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime]


class LedgerEntry(Base):
    """One movement of `amount` between two buckets of an account, on behalf of one case."""

    __tablename__ = "ledger_entries"
    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id", ondelete="CASCADE"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    operation: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(BigInteger)
    from_bucket: Mapped[str] = mapped_column(String(16))
    to_bucket: Mapped[str] = mapped_column(String(16))
    # The finance system's transaction this entry is booked as, if any (the outbox idempotency key).
    reference: Mapped[str | None] = mapped_column(String(100))
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))


class SchemeMember(Base):
    """A member of a scheme case's population, such as one active KLAP permit.

    `data` is a snapshot of the member's party and key fields, taken when it joined (or was
    imported from an earlier system); bulk requests are addressed from it.
    """

    __tablename__ = "scheme_members"
    __table_args__ = (UniqueConstraint("scheme_case_id", "member_key"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    scheme_case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    member_key: Mapped[str] = mapped_column(String(64))
    member_case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="SET NULL"))
    data: Mapped[dict[str, Any]] = mapped_column(Json)
    # The language of the letters the member's request cases send.
    language: Mapped[str] = mapped_column(String(2), default="da")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    joined_at: Mapped[datetime]
    left_at: Mapped[datetime | None]


class SchemeRequest(Base):
    """The request case that a scheme's bulk run created for one member and period, with its reply link."""

    __tablename__ = "scheme_requests"
    # The unique constraint makes the bulk run idempotent per period, also when two runs race.
    __table_args__ = (UniqueConstraint("scheme_case_id", "member_id", "period"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    scheme_case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("scheme_members.id", ondelete="CASCADE"))
    period: Mapped[str] = mapped_column(String(16))
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime]
    replied_at: Mapped[datetime | None]
    reply_document_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id"))
