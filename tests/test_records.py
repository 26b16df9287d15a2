"""Case records: uploaded documents, notes and chat messages, over HTTP and the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from typer.testing import CliRunner

import cli.records
from api.records import content_disposition
from cli.main import app as cli_app
from engine.auth import Actor
from engine.errors import Forbidden, InvalidInput
from engine.records import MAX_FILENAME_BYTES, MAX_UPLOAD_BYTES, CaseRecords, sanitise_filename
from engine.runtime.audit import STATE_KEY
from engine.service import Sagsflow
from engine.storage.tables import Case, CaseEvent, CaseStatus, Document
from tests.helpers import ADMIN, APPLICANT, CASEWORKER, TEAM, Tokens, example

auth = Tokens.header

PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"
# The first bytes of a Windows program: the MZ header and the DOS stub's start.
EXECUTABLE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00\xb8\x00\x00\x00" + b"\x00" * 64


def office_file(*members: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        for member in members:
            archive.writestr(member, "<xml/>")
    return buffer.getvalue()


DOCX = office_file("word/document.xml")
XLSX = office_file("xl/workbook.xml")
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def error_of(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    return body["error"]  # type: ignore[no-any-return]


@pytest.fixture
def case(client: TestClient, tokens: Tokens) -> dict[str, Any]:
    """A case submitted by the applicant; its receipt letter is sent, so the next document is number 3."""
    response = client.post("/cases", json=example("01"), headers=auth(tokens.applicant))
    assert response.status_code == 201
    body: dict[str, Any] = response.json()
    return body


def upload(
    client: TestClient,
    token: str,
    case: dict[str, Any],
    filename: str,
    content: bytes,
    media_type: str = "application/octet-stream",
    *,
    data: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    return client.post(
        f"/cases/{case['id']}/documents",
        files={"file": (filename, content, media_type)},
        data=data or {},
        headers={**auth(token), **(headers or {})},
    )


def stored_state(service: Sagsflow, case_id: int) -> tuple[int, int, int, int]:
    """The case's document count, documents, audit events and version, to show that nothing was stored."""
    with service.database.read() as session:
        row = session.get(Case, case_id)
        assert row is not None
        documents = len(list(session.scalars(select(Document.id).where(Document.case_id == case_id))))
        events = len(list(session.scalars(select(CaseEvent.id).where(CaseEvent.case_id == case_id))))
        return row.document_count, documents, events, row.version


def last_event(service: Sagsflow, case_id: int) -> CaseEvent:
    with service.database.read() as session:
        return session.scalars(
            select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.sequence.desc()).limit(1)
        ).one()


def close_case(service: Sagsflow, case_id: int) -> None:
    with service.database.write() as session:
        session.execute(update(Case).where(Case.id == case_id).values(status=CaseStatus.CLOSED))


# Uploads: success ------------------------------------------------------------------------------


def test_upload_files_numbered_document(
    client: TestClient, tokens: Tokens, case: dict[str, Any], service: Sagsflow
) -> None:
    response = upload(
        client, tokens.caseworker, case, "Tilladelse fra Togo.pdf", PDF, "application/pdf", data={"title": "Eksport"}
    )

    assert response.status_code == 201, response.json()
    document = response.json()
    assert document["number"] == 3
    assert document["kind"] == "upload"
    assert document["title"] == "Eksport"
    assert document["filename"] == "Tilladelse fra Togo.pdf"
    assert document["content_type"] == "application/pdf"
    assert document["size"] == len(PDF)
    assert document["sha256"] == hashlib.sha256(PDF).hexdigest()
    assert document["created_by"] == "karen"
    assert document["case_version"] == case["version"] + 1
    assert response.headers["Location"] == f"/cases/{case['id']}/documents/3"
    assert response.headers["ETag"] == f'"{case["version"] + 1}"'
    assert stored_state(service, case["id"])[:2] == (3, 3)


