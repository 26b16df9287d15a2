"""Case records: uploaded documents, notes, chat messages and the audit trail.

Uploads are `multipart/form-data` with the file in the part `file` and an optional
`title` and `version`; `api/limits.py` lets their bodies be larger than other requests.
Notes and chat messages are JSON: `{"text": "...", "version": n}`.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Form, Header, Path, Query, Request, Response, UploadFile
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from api.deps import ActorDep, LanguageDep, expected_version, get_service
from engine.records import MAX_UPLOAD_BYTES, CaseRecords

router = APIRouter()


def get_records(request: Request) -> CaseRecords:
    return CaseRecords(get_service(request))


RecordsDep = Annotated[CaseRecords, Depends(get_records)]
DocumentNumber = Annotated[int, Path(ge=1, le=1_000_000_000)]
PageLimit = Annotated[int, Query(ge=1, le=500)]
PageOffset = Annotated[int, Query(ge=0, le=1_000_000_000)]


class EntryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="The text; surrounding white space is removed.")
    version: StrictInt | None = Field(default=None, ge=1, description="The case version the client last saw.")


def content_disposition(filename: str) -> str:
    """Build an `attachment` Content-Disposition with an ASCII fallback and the UTF-8 name (RFC 6266, RFC 8187)."""
    fallback = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode("ascii")
    fallback = "".join(
        "_" if character in '"\\' or not character.isprintable() else character for character in fallback
    )
    return f"attachment; filename=\"{fallback or 'document'}\"; filename*=UTF-8''{quote(filename, safe='')}"


# Documents -------------------------------------------------------------------------------------


@router.post("/cases/{case_ref}/documents", status_code=201, tags=["documents"])
def upload_document(
    case_ref: str,
    file: Annotated[UploadFile, File(description="The file: PDF, PNG, JPEG, plain text, CSV, DOCX or XLSX.")],
    actor: ActorDep,
    records: RecordsDep,
    response: Response,
    title: Annotated[str | None, Form(description="The document's title; the file name when left out.")] = None,
    version: Annotated[int | None, Form(ge=1, description="The case version the client last saw.")] = None,
    if_match: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    # One byte more than the limit is enough to tell that the file is too large.
    content = file.file.read(MAX_UPLOAD_BYTES + 1)
    document = records.upload_document(
        actor,
        case_ref,
        filename=file.filename or "",
        content=content,
        declared_type=file.content_type,
        title=title,
        expected_version=expected_version(version, if_match),
    )
    response.headers["Location"] = f"/cases/{case_ref}/documents/{document['number']}"
    response.headers["ETag"] = f'"{document["case_version"]}"'
    return document


@router.get("/cases/{case_ref}/documents", tags=["documents"])
def list_documents(case_ref: str, actor: ActorDep, records: RecordsDep) -> list[dict[str, Any]]:
    return records.list_documents(actor, case_ref)


@router.get(
    "/cases/{case_ref}/documents/{number}/content",
    tags=["documents"],
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "The document's bytes."}},
)
def document_content(case_ref: str, number: DocumentNumber, actor: ActorDep, records: RecordsDep) -> Response:
    document = records.document_content(actor, case_ref, number)
    return Response(
        content=document.content,
        media_type=document.content_type,
        headers={
            "Content-Disposition": content_disposition(document.filename),
            # Browsers must not guess another type, e.g. HTML, from an uploaded file's bytes.
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
        },
    )


# Notes and chat messages -----------------------------------------------------------------------


@router.post("/cases/{case_ref}/notes", status_code=201, tags=["records"])
def add_note(
    case_ref: str,
    body: EntryRequest,
    actor: ActorDep,
    records: RecordsDep,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    note = records.add_note(actor, case_ref, body.text, expected_version(body.version, if_match))
    response.headers["ETag"] = f'"{note["case_version"]}"'
    return note


@router.get("/cases/{case_ref}/notes", tags=["records"])
def list_notes(
    case_ref: str, actor: ActorDep, records: RecordsDep, limit: PageLimit = 100, offset: PageOffset = 0
) -> dict[str, Any]:
    return records.list_notes(actor, case_ref, limit, offset)


@router.post("/cases/{case_ref}/messages", status_code=201, tags=["records"])
def add_message(
    case_ref: str,
    body: EntryRequest,
    actor: ActorDep,
    records: RecordsDep,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    message = records.add_message(actor, case_ref, body.text, expected_version(body.version, if_match))
    response.headers["ETag"] = f'"{message["case_version"]}"'
    return message


@router.get("/cases/{case_ref}/messages", tags=["records"])
def list_messages(
    case_ref: str, actor: ActorDep, records: RecordsDep, limit: PageLimit = 100, offset: PageOffset = 0
) -> dict[str, Any]:
    return records.list_messages(actor, case_ref, limit, offset)


# The audit trail -------------------------------------------------------------------------------


@router.get("/cases/{case_ref}/audit", tags=["records"])
def audit_trail(case_ref: str, actor: ActorDep, records: RecordsDep, language: LanguageDep) -> dict[str, Any]:
    """Return the case's audit events and the result of verifying them.

    `verification.problem` is null when the chain, its head on the case row, the case row
    and the documents all match. Otherwise it describes the first problem with its `kind`,
    the event's `sequence`, the `document` number where one is concerned, and a `message`.
    """
    return records.audit_trail(actor, case_ref, language)
