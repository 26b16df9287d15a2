"""Case records beside the workflow: uploaded documents, notes, chat messages and the audit trail.

`CaseRecords` works on a `Sagsflow` engine. Every write is one command run by
`Sagsflow.run_command`: the case row is locked, the expected version is checked, the case
version goes up by one, and one audit event is appended in the transaction that stores
the record. Reads go through `Sagsflow.load_case`, so a user who may not see a case gets
404.

Staff (`STAFF_ROLES`) upload documents, read every document, write and read notes and
chat messages, and read the audit trail. An applicant uploads documents to their own
open case and reads its application, the letters sent to them and their own uploads.
"""

from __future__ import annotations

import hashlib
import io
import re
import unicodedata
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import ScalarResult
from sqlalchemy.orm import Session, undefer

from engine.auth import Actor, Scope
from engine.definitions.fields import FieldValueError, check_text
from engine.errors import CaseError, Conflict, FieldError, Forbidden, InvalidInput, NotFound
from engine.i18n import DEFAULT_LANGUAGE, Language, Text
from engine.runtime.audit import ChainReport, case_missing, missing_cases, verify_chain
from engine.runtime.commands import CaseCommand
from engine.runtime.letters import recipient_of
from engine.runtime.views import shown_to_applicant
from engine.service import Sagsflow
from engine.storage.tables import (
    Case,
    CaseEvent,
    CaseMessage,
    CaseNote,
    CaseStatus,
    Document,
    DocumentKind,
    DocumentStatus,
)

MAX_UPLOAD_BYTES = 10_000_000  # 10 MB, the largest file one upload may carry
MAX_FILENAME_BYTES = 255  # the longest file name most file systems accept, in UTF-8 bytes
MAX_EXTENSION_BYTES = 16  # a longer suffix after the last dot is treated as part of the name
MAX_TITLE_LENGTH = 300  # the length of documents.title
MAX_NOTE_LENGTH = 10_000
MAX_MESSAGE_LENGTH = 4_000
MAX_PAGE_SIZE = 500


class PayloadTooLarge(CaseError):
    status = 413
    default_code = "too_large"


class UnsupportedMediaType(CaseError):
    status = 415
    default_code = "unsupported_type"


class ContentMismatch(CaseError):
    """The file's bytes are not of the type its name and declared type claim."""

    status = 422
    default_code = "content_mismatch"


def upload_limit_text() -> Text:
    return Text(
        f"Filen er for stor; en fil må højst fylde {MAX_UPLOAD_BYTES // 1_000_000} MB "
        f"({MAX_UPLOAD_BYTES:,} byte).".replace(",", "."),
        f"The file is too large; a file may be at most {MAX_UPLOAD_BYTES // 1_000_000} MB "
        f"({MAX_UPLOAD_BYTES:,} bytes).",
    )


# File types ----------------------------------------------------------------------------------

# Text files may contain tab, line feed, form feed and carriage return, but no other C0 or C1
# control characters, which only binary files have.
_BINARY_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")


def _text_charset(content: bytes) -> str | None:
    """Return the charset that decodes `content` as text, or None when it is binary."""
    for charset in ("utf-8", "windows-1252"):
        try:
            decoded = content.decode(charset)
        except UnicodeDecodeError:
            continue
        return None if _BINARY_CONTROLS.search(decoded) else charset
    return None


def _zip_contains(content: bytes, member: str) -> bool:
    """Check that `content` is a ZIP archive with `member`; reads only the central directory."""
    if not content.startswith(b"PK\x03\x04"):
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            return member in archive.namelist()
    except (zipfile.BadZipFile, ValueError, EOFError):
        return False


@dataclass(frozen=True)
class FileType:
    """A kind of file that may be uploaded, and how to recognise its bytes."""

    label: Text  # in the list of allowed types, e.g. "PDF"
    noun: Text  # in messages, e.g. "PDF-fil" / "PDF file"
    media_type: str
    extensions: tuple[str, ...]
    # Other media types that browsers and mail programs declare for the same files.
    aliases: frozenset[str]
    # Returns the Content-Type to store, or None when the bytes are not of this type.
    recognise: Callable[[bytes], str | None]


def _signature(media_type: str, prefix: bytes) -> Callable[[bytes], str | None]:
    return lambda content: media_type if content.startswith(prefix) else None


def _text(media_type: str) -> Callable[[bytes], str | None]:
    def recognise(content: bytes) -> str | None:
        charset = _text_charset(content)
        return f"{media_type}; charset={charset}" if charset else None

    return recognise