def test_upload_downloads_with_headers(client: TestClient, tokens: Tokens, case: dict[str, Any]) -> None:
    upload(client, tokens.caseworker, case, "Tilladelse fra Togo.pdf", PDF, "application/pdf")

    response = client.get(f"/cases/{case['id']}/documents/3/content", headers=auth(tokens.caseworker))

    assert response.status_code == 200
    assert response.content == PDF
    assert response.headers["Content-Type"] == "application/pdf"
    assert response.headers["Content-Disposition"] == (
        "attachment; filename=\"Tilladelse fra Togo.pdf\"; filename*=UTF-8''Tilladelse%20fra%20Togo.pdf"
    )
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_download_name_has_ascii_fallback(client: TestClient, tokens: Tokens, case: dict[str, Any]) -> None:
    upload(client, tokens.caseworker, case, "Tørv: Café.pdf", PDF)

    response = client.get(f"/cases/{case['id']}/documents/3/content", headers=auth(tokens.caseworker))

    assert response.headers["Content-Disposition"] == (
        "attachment; filename=\"Trv_ Cafe.pdf\"; filename*=UTF-8''T%C3%B8rv_%20Caf%C3%A9.pdf"
    )


def test_disposition_fallback_escapes_quotes() -> None:
    assert content_disposition('a"b\\c.pdf') == "attachment; filename=\"a_b_c.pdf\"; filename*=UTF-8''a%22b%5Cc.pdf"
    assert content_disposition("Æ.pdf").startswith('attachment; filename=".pdf"')
    assert content_disposition("ØÆ").startswith('attachment; filename="document"')


def test_upload_audit_names_document_not_content(
    client: TestClient, tokens: Tokens, case: dict[str, Any], service: Sagsflow
) -> None:
    upload(client, tokens.caseworker, case, "tilladelse.pdf", PDF)

    event = last_event(service, case["id"])

    assert event.command == "upload_document"
    assert event.actor == "karen"
    [recorded] = event.changes["documents"]
    assert set(recorded.pop("meta_sha256")) <= set("0123456789abcdef"), "a hash of who may see the document"
    assert recorded == {
        "number": 3,
        "title": "tilladelse.pdf",
        "filename": "tilladelse.pdf",
        "content_type": "application/pdf",
        "size": len(PDF),
        "sha256": hashlib.sha256(PDF).hexdigest(),
    }
    assert "%PDF" not in str(event.changes)


@pytest.mark.parametrize(
    ("filename", "content", "declared", "stored"),
    [
        ("foto.png", PNG, "image/png", "image/png"),
        ("foto.JPG", JPEG, "image/jpeg", "image/jpeg"),
        ("foto.jpeg", JPEG, "image/jpg", "image/jpeg"),
        ("notat.txt", "Kære sagsbehandler, vedlagt følger …\n".encode(), "text/plain", "text/plain; charset=utf-8"),
        ("liste.csv", "art;antal\nPython regius;60\nÆble;1\n".encode("cp1252"), "application/vnd.ms-excel", None),
        ("brev.docx", DOCX, DOCX_TYPE, DOCX_TYPE),
        ("ark.xlsx", XLSX, "application/octet-stream", XLSX_TYPE),
    ],
)
def test_allowed_types_are_filed(
    client: TestClient,
    tokens: Tokens,
    case: dict[str, Any],
    filename: str,
    content: bytes,
    declared: str,
    stored: str | None,
) -> None:
    response = upload(client, tokens.caseworker, case, filename, content, declared)

    assert response.status_code == 201, response.json()
    expected = stored or "text/csv; charset=windows-1252"
    assert response.json()["content_type"] == expected
    download = client.get(f"/cases/{case['id']}/documents/3/content", headers=auth(tokens.caseworker))
    assert download.content == content
    assert download.headers["Content-Type"].replace(" ", "").lower() == expected.replace(" ", "").lower()


def test_application_text_downloads(client: TestClient, tokens: Tokens, case: dict[str, Any]) -> None:
    response = client.get(f"/cases/{case['id']}/documents/1/content", headers=auth(tokens.caseworker))

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert "Python regius" in response.text
    assert f"application_{case['journal_number']}_1.txt" in response.headers["Content-Disposition"]


# Uploads: rejections ---------------------------------------------------------------------------


def test_file_over_limit_is_413(client: TestClient, tokens: Tokens, case: dict[str, Any], service: Sagsflow) -> None:
    before = stored_state(service, case["id"])

    response = upload(client, tokens.caseworker, case, "stor.pdf", b"%PDF-" + b"0" * (MAX_UPLOAD_BYTES - 4))

    assert response.status_code == 413
    assert error_of(response)["code"] == "too_large"
    assert "10 MB (10.000.000 byte)" in error_of(response)["message"]
    assert stored_state(service, case["id"]) == before


