"""The reply page a party opens from a hearing letter, and postal addresses of hearing parties.

`GET /hearing-replies/{token}` returns an HTML page with a form to a browser, and JSON
as before to every other client. The form posts to `/hearing-replies/{token}/form`. A
party may have a postal address, which the letter shows and physical mail uses.
"""

from __future__ import annotations

import html
import re
import secrets
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import select

from api.hearings import prefers_html
from cli.cases import _party
from engine.adapters.digital_post import MemoryDigitalPost, normalise_id
from engine.adapters.physical_mail import MemoryPhysicalMail
from engine.records import MAX_UPLOAD_BYTES
from engine.service import Sagsflow
from engine.storage.database import Database
from engine.storage.tables import HearingParty, OutboxMessage
from tests.conftest import Clock
from tests.helpers import Tokens
from tests.test_hearings import (
    MUSEUM,
    PDF_BYTES,
    PERSON,
    PNG_BYTES,
    QUESTION,
    consultation_case,
    fetch,
    open_hearing,
    opened,
    reply_tokens,
    snapshot,
    step,
    zip_bytes,
)

auth = Tokens.header

# The Accept header that Firefox sends when it opens a link.
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
BROWSER_EN = {**BROWSER, "Accept-Language": "en-GB,en;q=0.9"}
ADDRESS = {"address": "Kajgade 1", "postcode": "8600", "city": "Silkeborg"}
REPLY = "Museet har ingen indvendinger <mod> mærkning & chip."


def museum_token(client: TestClient, tokens: Tokens, post: MemoryDigitalPost) -> tuple[dict[str, Any], str]:
    case = opened(client, tokens, consultation_case(client, tokens))
    return case, reply_tokens(post, case)["29979812"]


def send_form(
    client: TestClient,
    token: str,
    text: str,
    files: list[tuple[str, bytes, str]] | None = None,
    headers: dict[str, str] | None = None,
    lang: str = "da",
) -> Response:
    """Post the reply form as a browser does, built by hand because httpx leaves out an empty file name.

    The text's line breaks go as CRLF, and without files the empty file input still sends
    one part with `filename=""` and no content.
    """
    boundary = f"----formboundary{secrets.token_hex(8)}"
    text_part = f'Content-Disposition: form-data; name="text"\r\n\r\n{text.replace(chr(10), chr(13) + chr(10))}'
    parts = [text_part.encode()]
    for name, content, content_type in files or [("", b"", "application/octet-stream")]:
        header = f'Content-Disposition: form-data; name="files"; filename="{name}"\r\nContent-Type: {content_type}'
        parts.append(header.encode() + b"\r\n\r\n" + content)
    body = b"".join(f"--{boundary}\r\n".encode() + part + b"\r\n" for part in parts) + f"--{boundary}--\r\n".encode()
    return client.post(
        f"/hearing-replies/{token}/form?lang={lang}",
        content=body,
        headers={**(headers or BROWSER), "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )


def textarea(page: str) -> str:
    match = re.search(r"<textarea[^>]*>\n(.*?)</textarea>", page, re.DOTALL)
    assert match, page
    return html.unescape(match.group(1))


def assert_security_headers(response: Response) -> None:
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "style-src 'unsafe-inline'" in policy
    assert "form-action 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"


# Choosing between the page and JSON -----------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, False),
        ("", False),
        ("*/*", False),
        ("application/json", False),
        ("text/html, application/json", False),
        ("application/json;q=0.5, text/html", True),
        ("text/html;q=0.5, */*", False),
        ("text/html;q=0.5, application/json;q=0.1, */*", True),
        ("text/html;q=0", False),
        ("text/html;q=x", False),
        (BROWSER["Accept"], True),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8", True),
    ],
)
def test_prefers_html_by_accept(accept: str | None, expected: bool) -> None:
    assert prefers_html(accept) is expected