def _office(media_type: str, member: str) -> Callable[[bytes], str | None]:
    return lambda content: media_type if _zip_contains(content, member) else None


def _named(name: str) -> tuple[Text, Text]:
    return Text(name, name), Text(f"{name}-fil", f"{name} file")


_DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

FILE_TYPES: tuple[FileType, ...] = (
    FileType(
        *_named("PDF"),
        "application/pdf",
        (".pdf",),
        frozenset({"application/x-pdf"}),
        _signature("application/pdf", b"%PDF-"),
    ),
    FileType(*_named("PNG"), "image/png", (".png",), frozenset(), _signature("image/png", b"\x89PNG\r\n\x1a\n")),
    FileType(
        *_named("JPEG"),
        "image/jpeg",
        (".jpg", ".jpeg"),
        frozenset({"image/jpg", "image/pjpeg"}),
        _signature("image/jpeg", b"\xff\xd8\xff"),
    ),
    FileType(
        Text("tekst", "text"),
        Text("tekstfil", "text file"),
        "text/plain",
        (".txt",),
        frozenset(),
        _text("text/plain"),
    ),
    FileType(
        *_named("CSV"),
        "text/csv",
        (".csv",),
        # Windows declares CSV files as Excel files when Excel is installed.
        frozenset({"application/csv", "text/x-csv", "text/plain", "application/vnd.ms-excel"}),
        _text("text/csv"),
    ),
    FileType(*_named("DOCX"), _DOCX, (".docx",), frozenset(), _office(_DOCX, "word/document.xml")),
    FileType(*_named("XLSX"), _XLSX, (".xlsx",), frozenset(), _office(_XLSX, "xl/workbook.xml")),
)
_FILE_TYPE_BY_EXTENSION = {extension: kind for kind in FILE_TYPES for extension in kind.extensions}
# Declared types that say nothing about the file; the file name's extension decides then.
_GENERIC_MEDIA_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})

# First bytes of common files, to tell the user what a rejected file looks like.
_KNOWN_SIGNATURES: tuple[tuple[bytes, Text], ...] = (
    (b"MZ", Text("et Windows-program (EXE eller DLL)", "a Windows program (EXE or DLL)")),
    (b"\x7fELF", Text("et Linux-program (ELF)", "a Linux program (ELF)")),
    (b"\xcf\xfa\xed\xfe", Text("et macOS-program", "a macOS program")),
    (b"\xca\xfe\xba\xbe", Text("et macOS-program eller en Java-klasse", "a macOS program or a Java class")),
    (b"#!", Text("et script", "a script")),
    (b"%PDF-", Text("en PDF-fil", "a PDF file")),
    (b"\x89PNG", Text("et PNG-billede", "a PNG image")),
    (b"\xff\xd8\xff", Text("et JPEG-billede", "a JPEG image")),
    (b"GIF8", Text("et GIF-billede", "a GIF image")),
    (b"PK\x03\x04", Text("et ZIP-arkiv", "a ZIP archive")),
    (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        Text("et ældre Office-dokument (DOC eller XLS)", "an older Office document (DOC or XLS)"),
    ),
)


def _allowed_types() -> Text:
    def listed(language: Language) -> str:
        return ", ".join(f"{kind.label.get(language)} ({', '.join(kind.extensions)})" for kind in FILE_TYPES)

    return Text(f"Tilladte typer: {listed('da')}.", f"Allowed types: {listed('en')}.")


def _unsupported(filename: str, extension: str) -> UnsupportedMediaType:
    shown = extension or "(ingen/none)"
    return UnsupportedMediaType(
        Text(
            f"Filen '{filename}' kan ikke uploades: filtypen {shown} er ikke tilladt.",
            f"The file '{filename}' cannot be uploaded: the file type {shown} is not allowed.",
        ),
        field="file",
        hint=_allowed_types(),
    )