def test_body_over_upload_limit_is_413(
    client: TestClient, tokens: Tokens, case: dict[str, Any], service: Sagsflow
) -> None:
    before = stored_state(service, case["id"])

    response = upload(
        client,
        tokens.caseworker,
        case,
        "stor.pdf",
        b"%PDF-" + b"0" * (MAX_UPLOAD_BYTES + 200_000),
        headers={"Accept-Language": "en"},
    )

    assert response.status_code == 413
    assert error_of(response)["message"] == "The file is too large; a file may be at most 10 MB (10,000,000 bytes)."
    assert stored_state(service, case["id"]) == before


def test_upload_limit_applies_only_to_uploads(client: TestClient, tokens: Tokens) -> None:
    application = example("01")
    application["data"]["specimen_description"] = "x" * 2_000_000

    response = client.post("/cases", json=application, headers=auth(tokens.applicant))

    assert response.status_code == 413
    assert "1000000" in error_of(response)["message"]


def test_executable_named_pdf_is_422(
    client: TestClient, tokens: Tokens, case: dict[str, Any], service: Sagsflow
) -> None:
    before = stored_state(service, case["id"])

    response = upload(client, tokens.caseworker, case, "faktura.pdf", EXECUTABLE, "application/pdf")

    assert response.status_code == 422
    assert error_of(response)["code"] == "content_mismatch"
    assert error_of(response)["field"] == "file"
    assert "Filen 'faktura.pdf' er ikke en PDF-fil" in error_of(response)["message"]
    assert "Windows-program" in error_of(response)["message"]
    assert stored_state(service, case["id"]) == before


@pytest.mark.parametrize(
    ("filename", "content"),
    [
        ("billede.png", JPEG),
        ("billede.jpg", PNG),
        ("notat.txt", EXECUTABLE),
        ("data.csv", b"a;b\n\x00\x01\x02"),
        ("brev.docx", XLSX),
        ("ark.xlsx", b"PK\x03\x04 not really a zip archive"),
        ("ark.xlsx", PDF),
    ],
)
def test_content_not_matching_extension_is_422(
    client: TestClient, tokens: Tokens, case: dict[str, Any], filename: str, content: bytes
) -> None:
    response = upload(client, tokens.caseworker, case, filename, content)

    assert response.status_code == 422
    assert error_of(response)["code"] == "content_mismatch"


@pytest.mark.parametrize("filename", ["program.exe", "side.html", "arkiv.zip", "uden-endelse", "billede.gif"])
def test_type_not_on_allow_list_is_415(client: TestClient, tokens: Tokens, case: dict[str, Any], filename: str) -> None:
    response = upload(client, tokens.caseworker, case, filename, PDF, headers={"Accept-Language": "en"})

    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_type"
    assert "is not allowed" in error_of(response)["message"]
    assert "PDF (.pdf)" in error_of(response)["hint"]


def test_declared_type_mismatch_is_415(client: TestClient, tokens: Tokens, case: dict[str, Any]) -> None:
    response = upload(client, tokens.caseworker, case, "skema.pdf", PDF, "application/x-msdownload")

    assert response.status_code == 415
    assert error_of(response)["code"] == "type_mismatch"
    assert "application/x-msdownload" in error_of(response)["message"]


def test_empty_file_is_422(client: TestClient, tokens: Tokens, case: dict[str, Any]) -> None:
    response = upload(client, tokens.caseworker, case, "tom.pdf", b"")

    assert response.status_code == 422
    assert error_of(response)["errors"][0]["code"] == "empty"


def test_unusable_filename_is_422(client: TestClient, tokens: Tokens, case: dict[str, Any]) -> None:
    response = upload(client, tokens.caseworker, case, "..\u202e.", PDF)

    assert response.status_code == 422
    assert error_of(response)["errors"][0]["code"] == "invalid_filename"


