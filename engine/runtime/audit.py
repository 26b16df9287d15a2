"""The append-only, hash-chained audit log of a case, and its verification.

Each event stores the SHA-256 of its own canonical content together with the hash of
the case's previous event (64 zeros for the first), so altering or deleting an event
breaks the chain from that point on. The case row keeps the chain's head: the sequence
number and hash of the newest event (`Case.audit_events`, `Case.audit_head`), updated in
the transaction that appends the event. Deleting or rewriting the newest event therefore
no longer goes unnoticed either.

Every event also records `state_sha256`, the SHA-256 of the case row's state after the
event (the columns in `STATE_COLUMNS`), and the event that files a document records the
SHA-256 of its content. `verify_chain` checks the chain, its head, the case row and the
documents against them, and reports the first problem it finds.

Appending must happen while the case row is locked (every command, the outbox dispatcher
and `migrate-cases` lock it first), so two writers never read the same head.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Row, select
from sqlalchemy.orm import Session, undefer

from engine.i18n import Language, Text
from engine.runtime.journal import format_journal_number
from engine.storage.tables import Case, CaseEvent, Document, JournalCounter

GENESIS_HASH = "0" * 64
# The key in an event's `changes` that contains the SHA-256 of the case row's state after the event.
STATE_KEY = "state_sha256"
# The case columns whose values make up that state. Each changes only in a transaction that
# appends an event. NOTE: `updated_at` and `escalated_at` are not covered, so changing them
# behind the engine's back is not detected.
STATE_COLUMNS = (
    "journal_number",
    "language",
    "created_by",
    "process_version_id",
    "phase",
    "status",
    "title",
    "team",
    "assignee",
    "data",
)
# Documents read at a time during verification; an upload may be 10 MB.
DOCUMENTS_PER_FETCH = 4
EVENTS_PER_FETCH = 500


def _canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")


def event_hash(
    case_id: int, sequence: int, at: datetime, actor: str, command: str, changes: dict[str, Any], previous: str
) -> str:
    canonical = _canonical_json(
        {
            "case_id": case_id,
            "sequence": sequence,
            # UTC, because that is how the database returns the time for verification.
            "at": at.astimezone(UTC).isoformat(),
            "actor": actor,
            "command": command,
            "changes": changes,
            "previous_hash": previous,
        }
    )
    return hashlib.sha256(canonical).hexdigest()


def state_hash(case: Case | Row[Any]) -> str:
    """Compute the SHA-256 of the canonical JSON of a case's `STATE_COLUMNS`, from a `Case` or a selected row."""
    return hashlib.sha256(_canonical_json({name: getattr(case, name) for name in STATE_COLUMNS})).hexdigest()


def document_hash(content: bytes | None, body_text: str) -> str:
    """Compute a document's SHA-256 as its `sha256` column stores it: of an upload's bytes, else of its UTF-8 text."""
    return hashlib.sha256(content if content is not None else body_text.encode("utf-8")).hexdigest()


def document_meta_hash(document: Document | Row[Any]) -> str:
    """Compute the SHA-256 of the document columns that decide who may see it and what it is.

    `status` and `sent_at` are left out because the outbox changes them after filing.
    """
    meta = {
        "kind": document.kind,
        "title": document.title,
        "letter_id": document.letter_id,
        "created_by": document.created_by,
        "recipient": document.recipient,
    }
    return hashlib.sha256(_canonical_json(meta)).hexdigest()


def _text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def append_event(
    session: Session, case_id: int, at: datetime, actor: str, command: str, changes: dict[str, Any]
) -> CaseEvent:
    """Append an event after the case's head and move the head on the case row to it.

    The caller must hold the case row's lock. A case that this session has not loaded is
    read here with `FOR UPDATE` (a no-op on SQLite, whose write transaction already holds
    the database's write lock), so the head is never read from a stale row.
    """
    with session.no_autoflush:
        case = session.identity_map.get(session.identity_key(Case, case_id))
        if not isinstance(case, Case):
            case = session.get(Case, case_id, with_for_update=True)
        if case is None:
            raise LookupError(f"case {case_id} does not exist, so no audit event can be appended to it")
    sequence, previous = case.audit_events + 1, case.audit_head
    # Round-trip through JSON so the hash covers exactly what the database stores.
    stored_changes = json.loads(json.dumps({**changes, STATE_KEY: state_hash(case)}, ensure_ascii=False, default=str))
    event = CaseEvent(
        case_id=case_id,
        sequence=sequence,
        at=at,
        actor=actor,
        command=command,
        changes=stored_changes,
        previous_hash=previous,
        hash=event_hash(case_id, sequence, at, actor, command, stored_changes, previous),
    )
    session.add(event)
    case.audit_events = sequence
    case.audit_head = event.hash
    return event