def resolve_file_type(filename: str, declared_type: str | None, content: bytes) -> str:
    """Check the file's type by its name, its declared type and its first bytes; return the Content-Type to store.

    The extension of `filename` must be on the allow-list (`FILE_TYPES`). The declared
    type must be that extension's type, one of its aliases, or generic
    (application/octet-stream). The bytes must then be of that type: PDF, PNG and JPEG by
    their signature, DOCX and XLSX as ZIP archives with the part every such file has, and
    plain text and CSV as UTF-8 or Windows-1252 text without binary control characters.
    """
    extension = _extension(filename)
    file_type = _FILE_TYPE_BY_EXTENSION.get(extension)
    if file_type is None:
        raise _unsupported(filename, extension)

    declared = (declared_type or "").split(";")[0].strip().lower()
    if declared not in _GENERIC_MEDIA_TYPES and declared != file_type.media_type and declared not in file_type.aliases:
        raise UnsupportedMediaType(
            Text(
                f"Filen '{filename}' er sendt som typen {declared}, men navnet ender på {extension} "
                f"({file_type.media_type}).",
                f"The file '{filename}' was sent as the type {declared}, but its name ends in {extension} "
                f"({file_type.media_type}).",
            ),
            code="type_mismatch",
            field="file",
            hint=Text(
                "Send filen med den type, der passer til endelsen, eller med application/octet-stream.",
                "Send the file with the type that fits its extension, or with application/octet-stream.",
            ),
        )

    content_type = file_type.recognise(content)
    if content_type is None:
        looks_like = next((text for prefix, text in _KNOWN_SIGNATURES if content.startswith(prefix)), None)
        resemblance = (
            Text(f" Den ligner {looks_like.da}.", f" It looks like {looks_like.en}.") if looks_like else Text("", "")
        )
        raise ContentMismatch(
            Text(
                f"Filen '{filename}' er ikke en {file_type.noun.da}: dens indhold passer ikke til endelsen "
                f"{extension}.{resemblance.da}",
                f"The file '{filename}' is not a {file_type.noun.en}: its content does not match the extension "
                f"{extension}.{resemblance.en}",
            ),
            field="file",
            hint=_allowed_types(),
        )
    return content_type


# File names ----------------------------------------------------------------------------------

# Characters that Windows does not allow in file names, and the path separators.
_RESERVED_CHARACTERS = re.compile(r'[<>:"/\\|?*]')
_WINDOWS_DEVICE_NAMES = frozenset(
    {"con", "prn", "aux", "nul"} | {f"com{digit}" for digit in range(1, 10)} | {f"lpt{digit}" for digit in range(1, 10)}
)
# Unicode categories dropped from file names: controls, format characters such as the
# direction overrides, surrogates, private use and unassigned code points.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})


def _extension(filename: str) -> str:
    stem, dot, suffix = filename.rpartition(".")
    return f".{suffix.lower()}" if dot and stem else ""


def sanitise_filename(raw: str) -> str:
    """Return a file name that is safe to store and to offer for download.

    Keeps only the last path component, drops control and format characters, replaces the
    characters Windows reserves with '_', collapses white space, strips dots and spaces at
    both ends, prefixes Windows device names (CON, NUL, ...) with '_', and shortens the
    name before its extension to at most `MAX_FILENAME_BYTES` bytes of UTF-8. Raises
    InvalidInput when nothing usable is left.
    """
    name = unicodedata.normalize("NFC", raw)
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(character for character in name if unicodedata.category(character) not in _DROPPED_CATEGORIES)
    name = _RESERVED_CHARACTERS.sub("_", name)
    name = " ".join(name.split()).strip(". ")
    if not name:
        raise InvalidInput(
            [
                FieldError(
                    "file",
                    "invalid_filename",
                    Text(
                        "Filnavnet mangler eller indeholder ingen brugbare tegn.",
                        "The file name is missing or contains no usable characters.",
                    ),
                    Text("Giv filen et navn som fx notat.pdf.", "Give the file a name such as memo.pdf."),
                )
            ]
        )

    extension = _extension(name)
    if len(extension.encode("utf-8")) > MAX_EXTENSION_BYTES:
        extension = ""
    stem = name[: len(name) - len(extension)] if extension else name
    if stem.split(".")[0].lower() in _WINDOWS_DEVICE_NAMES:
        stem = f"_{stem}"
    budget = MAX_FILENAME_BYTES - len(extension.encode("utf-8"))
    encoded = stem.encode("utf-8")
    if len(encoded) > budget:
        stem = encoded[:budget].decode("utf-8", errors="ignore").rstrip(". ")
    return f"{stem}{extension}"


# Views ---------------------------------------------------------------------------------------


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def document_record(document: Document | Any) -> dict[str, Any]:
    """Describe a document without its content; `document` is an ORM object or a row of its columns."""
    return {
        "number": document.number,
        "kind": document.kind,
        "title": document.title,
        "letter": document.letter_id,
        "language": document.language,
        "status": document.status,
        "content_type": document.content_type,
        "filename": document.filename,
        "size": document.size,
        "sha256": document.sha256,
        "created_at": _iso(document.created_at),
        "created_by": document.created_by,
        "sent_at": _iso(document.sent_at),
    }