def test_path_in_filename_is_removed(client: TestClient, tokens: Tokens, case: dict[str, Any]) -> None:
    # Written by hand, because HTTP clients percent-encode control characters in file names.
    body = (
        b"--boundary42\r\n"
        b'Content-Disposition: form-data; name="file"; filename="../../etc/cron.d/bilag\x07\x1b.pdf"\r\n'
        b"Content-Type: application/pdf\r\n\r\n" + PDF + b"\r\n--boundary42--\r\n"
    )
    response = client.post(
        f"/cases/{case['id']}/documents",
        content=body,
        headers={**auth(tokens.caseworker), "Content-Type": "multipart/form-data; boundary=boundary42"},
    )

    assert response.status_code == 201, response.json()
    assert response.json()["filename"] == "bilag.pdf"


@pytest.mark.parametrize(
    ("title", "code"),
    [("x" * 301, "too_long"), ("to\nlinjer", "invalid"), ("skjult\u202etekst", "invalid_value")],
)
def test_invalid_title_is_422(client: TestClient, tokens: Tokens, case: dict[str, Any], title: str, code: str) -> None:
    response = upload(client, tokens.caseworker, case, "bilag.pdf", PDF, data={"title": title})

    assert response.status_code == 422
    entry = error_of(response)["errors"][0]
    assert entry["field"] == "title"
    assert entry["code"] == code


def test_json_body_is_422(client: TestClient, tokens: Tokens, case: dict[str, Any]) -> None:
    response = client.post(f"/cases/{case['id']}/documents", json={"file": "JVBERi0="}, headers=auth(tokens.caseworker))

    assert response.status_code == 422
    assert error_of(response)["field"] == "file"


def test_stale_version_upload_is_409(
    client: TestClient, tokens: Tokens, case: dict[str, Any], service: Sagsflow
) -> None:
    upload(client, tokens.caseworker, case, "første.pdf", PDF)
    before = stored_state(service, case["id"])

    stale = upload(client, tokens.caseworker, case, "anden.pdf", PDF, headers={"If-Match": f'"{case["version"]}"'})
    current = upload(client, tokens.caseworker, case, "anden.pdf", PDF, data={"version": str(before[3])})

    assert stale.status_code == 409
    assert error_of(stale)["code"] == "stale_version"
    assert current.status_code == 201
    assert current.json()["number"] == 4


def test_upload_needs_token(client: TestClient, case: dict[str, Any]) -> None:
    response = client.post(f"/cases/{case['id']}/documents", files={"file": ("bilag.pdf", PDF, "application/pdf")})

    assert response.status_code == 401


def test_upload_needs_documents_scope(service: Sagsflow, case: dict[str, Any]) -> None:
    reader = Actor("karen", frozenset({"caseworker"}), scopes=frozenset({"cases:read"}))

    with pytest.raises(Forbidden) as raised:
        CaseRecords(service).upload_document(reader, case["id"], filename="bilag.pdf", content=PDF)

    assert raised.value.code == "missing_scope"


def test_upload_to_unknown_case_is_404(client: TestClient, tokens: Tokens) -> None:
    response = upload(client, tokens.caseworker, {"id": 999999}, "bilag.pdf", PDF)

    assert response.status_code == 404
    assert error_of(response)["code"] == "unknown_case"


# Uploads: who sees what ------------------------------------------------------------------------


def test_applicant_uploads_and_sees_own_upload(client: TestClient, tokens: Tokens, case: dict[str, Any]) -> None:
    response = upload(client, tokens.applicant, case, "eksporttilladelse.pdf", PDF)
    listed = client.get(f"/cases/{case['id']}/documents", headers=auth(tokens.applicant))
    download = client.get(f"/cases/{case['id']}/documents/3/content", headers=auth(tokens.applicant))

    assert response.status_code == 201, response.json()
    assert response.json()["created_by"] == "kragelund"
    assert [document["kind"] for document in listed.json()] == ["application", "letter", "upload"]
    assert download.content == PDF


def test_applicant_cannot_see_staff_upload(client: TestClient, tokens: Tokens, case: dict[str, Any]) -> None:
    upload(client, tokens.caseworker, case, "intern.pdf", PDF)

    listed = client.get(f"/cases/{case['id']}/documents", headers=auth(tokens.applicant))
    download = client.get(f"/cases/{case['id']}/documents/3/content", headers=auth(tokens.applicant))
    staff_list = client.get(f"/cases/{case['id']}/documents", headers=auth(tokens.caseworker))

    assert [document["number"] for document in listed.json()] == [1, 2]
    assert download.status_code == 404
    assert error_of(download)["code"] == "unknown_document"
    assert [document["number"] for document in staff_list.json()] == [1, 2, 3]