def test_reply_page_for_browser(client: TestClient, tokens: Tokens, post: MemoryDigitalPost) -> None:
    case, token = museum_token(client, tokens, post)

    page = client.get(f"/hearing-replies/{token}", headers=BROWSER)

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<html lang="da">' in page.text
    assert "Miljøstyrelsen" in page.text
    assert case["journal_number"] in page.text
    assert "CITES-importtilladelse" in page.text
    assert "Senest 28. december 2026" in page.text
    assert "<h1>Svar på høring</h1>" in page.text
    assert f'action="/hearing-replies/{token}/form?lang=da"' in page.text
    assert 'enctype="multipart/form-data"' in page.text
    assert '<textarea id="text" name="text"' in page.text
    assert re.search(r'<input type="file" id="files" name="files" multiple accept="[^"]*application/pdf', page.text)
    assert "PDF, PNG, JPEG eller ren tekst (.txt)" in page.text
    assert "højst 10 MB" in page.text
    assert '<button type="submit">Send svar</button>' in page.text
    assert "<script" not in page.text
    assert "http://" not in page.text
    assert "https://" not in page.text
    for private in ("Jens Hansen", "150372-1234", "Kragelund", "90131443", QUESTION):
        assert private not in page.text
    assert_security_headers(page)


@pytest.mark.parametrize(
    ("headers", "query"),
    [(BROWSER_EN, ""), (BROWSER, "?lang=en")],
    ids=["accept-language", "query"],
)
def test_reply_page_in_english(
    client: TestClient, tokens: Tokens, post: MemoryDigitalPost, headers: dict[str, str], query: str
) -> None:
    _, token = museum_token(client, tokens, post)

    page = client.get(f"/hearing-replies/{token}{query}", headers=headers)

    assert page.status_code == 200
    assert '<html lang="en">' in page.text
    assert "CITES import permit" in page.text
    assert "No later than 28 December 2026" in page.text
    assert "<h1>Reply to a consultation</h1>" in page.text
    assert f'action="/hearing-replies/{token}/form?lang=en"' in page.text
    assert "Send reply" in page.text


def test_unknown_lang_falls_back(client: TestClient, tokens: Tokens, post: MemoryDigitalPost) -> None:
    _, token = museum_token(client, tokens, post)

    page = client.get(f"/hearing-replies/{token}?lang=fr", headers=BROWSER_EN)

    assert page.status_code == 200
    assert '<html lang="en">' in page.text


@pytest.mark.parametrize(
    "headers",
    [{}, {"Accept": "application/json"}, {"Accept": "*/*"}, {"Accept": "text/html, application/json"}],
    ids=["default", "json", "any", "tie"],
)
def test_reply_link_keeps_json(
    client: TestClient, tokens: Tokens, post: MemoryDigitalPost, headers: dict[str, str]
) -> None:
    case, token = museum_token(client, tokens, post)

    shown = client.get(f"/hearing-replies/{token}", headers=headers)

    assert shown.status_code == 200
    assert shown.headers["content-type"] == "application/json"
    assert shown.json() == {
        "journal_number": case["journal_number"],
        "process": "CITES-importtilladelse",
        "kind": "hearing",
        "deadline": "2026-12-28T22:59:59+00:00",
    }


# Replying through the form -------------------------------------------------------------------


def test_form_reply_files_two_attachments(
    client: TestClient, tokens: Tokens, post: MemoryDigitalPost, database: Database
) -> None:
    case, token = museum_token(client, tokens, post)
    photo = PNG_BYTES + bytes(100)

    receipt = send_form(
        client,
        token,
        REPLY,
        [("udtalelse.pdf", PDF_BYTES, "application/pdf"), ("foto.png", photo, "image/png")],
    )

    assert receipt.status_code == 201, receipt.text
    assert receipt.headers["content-type"].startswith("text/html")
    assert "Tak, vi har modtaget dit svar" in receipt.text
    assert case["journal_number"] in receipt.text
    assert re.search(r"<dt>Bilag</dt>\s*<dd>2</dd>", receipt.text)
    assert re.search(r"<dt>Modtaget</dt>\s*<dd>\d+\. \w+ \d{4} kl\. \d\d\.\d\d</dd>", receipt.text)
    assert_security_headers(receipt)

    case = fetch(client, tokens, case)
    row = step(case, "hearing_reply_1")
    assert row["label"] == "Høringssvar"
    assert row["kind"] == "hearing_reply"
    assert row["status"] == "done"
    filed = [document for document in case["documents"] if document["kind"] == "hearing_reply"]
    assert [document["title"] for document in filed] == [
        "Høringssvar fra Statens Naturhistoriske Museum",
        "udtalelse.pdf",
        "foto.png",
    ]
    text = client.get(f"/cases/{case['id']}/documents/{filed[0]['number']}/content", headers=auth(tokens.caseworker))
    assert text.text == REPLY
    image = client.get(f"/cases/{case['id']}/documents/{filed[2]['number']}/content", headers=auth(tokens.caseworker))
    assert image.content == photo
    with database.read() as session:
        party = session.scalars(select(HearingParty).where(HearingParty.party_id == "29979812")).one()
    assert party.used_at is not None