def record_document_hashes(session: Session, case_id: int, entries: list[dict[str, Any]]) -> None:
    """Add `sha256` (and `html_sha256` for a letter with HTML) to the event entries of documents filed by a command.

    `CaseCommand.add_document` records each filed document as an entry with `number` and
    `title`. Other entries, such as a letter queued again, have no title and stay unchanged.
    The documents are taken from the session, or read from the database when the command
    has flushed them already.
    """
    filed = {entry["number"]: entry for entry in entries if "title" in entry and entry.get("number") is not None}
    if not filed:
        return
    documents = {
        document.number: document
        for document in session.new
        if isinstance(document, Document) and document.case_id == case_id and document.number in filed
    }
    unflushed = [number for number in filed if number not in documents]
    if unflushed:
        with session.no_autoflush:
            for document in session.scalars(
                select(Document)
                .where(Document.case_id == case_id, Document.number.in_(unflushed))
                .options(undefer(Document.content))
            ):
                documents[document.number] = document
    for number, entry in filed.items():
        found = documents.get(number)
        if found is None:  # pragma: no cover - add_document adds the document it records
            raise LookupError(f"document {number} of case {case_id} is recorded in the event but not filed")
        entry.setdefault("sha256", document_hash(found.content, found.body_text))
        entry["meta_sha256"] = document_meta_hash(found)
        if found.body_html is not None:
            entry["html_sha256"] = _text_hash(found.body_html)


# Verification ------------------------------------------------------------------------------

ChainProblemKind = Literal[
    "missing",
    "reordered",
    "broken_link",
    "altered",
    "added",
    "case_changed",
    "document_altered",
    "document_missing",
    "document_added",
    "case_missing",
]


@dataclass(frozen=True)
class ChainProblem:
    """The first problem found in a case's audit trail: the event's sequence number and the document, where known."""

    kind: ChainProblemKind
    sequence: int | None
    text: Text
    document: int | None = None

    def as_dict(self, language: Language) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "sequence": self.sequence,
            "document": self.document,
            "message": self.text.get(language),
        }


@dataclass(frozen=True)
class ChainReport:
    """The result of verifying one case's audit trail: its events, head, case row and documents."""

    case_id: int
    events: int
    problem: ChainProblem | None
    documents: int = 0

    @property
    def ok(self) -> bool:
        return self.problem is None

    def as_dict(self, language: Language) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "documents": self.documents,
            "problem": self.problem.as_dict(language) if self.problem else None,
        }


@dataclass(frozen=True)
class _FiledDocument:
    """The hashes that the event filing a document recorded, with the event's sequence number."""

    sequence: int
    sha256: str | None
    html_sha256: str | None
    meta_sha256: str | None = None


@dataclass
class _Walk:
    """The findings of one pass over a case's events in sequence order."""

    events: int = 0
    last_sequence: int = 0
    last_hash: str = GENESIS_HASH
    problem: ChainProblem | None = None
    # The `previous_hash` of the first event that does not link to its predecessor.
    unlinked: str | None = None
    # The newest event that records the case's state: its sequence number and state hash.
    state: tuple[int, str] | None = None
    filed: dict[int, _FiledDocument] = field(default_factory=dict)
    sequence_of_hash: dict[str, int] = field(default_factory=dict)