def test_other_applicant_gets_404(client: TestClient, tokens: Tokens, case: dict[str, Any]) -> None:
    upload(client, tokens.applicant, case, "bilag.pdf", PDF)

    posted = upload(client, tokens.other_applicant, case, "bilag.pdf", PDF)
    listed = client.get(f"/cases/{case['id']}/documents", headers=auth(tokens.other_applicant))
    download = client.get(f"/cases/{case['id']}/documents/3/content", headers=auth(tokens.other_applicant))

    assert posted.status_code == 404
    assert listed.status_code == 404
    assert download.status_code == 404


def test_unknown_document_number_is_404(client: TestClient, tokens: Tokens, case: dict[str, Any]) -> None:
    response = client.get(f"/cases/{case['id']}/documents/99/content", headers=auth(tokens.caseworker))

    assert response.status_code == 404
    assert error_of(response)["code"] == "unknown_document"


def test_applicant_cannot_upload_to_closed_case(
    client: TestClient, tokens: Tokens, case: dict[str, Any], service: Sagsflow
) -> None:
    close_case(service, case["id"])

    refused = upload(client, tokens.applicant, case, "sent.pdf", PDF)
    staff = upload(client, tokens.caseworker, case, "sent.pdf", PDF)

    assert refused.status_code == 409
    assert error_of(refused)["code"] == "case_closed"
    assert staff.status_code == 201


# File names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("rapport.pdf", "rapport.pdf"),
        ("C:\\Users\\karen\\Skrivebord\\rapport.pdf", "rapport.pdf"),
        ("/etc/passwd.txt", "passwd.txt"),
        ("rap\x00port\r\n.pdf", "rapport.pdf"),
        ("faktura\u202efdp.exe.pdf", "fakturafdp.exe.pdf"),
        ('a<b>c:d"e|f?g*h.pdf', "a_b_c_d_e_f_g_h.pdf"),
        ("  .skjult  fil . pdf", "skjult fil . pdf"),
        ("CON.pdf", "_CON.pdf"),
        ("nul.tar.pdf", "_nul.tar.pdf"),
        ("Cafe\u0301.pdf", "Café.pdf"),
    ],
)
def test_filename_is_sanitised(raw: str, clean: str) -> None:
    assert sanitise_filename(raw) == clean


def test_long_filename_keeps_extension() -> None:
    name = sanitise_filename("æ" * 300 + ".docx")

    assert name.endswith("æ.docx")
    assert len(name.encode("utf-8")) <= MAX_FILENAME_BYTES


def test_long_suffix_is_not_an_extension() -> None:
    name = sanitise_filename("a." + "x" * 400)

    assert len(name.encode("utf-8")) <= MAX_FILENAME_BYTES
    assert name.startswith("a.xxx")


@pytest.mark.parametrize("raw", ["", "...", "/", "\u200b\u200b", "dir/"])
def test_unusable_filename_is_rejected(raw: str) -> None:
    with pytest.raises(InvalidInput):
        sanitise_filename(raw)


# Notes and chat messages -------------------------------------------------------------------------


ENTRY_KINDS = [("notes", 10_000), ("messages", 4_000)]


@pytest.mark.parametrize(("kind", "limit"), ENTRY_KINDS)
def test_entries_are_filed_in_order(
    client: TestClient, tokens: Tokens, case: dict[str, Any], kind: str, limit: int
) -> None:
    first = client.post(
        f"/cases/{case['id']}/{kind}", json={"text": "  Ansøger ringede kl. 10.  "}, headers=auth(tokens.caseworker)
    )
    second = client.post(
        f"/cases/{case['id']}/{kind}", json={"text": "Svarede\npå mail."}, headers=auth(tokens.approver)
    )
    listed = client.get(f"/cases/{case['id']}/{kind}", headers=auth(tokens.caseworker)).json()

    assert first.status_code == 201, first.json()
    assert first.json()["text"] == "Ansøger ringede kl. 10."
    assert first.json()["created_by"] == "karen"
    assert first.json()["created_at"] == "2026-12-04T09:30:00+00:00"
    assert first.headers["ETag"] == f'"{case["version"] + 1}"'
    assert second.json()["case_version"] == case["version"] + 2
    assert listed["total"] == 2
    assert [(item["text"], item["created_by"]) for item in listed["items"]] == [
        ("Ansøger ringede kl. 10.", "karen"),
        ("Svarede\npå mail.", "bo"),
    ]