def test_form_reply_in_english(client: TestClient, tokens: Tokens, post: MemoryDigitalPost) -> None:
    _, token = museum_token(client, tokens, post)

    receipt = send_form(client, token, "No objections.", headers=BROWSER_EN, lang="en")

    assert receipt.status_code == 201, receipt.text
    assert "Thank you, we have received your reply" in receipt.text
    assert re.search(r"<dt>Attachments</dt>\s*<dd>0</dd>", receipt.text)
    assert re.search(r"<dd>\d+ \w+ \d{4} at \d\d:\d\d</dd>", receipt.text)


def test_form_ignores_empty_file_input(client: TestClient, tokens: Tokens, post: MemoryDigitalPost) -> None:
    case, token = museum_token(client, tokens, post)

    receipt = send_form(client, token, "Ingen bemærkninger.")

    assert receipt.status_code == 201, receipt.text
    assert re.search(r"<dt>Bilag</dt>\s*<dd>0</dd>", receipt.text)
    filed = [document for document in fetch(client, tokens, case)["documents"] if document["kind"] == "hearing_reply"]
    assert len(filed) == 1


def test_form_rejects_fake_pdf_keeps_text(
    client: TestClient, tokens: Tokens, post: MemoryDigitalPost, database: Database
) -> None:
    case, token = museum_token(client, tokens, post)
    before = snapshot(database, case["id"])
    typed = "Første linje.\n<script>alert(1)</script> & mere."

    page = send_form(
        client,
        token,
        typed,
        [("udtalelse.pdf", zip_bytes(), "application/pdf"), ("foto.png", PNG_BYTES, "image/png")],
    )

    assert page.status_code == 422
    assert page.headers["content-type"].startswith("text/html")
    assert "Svaret er ikke sendt" in page.text
    assert 'role="alert"' in page.text
    assert "Filen 'udtalelse.pdf' er ikke en PDF-fil" in html.unescape(page.text)
    assert 'aria-invalid="true"' in page.text
    assert textarea(page.text) == typed
    assert "<script>alert(1)</script>" not in page.text
    assert f'action="/hearing-replies/{token}/form?lang=da"' in page.text
    assert_security_headers(page)
    assert snapshot(database, case["id"]) == before
    assert client.get(f"/hearing-replies/{token}", headers=BROWSER).status_code == 200, "the link still works"


def test_form_lists_every_problem(client: TestClient, tokens: Tokens, post: MemoryDigitalPost) -> None:
    _, token = museum_token(client, tokens, post)

    page = send_form(
        client,
        token,
        "   ",
        [("tom.txt", b"", "text/plain"), ("program.exe", b"MZ" + bytes(20), "application/octet-stream")],
    )

    assert page.status_code == 422
    problems = re.findall(r"<li>\s*(.*?)\s*</li>", page.text, re.DOTALL)
    assert len(problems) == 3, problems
    assert 'href="#text">Skriv dit svar.' in page.text
    assert "tom.txt: Filen er tom." in page.text
    assert "program.exe" in problems[2]
    assert "Højst 100.000 tegn." in page.text


def test_form_too_many_files(client: TestClient, tokens: Tokens, post: MemoryDigitalPost) -> None:
    _, token = museum_token(client, tokens, post)
    files = [(f"note-{number}.txt", b"note", "text/plain") for number in range(11)]

    page = send_form(client, token, "Mange bilag.", files)

    assert page.status_code == 422
    assert "Højst 10 bilag." in page.text
    assert textarea(page.text) == "Mange bilag."