def _entry_view(entry: CaseNote | CaseMessage) -> dict[str, Any]:
    return {"id": entry.id, "text": entry.text, "created_by": entry.created_by, "created_at": _iso(entry.created_at)}


def _event_view(event: CaseEvent) -> dict[str, Any]:
    return {
        "sequence": event.sequence,
        "at": _iso(event.at),
        "actor": event.actor,
        "command": event.command,
        "changes": event.changes,
        "previous_hash": event.previous_hash,
        "hash": event.hash,
    }


@dataclass(frozen=True)
class DocumentContent:
    """A document's bytes with the Content-Type and file name to serve them under."""

    filename: str
    content_type: str
    content: bytes


@dataclass(frozen=True)
class CaseVerification:
    """The audit chain report of one case, with the case's journal number."""

    journal_number: str
    report: ChainReport


_DOCUMENT_RECORD_COLUMNS = (
    Document.number,
    Document.kind,
    Document.title,
    Document.letter_id,
    Document.language,
    Document.status,
    Document.content_type,
    Document.filename,
    Document.size,
    Document.sha256,
    Document.created_at,
    Document.created_by,
    Document.sent_at,
    Document.recipient,
)


@dataclass(frozen=True)
class _EntryKind:
    """The differences between notes and chat messages."""

    table: type[CaseNote] | type[CaseMessage]
    command: str
    audit_key: str
    max_length: int
    name: Text


_NOTES = _EntryKind(CaseNote, "add_note", "notes", MAX_NOTE_LENGTH, Text("notaterne", "the notes"))
_MESSAGES = _EntryKind(
    CaseMessage, "add_message", "messages", MAX_MESSAGE_LENGTH, Text("beskederne", "the chat messages")
)


# The records of a case -------------------------------------------------------------------------