@pytest.mark.parametrize(("kind", "limit"), ENTRY_KINDS)
def test_entries_paginate(client: TestClient, tokens: Tokens, case: dict[str, Any], kind: str, limit: int) -> None:
    for number in range(3):
        client.post(f"/cases/{case['id']}/{kind}", json={"text": f"nr. {number}"}, headers=auth(tokens.caseworker))

    page = client.get(f"/cases/{case['id']}/{kind}?limit=1&offset=1", headers=auth(tokens.caseworker)).json()

    assert page["total"] == 3
    assert [item["text"] for item in page["items"]] == ["nr. 1"]


@pytest.mark.parametrize(("kind", "limit"), ENTRY_KINDS)
def test_entry_audit_has_hash_not_text(
    client: TestClient, tokens: Tokens, case: dict[str, Any], service: Sagsflow, kind: str, limit: int
) -> None:
    client.post(f"/cases/{case['id']}/{kind}", json={"text": "Fortroligt"}, headers=auth(tokens.caseworker))

    event = last_event(service, case["id"])

    assert event.command == {"notes": "add_note", "messages": "add_message"}[kind]
    assert event.actor == "karen"
    recorded = {key: value for key, value in event.changes.items() if key != STATE_KEY}
    assert recorded == {kind: [{"length": 10, "sha256": hashlib.sha256(b"Fortroligt").hexdigest()}]}


@pytest.mark.parametrize(("kind", "limit"), ENTRY_KINDS)
def test_entry_leaves_case_data_unchanged(
    client: TestClient, tokens: Tokens, case: dict[str, Any], kind: str, limit: int
) -> None:
    before = client.get(f"/cases/{case['id']}", headers=auth(tokens.caseworker)).json()

    client.post(f"/cases/{case['id']}/{kind}", json={"text": "Notat"}, headers=auth(tokens.caseworker))
    after = client.get(f"/cases/{case['id']}", headers=auth(tokens.caseworker)).json()

    assert after["data"] == before["data"]
    assert after["documents"] == before["documents"]
    assert after["checklist"] == before["checklist"]


@pytest.mark.parametrize(("kind", "limit"), ENTRY_KINDS)
@pytest.mark.parametrize(
    ("text_of", "code"),
    [
        (lambda limit: "", "required"),
        (lambda limit: " \n\t ", "required"),
        (lambda limit: "x" * (limit + 1), "too_long"),
        (lambda limit: "ringede\x00", "invalid_value"),
        (lambda limit: "ringede \u202eer", "invalid_value"),
    ],
    ids=["empty", "blank", "too-long", "control", "direction"],
)
def test_invalid_entry_is_422(
    client: TestClient,
    tokens: Tokens,
    case: dict[str, Any],
    service: Sagsflow,
    kind: str,
    limit: int,
    text_of: Any,
    code: str,
) -> None:
    before = stored_state(service, case["id"])

    response = client.post(
        f"/cases/{case['id']}/{kind}", json={"text": text_of(limit)}, headers=auth(tokens.caseworker, "en")
    )

    assert response.status_code == 422
    entry = error_of(response)["errors"][0]
    assert entry["field"] == "text"
    assert entry["code"] == code
    if code == "too_long":
        assert str(limit) in entry["message"]
    assert stored_state(service, case["id"]) == before


@pytest.mark.parametrize(("kind", "limit"), ENTRY_KINDS)
def test_entry_at_limit_is_filed(
    client: TestClient, tokens: Tokens, case: dict[str, Any], kind: str, limit: int
) -> None:
    response = client.post(f"/cases/{case['id']}/{kind}", json={"text": "ø" * limit}, headers=auth(tokens.caseworker))

    assert response.status_code == 201