def test_form_too_large_is_413(client: TestClient, tokens: Tokens, post: MemoryDigitalPost, database: Database) -> None:
    case, token = museum_token(client, tokens, post)
    before = snapshot(database, case["id"])
    half = b"a" * (MAX_UPLOAD_BYTES // 2 + 1)

    page = send_form(client, token, "To store filer.", [("a.txt", half, "text/plain"), ("b.txt", half, "text/plain")])

    assert page.status_code == 413
    assert page.headers["content-type"].startswith("text/html")
    assert "må tilsammen fylde højst 10 MB" in page.text
    assert textarea(page.text) == "To store filer."
    assert snapshot(database, case["id"]) == before


# Links that no longer work -------------------------------------------------------------------


def test_reused_link_pages_conflict(client: TestClient, tokens: Tokens, post: MemoryDigitalPost) -> None:
    _, token = museum_token(client, tokens, post)
    assert send_form(client, token, "Første svar.").status_code == 201

    shown = client.get(f"/hearing-replies/{token}", headers=BROWSER)
    again = send_form(client, token, "Alligevel en bemærkning.")
    as_json = client.get(f"/hearing-replies/{token}")

    assert shown.status_code == 409
    assert shown.headers["content-type"].startswith("text/html")
    assert "kan kun bruges én gang" in shown.text
    assert "<form" not in shown.text
    assert_security_headers(shown)
    assert again.status_code == 409
    assert "kan kun bruges én gang" in again.text
    assert textarea(again.text) == "Alligevel en bemærkning."
    assert as_json.json()["error"]["code"] == "already_replied"


def test_expired_link_pages_gone(client: TestClient, tokens: Tokens, post: MemoryDigitalPost, clock: Clock) -> None:
    case, token = museum_token(client, tokens, post)
    clock.now = datetime.fromisoformat(step(case, "consultation")["due_at"]) + timedelta(seconds=1)
    message = client.get(f"/hearing-replies/{token}").json()["error"]["message"]

    shown = client.get(f"/hearing-replies/{token}", headers=BROWSER)
    english = client.get(f"/hearing-replies/{token}", headers=BROWSER_EN)
    late = send_form(client, token, "For sent.")

    assert shown.status_code == 410
    assert html.escape(message) in shown.text
    assert "Kontakt myndigheden" in shown.text
    assert english.status_code == 410
    assert "The deadline for replying passed" in english.text
    assert late.status_code == 410
    assert textarea(late.text) == "For sent."
    assert_security_headers(late)


def test_unknown_link_page_not_found(client: TestClient) -> None:
    shown = client.get("/hearing-replies/" + "x" * 43, headers=BROWSER)
    posted = send_form(client, "x" * 43, "Svar")

    assert shown.status_code == 404
    assert "Svarlinket findes ikke." in shown.text
    assert "Brug linket fra brevet" in shown.text
    assert_security_headers(shown)
    assert posted.status_code == 404
    assert textarea(posted.text) == "Svar"


# Postal addresses of parties -----------------------------------------------------------------


def test_exempt_party_letter_carries_address(
    client: TestClient, tokens: Tokens, post: MemoryDigitalPost, service: Sagsflow, database: Database
) -> None:
    post.exempt.add(normalise_id(PERSON["id"]))
    case = consultation_case(client, tokens)
    body = {"parties": [MUSEUM, {**PERSON, **ADDRESS}], "merged": {"question": QUESTION}, "version": case["version"]}

    opened_case = opened(client, tokens, case, body=body)

    printer = service.services.physical_mail
    assert isinstance(printer, MemoryPhysicalMail)
    (job,) = printer.jobs.values()
    assert job.case_reference == opened_case["journal_number"]
    assert job.recipient.id == PERSON["id"]
    assert "Jens Hansen\nKajgade 1\n8600 Silkeborg\n" in job.main_document_text
    assert "/hearing-replies/REDACTED" not in job.main_document_text
    assert set(reply_tokens(post, opened_case)) == {"29979812"}
    with database.read() as session:
        party = session.scalars(select(HearingParty).where(HearingParty.party_id == PERSON["id"])).one()
        message = session.scalars(
            select(OutboxMessage).where(OutboxMessage.channel == "physical_mail", OutboxMessage.case_id == case["id"])
        ).one()
    assert (party.address, party.postcode, party.city) == ("Kajgade 1", "8600", "Silkeborg")
    assert message.payload["recipient"] == {"id_type": "CPR", "id": PERSON["id"], "name": "Jens Hansen", **ADDRESS}


def test_party_without_number_gets_physical_mail(
    client: TestClient, tokens: Tokens, post: MemoryDigitalPost, service: Sagsflow, database: Database
) -> None:
    case = consultation_case(client, tokens)
    neighbour = {"name": "Ole Hansen", "id_type": "NONE", **ADDRESS}
    body = {"parties": [neighbour], "merged": {"question": QUESTION}, "version": case["version"]}

    opened_case = opened(client, tokens, case, body=body)

    printer = service.services.physical_mail
    assert isinstance(printer, MemoryPhysicalMail)
    (job,) = printer.jobs.values()
    assert reply_tokens(post, opened_case) == {}, "no hearing letter went by digital post"
    assert job.recipient.id_type == "NONE"
    assert "Ole Hansen\nKajgade 1\n8600 Silkeborg\n" in job.main_document_text
    assert re.search(r"/hearing-replies/[A-Za-z0-9_-]{40,}", job.main_document_text), "the token is in the letter"
    assert step(opened_case, "consultation")["status"] == "waiting"
    with database.read() as session:
        party = session.scalars(select(HearingParty).where(HearingParty.name == "Ole Hansen")).one()
    assert (party.id_type, party.party_id, party.city) == ("NONE", "", "Silkeborg")


@pytest.mark.parametrize(
    ("party", "errors"),
    [
        ({"name": "Ole Hansen", "id_type": "NONE"}, {"parties.0.address": "required"}),
        ({"name": "Ole Hansen", "id_type": "NONE", "id": "1234", **ADDRESS}, {"parties.0.id": "not_allowed"}),
        (
            {**PERSON, "address": "Kajgade 1"},
            {"parties.0.postcode": "required", "parties.0.city": "required"},
        ),
        ({**PERSON, "postcode": "8600", "city": "Silkeborg"}, {"parties.0.address": "required"}),
        ({**PERSON, **ADDRESS, "postcode": "86000"}, {"parties.0.postcode": "invalid_value"}),
        ({**PERSON, **ADDRESS, "city": "Silke\nborg"}, {"parties.0.city": "invalid_value"}),
        ({"name": "Ole Hansen", "id_type": "EAN", **ADDRESS}, {"parties.0.id_type": "invalid_value"}),
        ({**PERSON, "id": None}, {"parties.0.id": "required"}),
    ],
    ids=[
        "none-without-address",
        "none-with-number",
        "street-only",
        "no-street",
        "bad-postcode",
        "two-line-city",
        "unknown-id-type",
        "missing-number",
    ],
)
def test_invalid_party_address_rejected(
    client: TestClient, tokens: Tokens, database: Database, party: dict[str, Any], errors: dict[str, str]
) -> None:
    case = consultation_case(client, tokens)
    before = snapshot(database, case["id"])
    body = {"parties": [party], "merged": {"question": QUESTION}, "version": case["version"]}

    response = open_hearing(client, tokens.caseworker, case, body=body)

    assert response.status_code == 422, response.json()
    found = {entry["field"]: entry["code"] for entry in response.json()["error"]["errors"]}
    assert found == errors
    assert snapshot(database, case["id"]) == before


def test_same_party_without_number_twice(client: TestClient, tokens: Tokens) -> None:
    case = consultation_case(client, tokens)
    neighbour = {"name": "Ole Hansen", "id_type": "NONE", **ADDRESS}
    body = {"parties": [neighbour, neighbour], "merged": {"question": QUESTION}, "version": case["version"]}

    response = open_hearing(client, tokens.caseworker, case, body=body)

    assert response.status_code == 422
    (error,) = response.json()["error"]["errors"]
    assert error["field"] == "parties.1.name"
    assert error["code"] == "duplicate"
    assert "Ole Hansen (Kajgade 1, 8600 Silkeborg)" in error["message"]


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("Museet,CVR,29979812", {"name": "Museet", "id_type": "CVR", "id": "29979812"}),
        (
            "Hansen, Jens,CPR,150372-1234,jens@example.dk;Kajgade 1, 2. th., 8600 Silkeborg",
            {
                "name": "Hansen, Jens",
                "id_type": "CPR",
                "id": "150372-1234",
                "email": "jens@example.dk",
                "address": "Kajgade 1, 2. th.",
                "postcode": "8600",
                "city": "Silkeborg",
            },
        ),
        ("Ole Hansen,NONE;Kajgade 1, 8600 Silkeborg", {"name": "Ole Hansen", "id_type": "NONE", **ADDRESS}),
        ("Ole Hansen,none", {"name": "Ole Hansen", "id_type": "NONE"}),
    ],
)
def test_cli_party_option(option: str, expected: dict[str, str]) -> None:
    assert _party(option) == expected


def test_form_address_redirects_to_reply_page(client: TestClient) -> None:
    response = client.get("/hearing-replies/abc_DEF-123456789012345678/form", follow_redirects=False)

    assert response.status_code == 303
    assert response.headers["Location"] == "/hearing-replies/abc_DEF-123456789012345678"


def test_json_reply_request_is_not_cached(client: TestClient, tokens: Tokens, post: MemoryDigitalPost) -> None:
    case = opened(client, tokens, consultation_case(client, tokens))
    token = reply_tokens(post, case)["29979812"]

    response = client.get(f"/hearing-replies/{token}")

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