class CaseRecords:
    def __init__(self, service: Sagsflow) -> None:
        self.service = service

    # Documents -------------------------------------------------------------------------------

    def upload_document(
        self,
        actor: Actor,
        case_ref: str | int,
        *,
        filename: str,
        content: bytes,
        declared_type: str | None = None,
        title: str | None = None,
        expected_version: int | None = None,
    ) -> dict[str, Any]:
        """File an uploaded file on a case as a document of kind `upload`, numbered after the others.

        Size, file name, type and title are checked before the transaction starts, so a
        rejected file stores nothing. The audit event names the document's number, title,
        file name, type, size and SHA-256, not its content.
        """
        if len(content) > MAX_UPLOAD_BYTES:
            raise PayloadTooLarge(upload_limit_text(), field="file")
        safe_name = sanitise_filename(filename)
        if not content:
            raise InvalidInput(
                [FieldError("file", "empty", Text(f"Filen '{safe_name}' er tom.", f"The file '{safe_name}' is empty."))]
            )
        content_type = resolve_file_type(safe_name, declared_type, content)
        document_title = _document_title(title, safe_name)
        digest = hashlib.sha256(content).hexdigest()
        filed: list[Document] = []

        def file_upload(command: CaseCommand) -> None:
            if not actor.is_staff and command.case.status == CaseStatus.CLOSED:
                raise Conflict(
                    Text(
                        f"Sagen {command.case.journal_number} er afsluttet; du kan ikke uploade flere dokumenter.",
                        f"The case {command.case.journal_number} is closed; you cannot upload more documents.",
                    ),
                    code="case_closed",
                    hint=Text(
                        "Kontakt myndigheden, der behandlede sagen.", "Contact the authority that handled the case."
                    ),
                )
            document = command.add_document(
                kind=DocumentKind.UPLOAD,
                title=document_title,
                letter_id=None,
                language=command.case.language,
                content_type=content_type,
                body_text="",
                body_html=None,
                content=content,
                filename=safe_name,
                size=len(content),
                sha256=digest,
                status=DocumentStatus.FILED,
                recipient=None,
                step=None,
                sent_at=None,
            )
            command.changes["documents"][-1].update(
                {"filename": safe_name, "content_type": content_type, "size": len(content), "sha256": digest}
            )
            filed.append(document)

        view = self.service.run_command(
            actor,
            case_ref,
            expected_version,
            DEFAULT_LANGUAGE,
            "upload_document",
            file_upload,
            scope=Scope.DOCUMENTS_WRITE,
        )
        return {**document_record(filed[0]), "case_version": view["version"]}

    def _shown_to(self, session: Session, actor: Actor, case: Case) -> Callable[[Any], bool]:
        """Return the test of which documents `actor` may read: every one for staff, else `shown_to_applicant`."""
        if actor.is_staff:
            return lambda _document: True
        _, process = self.service.catalog.by_version_id(session, case.process_version_id)
        party = recipient_of(case, process)
        return lambda document: shown_to_applicant(document, party, actor.name)

    def list_documents(self, actor: Actor, case_ref: str | int) -> list[dict[str, Any]]:
        """List the case's documents that `actor` may read, without their content."""
        with self.service.database.read() as session:
            case = self.service.load_case(session, actor, case_ref)
            rows = session.execute(
                select(*_DOCUMENT_RECORD_COLUMNS).where(Document.case_id == case.id).order_by(Document.number)
            )
            shown = self._shown_to(session, actor, case)
            return [document_record(row) for row in rows if shown(row)]

    def document_content(self, actor: Actor, case_ref: str | int, number: int) -> DocumentContent:
        """Return a document's bytes: an upload's file, or the text of an application or letter as UTF-8."""
        with self.service.database.read() as session:
            case = self.service.load_case(session, actor, case_ref)
            document = session.scalars(
                select(Document)
                .where(Document.case_id == case.id, Document.number == number)
                .options(undefer(Document.content))
            ).one_or_none()
            if document is not None and not self._shown_to(session, actor, case)(document):
                document = None
            if document is None:
                raise NotFound(
                    Text(
                        f"Sagen {case.journal_number} har intet dokument nr. {number}, som du kan se.",
                        f"The case {case.journal_number} has no document number {number} that you can see.",
                    ),
                    code="unknown_document",
                    field="number",
                    hint=Text(
                        "Listen over sagens dokumenter viser de numre, du kan se.",
                        "The list of the case's documents shows the numbers you can see.",
                    ),
                )
            if document.content is not None:
                return DocumentContent(
                    document.filename or f"{case.journal_number}_{number}",
                    document.content_type,
                    document.content,
                )
            return DocumentContent(
                f"{document.kind}_{case.journal_number}_{number}.txt",
                document.content_type,
                document.body_text.encode("utf-8"),
            )

    # Notes and chat messages -----------------------------------------------------------------

    def add_note(
        self, actor: Actor, case_ref: str | int, text: str, expected_version: int | None = None
    ) -> dict[str, Any]:
        """Write a note on the case, such as oral information that matters (offentlighedsloven § 13)."""
        return self._add_entry(_NOTES, actor, case_ref, text, expected_version)

    def list_notes(self, actor: Actor, case_ref: str | int, limit: int = 100, offset: int = 0) -> dict[str, Any]:
        return self._list_entries(_NOTES, actor, case_ref, limit, offset)

    def add_message(
        self, actor: Actor, case_ref: str | int, text: str, expected_version: int | None = None
    ) -> dict[str, Any]:
        """Post a chat message between the staff working on the case."""
        return self._add_entry(_MESSAGES, actor, case_ref, text, expected_version)

    def list_messages(self, actor: Actor, case_ref: str | int, limit: int = 100, offset: int = 0) -> dict[str, Any]:
        return self._list_entries(_MESSAGES, actor, case_ref, limit, offset)

    def _add_entry(
        self, kind: _EntryKind, actor: Actor, case_ref: str | int, raw: str, expected_version: int | None
    ) -> dict[str, Any]:
        _require_staff(actor, kind.name)
        text = _entry_text(raw, kind.max_length)
        added: list[CaseNote | CaseMessage] = []

        def add(command: CaseCommand) -> None:
            entry = kind.table(case_id=command.case.id, text=text, created_by=actor.name, created_at=command.now)
            command.session.add(entry)
            # The event proves the text unchanged without copying it into the audit trail.
            command.changes[kind.audit_key] = [
                {"length": len(text), "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}
            ]
            added.append(entry)

        view = self.service.run_command(actor, case_ref, expected_version, DEFAULT_LANGUAGE, kind.command, add)
        return {**_entry_view(added[0]), "case_version": view["version"]}

    def _list_entries(
        self, kind: _EntryKind, actor: Actor, case_ref: str | int, limit: int, offset: int
    ) -> dict[str, Any]:
        _require_staff(actor, kind.name)
        limit = max(1, min(limit, MAX_PAGE_SIZE))
        offset = max(0, offset)
        with self.service.database.read() as session:
            case = self.service.load_case(session, actor, case_ref)
            total = session.scalar(select(func.count()).where(kind.table.case_id == case.id)) or 0
            # Without the annotation mypy types a select of either table as their base class.
            entries: ScalarResult[CaseNote | CaseMessage] = session.scalars(
                select(kind.table)
                .where(kind.table.case_id == case.id)
                .order_by(kind.table.id)
                .limit(limit)
                .offset(offset)
            )
            return {
                "total": total,
                "limit": limit,
                "offset": offset,
                "items": [_entry_view(entry) for entry in entries],
            }

    # The audit trail ---------------------------------------------------------------------------

    def audit_trail(self, actor: Actor, case_ref: str | int, language: Language) -> dict[str, Any]:
        """Return the case's audit events in sequence order and the result of verifying the case's audit trail."""
        _require_staff(actor, Text("revisionssporet", "the audit trail"))
        with self.service.database.read() as session:
            case = self.service.load_case(session, actor, case_ref)
            events = session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.sequence))
            return {
                "case": case.journal_number,
                "events": [_event_view(event) for event in events],
                "verification": verify_chain(session, case.id).as_dict(language),
            }

    def verify_audit(self, actor: Actor, case_ref: str | int | None = None) -> list[CaseVerification]:
        """Verify the audit trail of one case, or, when `case_ref` is None, of every case the actor may see.

        `verify_chain` checks each case's hash chain, its head on the case row, the case row
        and the case's documents. For a user who sees every team, verifying every case also
        reports the journal numbers whose case has been deleted.
        """
        _require_staff(actor, Text("revisionssporet", "the audit trail"))
        with self.service.database.read() as session:
            if case_ref is not None:
                case = self.service.load_case(session, actor, case_ref)
                return [CaseVerification(case.journal_number, verify_chain(session, case.id))]
            cases = list(session.scalars(select(Case).order_by(Case.id)))
            results = [
                CaseVerification(case.journal_number, verify_chain(session, case.id))
                for case in cases
                if self.service.may_see(actor, case)
            ]
            # Only a user who sees every team's cases can tell a deleted case from a hidden one.
            if self.service.access.sees_every_team(actor):
                results.extend(
                    CaseVerification(number, ChainReport(case_id=0, events=0, problem=case_missing(number)))
                    for number in missing_cases(session)
                )
            return results