def verify_chain(session: Session, case_id: int) -> ChainReport:
    """Verify a case's audit trail and report the first problem, checking in this order:

    1. The chain, event by event in sequence order. A sequence number above the expected
       one means events are missing. A `previous_hash` that is the hash of another of the
       case's events means the events were re-ordered, and any other wrong `previous_hash`
       is a broken link. A stored hash that differs from the recomputed one means the
       event was altered. A case without events is missing event 1, its submission.
    2. The head on the case row: fewer events than it records means the newest events are
       missing, more means events were added, and a newest event with another hash was
       altered and its hash recomputed.
    3. The case row: its state must match the `state_sha256` of the newest event that
       records one. Events appended before the head was kept on the case row have none.
    4. The documents, one at a time: the hash of each document's content must match its
       `sha256` column and the hash that the event filing it recorded, every document must
       have been filed by an event, and every document an event filed must exist.

    NOTE: everything is checked against the database itself. Someone who can write to it
    and recomputes every later hash and the head is not detected; that needs the head
    kept outside the database.
    """
    case = session.execute(
        select(Case.audit_events, Case.audit_head, *(getattr(Case, name) for name in STATE_COLUMNS)).where(
            Case.id == case_id
        )
    ).one_or_none()
    if case is None:
        raise LookupError(f"case {case_id} does not exist")

    walk = _walk_events(session, case_id)
    if walk.problem is not None:
        return ChainReport(case_id, walk.events, _resolve_link(walk))
    problem = _check_head(walk, case.audit_events, case.audit_head)
    if problem is None and walk.state is not None and walk.state[1] != state_hash(case):
        problem = _case_changed(walk.state[0])
    if problem is not None:
        return ChainReport(case_id, walk.events, problem)
    documents, problem = _check_documents(session, case_id, walk.filed)
    return ChainReport(case_id, walk.events, problem, documents)


def _walk_events(session: Session, case_id: int) -> _Walk:
    """Check each event's sequence number, link and hash, streaming; after the first problem, only count."""
    walk = _Walk()
    rows = session.execute(
        select(
            CaseEvent.sequence,
            CaseEvent.at,
            CaseEvent.actor,
            CaseEvent.command,
            CaseEvent.changes,
            CaseEvent.previous_hash,
            CaseEvent.hash,
        )
        .where(CaseEvent.case_id == case_id)
        .order_by(CaseEvent.sequence)
        .execution_options(yield_per=EVENTS_PER_FETCH)
    )
    for row in rows:
        walk.events += 1
        walk.sequence_of_hash[row.hash] = row.sequence
        if walk.problem is not None:
            continue
        if row.sequence > walk.last_sequence + 1:
            walk.problem = _missing(walk.last_sequence + 1, row.sequence)
        elif row.previous_hash != walk.last_hash:
            # Reported as re-ordered or broken once every hash of the case has been seen.
            walk.problem = _broken_link(row.sequence)
            walk.unlinked = row.previous_hash
        elif (
            event_hash(case_id, row.sequence, row.at, row.actor, row.command, row.changes, row.previous_hash)
            != row.hash
        ):
            walk.problem = _altered(row.sequence)
        else:
            walk.last_sequence = row.sequence
            walk.last_hash = row.hash
            _note_event(walk, row.sequence, row.changes)
    return walk


def _note_event(walk: _Walk, sequence: int, changes: Mapping[str, Any]) -> None:
    """Remember the state hash and the hashes of filed documents that a verified event records."""
    if isinstance(changes.get(STATE_KEY), str):
        walk.state = (sequence, changes[STATE_KEY])
    for entry in changes.get("documents") or []:
        number = entry.get("number") if isinstance(entry, Mapping) else None
        if isinstance(number, int) and number not in walk.filed:
            walk.filed[number] = _FiledDocument(
                sequence, entry.get("sha256"), entry.get("html_sha256"), entry.get("meta_sha256")
            )


def _resolve_link(walk: _Walk) -> ChainProblem | None:
    problem = walk.problem
    if problem is None or problem.kind != "broken_link" or walk.unlinked is None or problem.sequence is None:
        return problem
    linked = walk.sequence_of_hash.get(walk.unlinked)
    return _reordered(problem.sequence, linked) if linked is not None else problem


def _check_head(walk: _Walk, recorded_events: int, recorded_head: str) -> ChainProblem | None:
    if walk.last_sequence < recorded_events or walk.events == 0:
        return _missing_newest(walk.last_sequence + 1, max(recorded_events, 1))
    if walk.last_sequence > recorded_events:
        return _added(recorded_events + 1, walk.last_sequence)
    if walk.last_hash != recorded_head:
        return _head_altered(walk.last_sequence)
    return None