@pytest.mark.parametrize(("kind", "limit"), ENTRY_KINDS)
def test_applicant_gets_403_for_entries(
    client: TestClient, tokens: Tokens, case: dict[str, Any], kind: str, limit: int
) -> None:
    posted = client.post(f"/cases/{case['id']}/{kind}", json={"text": "Hej"}, headers=auth(tokens.applicant))
    listed = client.get(f"/cases/{case['id']}/{kind}", headers=auth(tokens.applicant))

    assert posted.status_code == 403
    assert error_of(posted)["code"] == "staff_only"
    assert listed.status_code == 403


@pytest.mark.parametrize(("kind", "limit"), ENTRY_KINDS)
def test_entries_of_unknown_case_are_404(client: TestClient, tokens: Tokens, kind: str, limit: int) -> None:
    posted = client.post(f"/cases/999999/{kind}", json={"text": "Hej"}, headers=auth(tokens.caseworker))
    listed = client.get(f"/cases/999999/{kind}", headers=auth(tokens.caseworker))

    assert posted.status_code == 404
    assert listed.status_code == 404


@pytest.mark.parametrize(("kind", "limit"), ENTRY_KINDS)
def test_stale_version_entry_is_409(
    client: TestClient, tokens: Tokens, case: dict[str, Any], kind: str, limit: int
) -> None:
    client.post(f"/cases/{case['id']}/{kind}", json={"text": "Første"}, headers=auth(tokens.caseworker))

    stale = client.post(
        f"/cases/{case['id']}/{kind}",
        json={"text": "Anden", "version": case["version"]},
        headers=auth(tokens.caseworker),
    )

    assert stale.status_code == 409
    assert error_of(stale)["code"] == "stale_version"


@pytest.mark.parametrize(("kind", "limit"), ENTRY_KINDS)
def test_entry_with_unknown_key_is_422(
    client: TestClient, tokens: Tokens, case: dict[str, Any], kind: str, limit: int
) -> None:
    response = client.post(
        f"/cases/{case['id']}/{kind}", json={"text": "Hej", "author": "bo"}, headers=auth(tokens.caseworker)
    )

    assert response.status_code == 422
    assert error_of(response)["field"] == "author"


# The command line --------------------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def cli_case(service: Sagsflow, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """A submitted case; the CLI's commands run on the test's engine and database."""
    monkeypatch.setattr(cli.records, "open_service", lambda: service)
    monkeypatch.chdir(tmp_path)
    application = example("01")
    return service.submit(APPLICANT, application["process"], application["data"], "da")


def invoke(*arguments: str) -> tuple[int, str]:
    result = runner.invoke(cli_app, list(arguments), env={"SAGSFLOW_LANGUAGE": "da"})
    return result.exit_code, result.output


def test_cli_upload_and_download(cli_case: dict[str, Any], tmp_path: Path, service: Sagsflow) -> None:
    source = tmp_path / "bilag.pdf"
    source.write_bytes(PDF)

    uploaded = invoke("document", "upload", cli_case["journal_number"], str(source), "--title", "Bilag")
    downloaded = invoke("document", "download", cli_case["journal_number"], "3", "--output", "kopi.pdf")

    assert uploaded[0] == 0, uploaded[1]
    assert f"Dokument 3 'Bilag' (bilag.pdf, {len(PDF)} byte, application/pdf) er journaliseret." in uploaded[1]
    assert hashlib.sha256(PDF).hexdigest() in uploaded[1]
    assert downloaded[0] == 0, downloaded[1]
    assert (tmp_path / "kopi.pdf").read_bytes() == PDF
    assert service.get_case(CASEWORKER, cli_case["id"], "da")["documents"][2]["created_by"].startswith("cli:")


def test_cli_download_keeps_existing_file(cli_case: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "kopi.txt").write_text("mine", encoding="utf-8")

    refused = invoke("document", "download", cli_case["journal_number"], "1", "--output", "kopi.txt")
    forced = invoke("document", "download", cli_case["journal_number"], "1", "--output", "kopi.txt", "--force")

    assert refused[0] == 1
    assert "--force" in refused[1]
    assert forced[0] == 0
    assert "Python regius" in (tmp_path / "kopi.txt").read_text(encoding="utf-8")