def _require_staff(actor: Actor, what: Text) -> None:
    if not actor.is_staff:
        raise Forbidden(
            Text(
                f"Kun myndighedens medarbejdere har adgang til {what.da} på en sag.",
                f"Only the authority's staff have access to {what.en} of a case.",
            ),
            code="staff_only",
            hint=Text(
                "Det kræver rollen caseworker, approver eller admin.",
                "This requires the role caseworker, approver or admin.",
            ),
        )


def _entry_text(raw: str, max_length: int) -> str:
    """Return the note or message text stripped of surrounding white space, or raise InvalidInput."""
    text = raw.strip()
    error: FieldError | None = None
    if not text:
        error = FieldError("text", "required", Text("Teksten er tom.", "The text is empty."))
    elif len(text) > max_length:
        error = FieldError(
            "text",
            "too_long",
            Text(
                f"Teksten er på {len(text)} tegn; den må højst være på {max_length} tegn.",
                f"The text has {len(text)} characters; it may have at most {max_length}.",
            ),
            Text("Del teksten i flere.", "Split the text into several."),
        )
    else:
        try:
            check_text(text)
        except FieldValueError as invalid:
            error = FieldError("text", invalid.code, invalid.text, invalid.hint)
    if error is not None:
        raise InvalidInput([error])
    return text


def _document_title(title: str | None, filename: str) -> str:
    """Return the document's title: `title` checked and stripped, or the file name when none is given."""
    text = (title or "").strip()
    if not text:
        return filename[:MAX_TITLE_LENGTH]
    error: FieldError | None = None
    if len(text) > MAX_TITLE_LENGTH:
        error = FieldError(
            "title",
            "too_long",
            Text(
                f"Titlen må højst være på {MAX_TITLE_LENGTH} tegn.",
                f"The title may have at most {MAX_TITLE_LENGTH} characters.",
            ),
        )
    elif "\n" in text or "\r" in text:
        error = FieldError("title", "invalid", Text("Titlen skal stå på én linje.", "The title must be one line."))
    else:
        try:
            check_text(text)
        except FieldValueError as invalid:
            error = FieldError("title", invalid.code, invalid.text, invalid.hint)
    if error is not None:
        raise InvalidInput([error])
    return text