def _check_documents(
    session: Session, case_id: int, filed: dict[int, _FiledDocument]
) -> tuple[int, ChainProblem | None]:
    """Recompute each document's hash, a few documents at a time; return how many were checked and the first problem."""
    rows = session.execute(
        select(
            Document.number,
            Document.content,
            Document.body_text,
            Document.body_html,
            Document.sha256,
            Document.kind,
            Document.title,
            Document.letter_id,
            Document.created_by,
            Document.recipient,
        )
        .where(Document.case_id == case_id)
        .order_by(Document.number)
        .execution_options(yield_per=DOCUMENTS_PER_FETCH)
    )
    seen: set[int] = set()
    for row in rows:
        seen.add(row.number)
        record = filed.get(row.number)
        if record is None:
            rows.close()
            return len(seen), _document_added(row.number)
        digest = document_hash(row.content, row.body_text)
        html_altered = record.html_sha256 is not None and (
            row.body_html is None or _text_hash(row.body_html) != record.html_sha256
        )
        meta_altered = record.meta_sha256 is not None and document_meta_hash(row) != record.meta_sha256
        if (
            digest != row.sha256
            or (record.sha256 is not None and digest != record.sha256)
            or html_altered
            or meta_altered
        ):
            rows.close()
            return len(seen), _document_altered(row.number, record.sequence)
    missing = sorted(set(filed) - seen)
    if missing:
        return len(seen), _document_missing(missing[0], filed[missing[0]].sequence)
    return len(seen), None


# Messages ------------------------------------------------------------------------------------


def _missing(sequence: int, next_found: int) -> ChainProblem:
    if next_found == sequence + 1:
        text = Text(
            f"Hændelse {sequence} mangler; sporet springer til hændelse {next_found}.",
            f"Event {sequence} is missing; the chain jumps to event {next_found}.",
        )
    else:
        text = Text(
            f"Hændelse {sequence} til {next_found - 1} mangler; sporet springer til hændelse {next_found}.",
            f"Events {sequence} to {next_found - 1} are missing; the chain jumps to event {next_found}.",
        )
    return ChainProblem("missing", sequence, text)


def _missing_newest(first: int, last: int) -> ChainProblem:
    if first == 1 and last == 1:
        text = Text(
            "Sagen har ingen hændelser i revisionssporet; mindst hændelse 1 (indgivelsen) mangler.",
            "The case has no audit events; at least event 1 (the submission) is missing.",
        )
    elif first == 1:
        text = Text(
            f"Sagen har ingen hændelser i revisionssporet; hændelse 1 til {last}, som sagen har registreret, mangler.",
            f"The case has no audit events; events 1 to {last}, which the case records, are missing.",
        )
    elif first == last:
        text = Text(
            f"Hændelse {first}, den nyeste, mangler; sagen har registreret {last} hændelser, "
            f"men sporet slutter ved hændelse {first - 1}.",
            f"Event {first}, the newest, is missing; the case records {last} events, "
            f"but the chain ends at event {first - 1}.",
        )
    else:
        text = Text(
            f"Hændelse {first} til {last}, de nyeste, mangler; sagen har registreret {last} hændelser, "
            f"men sporet slutter ved hændelse {first - 1}.",
            f"Events {first} to {last}, the newest, are missing; the case records {last} events, "
            f"but the chain ends at event {first - 1}.",
        )
    return ChainProblem("missing", first, text)


def _added(first: int, last: int) -> ChainProblem:
    if first == last:
        text = Text(
            f"Hændelse {first} er tilføjet direkte i databasen; sagen har kun registreret {first - 1} hændelser.",
            f"Event {first} was added directly in the database; the case records only {first - 1} events.",
        )
    else:
        text = Text(
            f"Hændelse {first} til {last} er tilføjet direkte i databasen; sagen har kun registreret "
            f"{first - 1} hændelser.",
            f"Events {first} to {last} were added directly in the database; the case records only {first - 1} events.",
        )
    return ChainProblem("added", first, text)