def test_cli_upload_rejects_executable(cli_case: dict[str, Any], tmp_path: Path) -> None:
    source = tmp_path / "faktura.pdf"
    source.write_bytes(EXECUTABLE)

    code, output = invoke("document", "upload", cli_case["journal_number"], str(source))

    assert code == 1
    assert "er ikke en PDF-fil" in output


def test_cli_upload_rejects_large_file(cli_case: dict[str, Any], tmp_path: Path) -> None:
    source = tmp_path / "stor.pdf"
    with source.open("wb") as handle:
        handle.truncate(MAX_UPLOAD_BYTES + 1)

    code, output = invoke("document", "upload", cli_case["journal_number"], str(source))

    assert code == 1
    assert "10 MB" in output


def test_cli_upload_of_missing_file_fails(cli_case: dict[str, Any], tmp_path: Path) -> None:
    code, output = invoke("document", "upload", cli_case["journal_number"], str(tmp_path / "findes-ikke.pdf"))

    assert code == 1
    assert "findes ikke" in output


def test_cli_note_add_and_list(cli_case: dict[str, Any]) -> None:
    added = invoke("note", "add", cli_case["journal_number"], "Ansøger ringede og bad om status.")
    listed = invoke("note", "list", cli_case["journal_number"])

    assert added[0] == 0, added[1]
    assert "Notat 1 er skrevet på sagen" in added[1]
    assert listed[0] == 0
    assert "Ansøger ringede og bad om status." in listed[1]
    assert "1 notat." in listed[1]


def test_cli_empty_note_fails(cli_case: dict[str, Any]) -> None:
    code, output = invoke("note", "add", cli_case["journal_number"], "   ")

    assert code == 1
    assert "tekst" in output.lower()


def test_cli_note_on_unknown_case_fails(cli_case: dict[str, Any]) -> None:
    code, output = invoke("note", "add", "2026-999999", "Hej")

    assert code == 1
    assert "findes ikke" in output


def test_streamed_body_over_upload_limit_is_413(
    client: TestClient, tokens: Tokens, case: dict[str, Any], service: Sagsflow
) -> None:
    before = stored_state(service, case["id"])

    def chunks() -> Any:
        yield b'--boundary42\r\nContent-Disposition: form-data; name="file"; filename="stor.pdf"\r\n\r\n%PDF-'
        for _ in range(11):
            yield b"0" * 1_000_000
        yield b"\r\n--boundary42--\r\n"

    # A generator body is sent without Content-Length, so the limit applies while it is read.
    response = client.post(
        f"/cases/{case['id']}/documents",
        content=chunks(),
        headers={**auth(tokens.caseworker), "Content-Type": "multipart/form-data; boundary=boundary42"},
    )

    assert response.status_code == 413
    assert "10 MB" in error_of(response)["message"]
    assert stored_state(service, case["id"]) == before


def test_cli_note_and_upload_as_a_named_user(cli_case: dict[str, Any], tmp_path: Path, service: Sagsflow) -> None:
    service.add_user(ADMIN, "karen", ["caseworker"], [TEAM])
    service.add_user(ADMIN, "ole", ["caseworker"], ["skov"])
    source = tmp_path / "bilag.pdf"
    source.write_bytes(PDF)

    noted = invoke("note", "add", cli_case["journal_number"], "Ringede til ansøger.", "--as", "karen")
    uploaded = invoke("document", "upload", cli_case["journal_number"], str(source), "--as", "karen")
    other_team = invoke("note", "add", cli_case["journal_number"], "Ser ikke sagen.", "--as", "ole")
    unknown = invoke("note", "add", cli_case["journal_number"], "Hej", "--as", "nobody")

    assert noted[0] == 0, noted[1]
    assert uploaded[0] == 0, uploaded[1]
    notes = CaseRecords(service).list_notes(CASEWORKER, cli_case["id"], limit=10)["items"]
    assert [note["created_by"] for note in notes] == ["karen"]
    assert service.get_case(CASEWORKER, cli_case["id"], "da")["documents"][-1]["created_by"] == "karen"
    assert other_team[0] == 1, "a caseworker of another team does not see the case"
    assert "findes ikke" in other_team[1]
    assert unknown[0] == 1
    assert "nobody" in unknown[1]