def _reordered(sequence: int, linked: int) -> ChainProblem:
    return ChainProblem(
        "reordered",
        sequence,
        Text(
            f"Hændelse {sequence} peger på hændelse {linked} i stedet for den forrige; hændelserne er byttet om.",
            f"Event {sequence} links to event {linked} instead of the previous one; the events were re-ordered.",
        ),
    )


def _broken_link(sequence: int) -> ChainProblem:
    return ChainProblem(
        "broken_link",
        sequence,
        Text(
            f"Hændelse {sequence} peger ikke på den forrige hændelses hash; den forrige hændelse er ændret "
            "og dens hash beregnet igen, eller henvisningen er ændret.",
            f"Event {sequence} does not link to the previous event's hash; the previous event was altered "
            "and its hash recomputed, or the link was altered.",
        ),
    )


def _altered(sequence: int) -> ChainProblem:
    return ChainProblem(
        "altered",
        sequence,
        Text(
            f"Hændelse {sequence} er ændret: dens indhold passer ikke til dens gemte hash.",
            f"Event {sequence} was altered: its content does not match its stored hash.",
        ),
    )


def _head_altered(sequence: int) -> ChainProblem:
    return ChainProblem(
        "altered",
        sequence,
        Text(
            f"Hændelse {sequence}, den nyeste, er ændret: dens hash er ikke den, sagen har registreret for sin "
            "nyeste hændelse, så hændelsen er ændret og dens hash beregnet igen, eller den er udskiftet.",
            f"Event {sequence}, the newest, was altered: its hash is not the one the case records for its newest "
            "event, so the event was altered and its hash recomputed, or it was replaced.",
        ),
    )


def _case_changed(sequence: int) -> ChainProblem:
    return ChainProblem(
        "case_changed",
        sequence,
        Text(
            f"Sagens række er ændret efter hændelse {sequence}: dens journalnummer, sprog, opretter, data, "
            "fase, status, titel, team, sagsbehandler eller procesversion passer ikke til den tilstand, "
            "hændelsen registrerede.",
            f"The case row was changed after event {sequence}: its journal number, language, creator, data, "
            "phase, status, title, team, assignee or process version does not match the state that the event "
            "recorded.",
        ),
    )


def _document_altered(number: int, sequence: int) -> ChainProblem:
    return ChainProblem(
        "document_altered",
        sequence,
        Text(
            f"Dokument {number} er ændret: dets indhold eller dets art, titel, brev, opretter eller modtager "
            f"passer ikke til de hashværdier, dokumentet og hændelse {sequence}, der journaliserede det, har gemt.",
            f"Document {number} was altered: its content, or its kind, title, letter, creator or recipient, does "
            f"not match the hashes stored with the document and by event {sequence}, which filed it.",
        ),
        number,
    )


def _document_missing(number: int, sequence: int) -> ChainProblem:
    return ChainProblem(
        "document_missing",
        sequence,
        Text(
            f"Dokument {number} mangler; hændelse {sequence} journaliserede det.",
            f"Document {number} is missing; event {sequence} filed it.",
        ),
        number,
    )


def _document_added(number: int) -> ChainProblem:
    return ChainProblem(
        "document_added",
        None,
        Text(
            f"Dokument {number} er tilføjet direkte i databasen: ingen hændelse har journaliseret det.",
            f"Document {number} was added directly in the database: no event filed it.",
        ),
        number,
    )


def missing_cases(session: Session) -> list[str]:
    """Return the journal numbers that were taken but whose case no longer exists, oldest first.

    Journal numbers are taken without gaps in the transaction that creates the case, so a
    number below a year's counter without a case means that the case was deleted, with its
    events and documents, behind the engine's back.
    """
    missing: list[str] = []
    for counter in session.scalars(select(JournalCounter).order_by(JournalCounter.year)):
        present = set(session.scalars(select(Case.journal_sequence).where(Case.journal_year == counter.year)))
        missing.extend(
            format_journal_number(counter.year, sequence)
            for sequence in range(1, counter.last_number + 1)
            if sequence not in present
        )
    return missing


def case_missing(journal_number: str) -> ChainProblem:
    return ChainProblem(
        "case_missing",
        None,
        Text(
            f"Sagen {journal_number} mangler: journalnummeret er taget, men sagen findes ikke længere.",
            f"The case {journal_number} is missing: its journal number was taken, but the case no longer exists.",
        ),
    )
