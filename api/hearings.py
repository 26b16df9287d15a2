"""Hearings and deadlines: opening a hearing from a case step, the parties' reply links, overdue work.

`POST /cases/{case}/steps/{step}/hearing` needs a bearer token with the step's role. The
reply link in a hearing letter, `/hearing-replies/{token}`, needs no bearer token: the
single-use token in the path is the party's proof.

The reply link returns JSON, or an HTML page with a reply form when the request's Accept
header prefers text/html, as a browser's does. The form posts multipart form data to
`/hearing-replies/{token}/form`, which returns an HTML receipt or error page.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, BackgroundTasks, File, Form, Header, Query, Request, Response, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from api.deps import ActorDep, LanguageDep, ServiceDep, expected_version, with_etag
from engine.auth import Scope, require_scope
from engine.calendar import local_date
from engine.definitions.templates import format_date, format_moment
from engine.errors import CaseError, FieldError, Forbidden, InvalidInput
from engine.i18n import LANGUAGES, Language, Text
from engine.records import MAX_UPLOAD_BYTES
from engine.runtime.commands import CaseCommand
from engine.runtime.hearings import (
    MAX_ATTACHMENTS,
    MAX_PARTIES,
    MAX_REPLY_ATTACHMENT_BYTES,
    MAX_REPLY_LENGTH,
    Attachment,
    file_reply,
    open_hearing,
    parse_form_reply,
    record_reply,
    reply_request,
    submit_reply,
)
from engine.runtime.worker import list_overdue
from engine.service import Sagsflow

router = APIRouter()

PageLanguageQuery = Annotated[
    str | None,
    Query(max_length=10, description="da or en: the language of the response, in place of Accept-Language."),
]


class HearingPartyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=200, description="The party's name, as the letter addresses it.")
    id_type: str = Field(
        description="CVR or CPR for digital post; NONE for a party without either, whose letter goes by physical mail."
    )
    id: str | None = Field(default=None, max_length=20, description="The CVR or CPR number; left out with NONE.")
    email: str | None = Field(default=None, max_length=254)
    address: str | None = Field(
        default=None,
        max_length=200,
        description="Street and number for a letter by physical mail; give address, postcode and city together. "
        "Required with id_type NONE.",
    )
    postcode: str | None = Field(default=None, max_length=20, description="Danish postcode, four digits.")
    city: str | None = Field(default=None, max_length=100)


class OpenHearingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parties: list[HearingPartyBody] = Field(
        default_factory=list,
        max_length=MAX_PARTIES,
        description="The parties to hear; a party hearing always hears the case's own party as well.",
    )
    merged: dict[str, str] = Field(
        default_factory=dict, description="Texts for the letter's merge fields, available as hearing.merged."
    )
    version: StrictInt | None = Field(default=None, ge=1, description="The case version the client last saw.")


class AttachmentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filename: str = Field(max_length=1000)
    content_type: str = Field(max_length=200)
    content_base64: str


class ReplyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="The party's reply.")
    attachments: list[AttachmentBody] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)


class RecordedReplyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    party: str = Field(
        max_length=200, description="The CVR or CPR number, or the name, of a party that has not replied."
    )
    text: str = Field(description="The reply, or a summary of a reply on paper that is attached.")
    attachments: list[AttachmentBody] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)
    version: StrictInt | None = Field(default=None, ge=1, description="The case version the client last saw.")


def _dispatch(service: Sagsflow) -> None:
    service.dispatch_outbox()


@router.post("/cases/{case_ref}/steps/{step_id}/hearing", tags=["hearings"])
def open_hearing_route(
    case_ref: str,
    step_id: str,
    body: OpenHearingRequest,
    service: ServiceDep,
    actor: ActorDep,
    language: LanguageDep,
    response: Response,
    tasks: BackgroundTasks,
    if_match: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """Open the hearing of an active hearing or party hearing step: one letter per party."""
    expected = expected_version(body.version, if_match)
    parties = [party.model_dump(exclude_none=True) for party in body.parties]

    def work(command: CaseCommand) -> None:
        open_hearing(command, step_id, parties, body.merged)

    view = service.run_command(actor, case_ref, expected, language, "open_hearing", work)
    tasks.add_task(_dispatch, service)
    return with_etag(response, view)


@router.post("/cases/{case_ref}/steps/{step_id}/hearing/replies", tags=["hearings"])
def record_reply_route(
    case_ref: str,
    step_id: str,
    body: RecordedReplyRequest,
    service: ServiceDep,
    actor: ActorDep,
    language: LanguageDep,
    response: Response,
    tasks: BackgroundTasks,
    if_match: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """Record a party's reply that arrived by post or e-mail; the party's reply link stops working."""
    expected = expected_version(body.version, if_match)
    attachments = [attachment.model_dump() for attachment in body.attachments]

    def work(command: CaseCommand) -> None:
        record_reply(command, step_id, body.party, body.text, attachments)

    view = service.run_command(actor, case_ref, expected, language, "record_hearing_reply", work)
    tasks.add_task(_dispatch, service)
    return with_etag(response, view)


@router.get(
    "/hearing-replies/{token}",
    tags=["hearings"],
    response_model=None,
    responses={200: {"content": {"text/html": {}}, "description": "JSON, or the reply page for a browser."}},
)
def reply_request_route(
    token: str,
    request: Request,
    response: Response,
    service: ServiceDep,
    language: LanguageDep,
    lang: PageLanguageQuery = None,
    accept: Annotated[str | None, Header()] = None,
) -> dict[str, Any] | HTMLResponse:
    """Show a party which hearing the reply link belongs to: the case's journal number, the process and the deadline.

    A browser (an Accept header that prefers text/html) gets the reply page with a form instead.
    """
    return link_response(
        service,
        response,
        _chosen_language(lang, language),
        accept,
        lambda chosen: reply_request(service.database, service.services, service.catalog, token, chosen),
        lambda facts, chosen: _reply_form_page(request, service, token, facts, chosen),
    )


def link_response(
    service: Sagsflow,
    response: Response,
    language: Language,
    accept: str | None,
    lookup: Callable[[Language], dict[str, Any]],
    page: Callable[[dict[str, Any], Language], HTMLResponse],
) -> dict[str, Any] | HTMLResponse:
    """Return a link's facts from `lookup` as JSON, or for a browser the `page` built from them or an error page."""
    if not prefers_html(accept):
        # The token in the address is a credential, so no cache may store the response.
        response.headers["Cache-Control"] = "no-store"
        return lookup(language)
    try:
        facts = lookup(language)
    except CaseError as error:
        return _link_error_page(service, error, language)
    return page(facts, language)


@router.post("/hearing-replies/{token}", status_code=201, tags=["hearings"])
def submit_reply_route(token: str, body: ReplyRequest, service: ServiceDep, tasks: BackgroundTasks) -> dict[str, Any]:
    """File a party's reply on the case; the link works once."""
    attachments = [attachment.model_dump() for attachment in body.attachments]
    filed = submit_reply(service.database, service.services, service.catalog, token, body.text, attachments)
    # The last reply closes the hearing, and the phase the case enters may send letters.
    tasks.add_task(_dispatch, service)
    return filed


@router.get("/hearing-replies/{token}/form", include_in_schema=False)
def reply_form_address(token: str) -> RedirectResponse:
    """Send a browser that reopens the form's address (a bookmark, a reload) to the reply page."""
    return RedirectResponse(f"/hearing-replies/{quote(token, safe='')}", status_code=303)


# The form has a path of its own, so that the JSON route keeps its pydantic body and its
# JSON errors, and FastAPI documents the form's fields. No CSRF token is needed: the
# form carries no cookie or other ambient credential, and a forged request would need the
# secret, single-use token in the path, which only the party's letter holds.
@router.post(
    "/hearing-replies/{token}/form",
    status_code=201,
    tags=["hearings"],
    response_class=HTMLResponse,
    name="submit_reply_form",
)
def submit_reply_form_route(
    token: str,
    request: Request,
    service: ServiceDep,
    tasks: BackgroundTasks,
    language: LanguageDep,
    text: Annotated[str, Form(description="The party's reply.")] = "",
    files: Annotated[
        list[UploadFile] | None,
        File(description=f"Attachments: at most {MAX_ATTACHMENTS} PDF, PNG, JPEG or plain-text files."),
    ] = None,
    lang: PageLanguageQuery = None,
) -> HTMLResponse:
    """File a party's reply sent from the reply page's form, and return an HTML receipt or error page.

    The text and files are checked as a JSON reply is. A rejected reply shows the form again
    with every problem listed and the text kept.
    """
    language = _chosen_language(lang, language)
    # Browsers send a textarea's line breaks as CRLF. They are stored as LF, as JSON clients usually send them.
    text = text.replace("\r\n", "\n")
    uploads = [_read_upload(upload) for upload in files or []]
    try:
        reply_text, attachments = parse_form_reply(text, uploads)
        filed = file_reply(service.database, service.services, service.catalog, token, reply_text, attachments)
    except InvalidInput as invalid:
        status = 413 if any(error.code == "too_large" for error in invalid.errors) else 422
        return _reply_form_again(request, service, token, language, text, uploads, invalid.errors, status)
    except CaseError as error:
        return _reply_form_again(request, service, token, language, text, uploads, [error], error.status)
    tasks.add_task(_dispatch, service)
    received_at = datetime.fromisoformat(filed["received_at"])
    return render_page(
        "reply_receipt.html",
        201,
        language,
        authority=service.services.authority.name,
        journal_number=filed["journal_number"],
        received=format_moment(received_at, language),
        files=len(attachments),
    )


@router.get("/overdue", tags=["cases"])
def overdue_route(
    service: ServiceDep,
    actor: ActorDep,
    language: LanguageDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """List the open cases past their processing deadline and the open steps past their due time.

    Staff only: a caseworker sees the cases of their own teams, as in `GET /cases`.
    """
    require_scope(actor, Scope.CASES_READ)
    if not actor.is_staff:
        raise Forbidden(
            Text(
                "Kun myndighedens medarbejdere kan se sager og trin over fristen.",
                "Only the authority's staff can list overdue cases and steps.",
            ),
            code="staff_only",
            hint=Text(
                "Det kræver rollen caseworker, approver eller admin.",
                "This requires the role caseworker, approver or admin.",
            ),
        )
    with service.database.read() as session:
        return list_overdue(
            session,
            service.catalog,
            service.services.clock(),
            language,
            lambda case: service.may_see(actor, case),
            limit,
        )


# The reply page ------------------------------------------------------------------------------

_PAGES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
# The pages load nothing and run no script. `frame-ancestors` and `base-uri` are not
# covered by `default-src`, so they are set on their own. The token is in the page's
# address, so no Referer header may carry it to another site.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
ALLOWED_FILES = ".pdf,.png,.jpg,.jpeg,.txt,application/pdf,image/png,image/jpeg,text/plain"


def prefers_html(accept: str | None) -> bool:
    """Tell whether an Accept header ranks text/html above JSON, as browsers' headers do.

    JSON gets the quality of its most specific range (application/json, else application/*,
    else */*), as HTTP content negotiation ranks a media type. HTML counts only when named
    as text/html or application/xhtml+xml, so no header, */* or a tie keep the JSON response.
    """
    if not accept:
        return False
    ranges: dict[str, float] = {}
    for item in accept.split(","):
        media_range, _, parameters = item.partition(";")
        quality = 1.0
        for parameter in parameters.split(";"):
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        key = media_range.strip().lower()
        ranges[key] = max(ranges.get(key, 0.0), quality)
    html = max(ranges.get("text/html", 0.0), ranges.get("application/xhtml+xml", 0.0))
    json = next((ranges[key] for key in ("application/json", "application/*", "*/*") if key in ranges), 0.0)
    return html > json


def _chosen_language(lang: str | None, negotiated: Language) -> Language:
    """Return the language of `?lang=` when it is da or en, else the one from Accept-Language."""
    chosen = (lang or "").strip().lower()
    return next((language for language in LANGUAGES if language == chosen), negotiated)


def render_page(name: str, status: int, language: Language, **context: Any) -> HTMLResponse:
    """Render a template of api/templates with the security headers every reply page has.

    Templates write each text in both languages as `t("dansk", "English")`.
    """

    def translate(danish: str, english: str) -> str:
        return english if language == "en" else danish

    html = _PAGES.get_template(name).render(language=language, t=translate, **context)
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


def _reply_form_page(
    request: Request,
    service: Sagsflow,
    token: str,
    facts: dict[str, Any],
    language: Language,
    *,
    text: str = "",
    problems: list[dict[str, str]] | None = None,
    status: int = 200,
) -> HTMLResponse:
    # The form's address is built from the route, so that it includes the root path of an app
    # served under a prefix.
    action = request.url_for("submit_reply_form", token=token).include_query_params(lang=language)
    other_language: Language = "da" if language == "en" else "en"
    other_page = request.url_for("reply_request_route", token=token).include_query_params(lang=other_language)
    deadline = datetime.fromisoformat(facts["deadline"])
    return render_page(
        "reply_form.html",
        status,
        language,
        authority=service.services.authority.name,
        journal_number=facts["journal_number"],
        process=facts["process"],
        kind=facts["kind"],
        deadline=format_date(local_date(deadline), language),
        action=f"{action.path}?{action.query}",
        text=text,
        problems=problems or [],
        max_files=MAX_ATTACHMENTS,
        max_megabytes=MAX_REPLY_ATTACHMENT_BYTES // 1_000_000,
        max_length=f"{MAX_REPLY_LENGTH:,}".replace(",", "." if language == "da" else ","),
        accept=ALLOWED_FILES,
        other_language=other_language,
        other_language_url=f"{other_page.path}?{other_page.query}",
    )


def _reply_form_again(
    request: Request,
    service: Sagsflow,
    token: str,
    language: Language,
    text: str,
    uploads: list[Attachment],
    errors: list[FieldError] | list[CaseError],
    status: int,
) -> HTMLResponse:
    """Show the form again with the problems of a rejected reply and the text as the party wrote it.

    The link is checked first: when it no longer works, the party gets the link's error
    page, with the text to copy, in place of a form that cannot be sent.
    """
    try:
        facts = reply_request(service.database, service.services, service.catalog, token, language)
    except CaseError as link_error:
        return _link_error_page(service, link_error, language, text)
    problems = [_problem(error, uploads, language) for error in errors]
    return _reply_form_page(request, service, token, facts, language, text=text, problems=problems, status=status)


def _problem(error: FieldError | CaseError, uploads: list[Attachment], language: Language) -> dict[str, str]:
    """Describe one problem for the page: its message, its hint and the form field it belongs to."""
    if isinstance(error, CaseError):
        hint = error.hint.get(language) if error.hint else ""
        return {"field": "", "message": error.message(language), "hint": hint}
    message = error.text.get(language)
    hint = error.hint.get(language) if error.hint else ""
    field = error.field.split(".")
    if field[0] == "files":
        # The hints of the file checks list the types any upload may have, more than a reply
        # may have; the page states the reply's types and limits beside the file input.
        hint = ""
    if field[0] == "files" and len(field) > 1 and field[1].isdigit() and int(field[1]) < len(uploads):
        # The checks name a file by its position, but the party recognises it by its name.
        filename = uploads[int(field[1])].filename
        if filename not in message:
            message = f"{filename}: {message}"
    return {"field": field[0] if field[0] in ("text", "files") else "", "message": message, "hint": hint}


def _link_error_page(service: Sagsflow, error: CaseError, language: Language, text: str = "") -> HTMLResponse:
    """Render the error of an unknown (404), used (409) or expired (410) reply link as a page."""
    return render_page(
        "reply_error.html",
        error.status,
        language,
        authority=service.services.authority.name,
        message=error.message(language),
        hint=error.hint.get(language) if error.hint else "",
        text=text,
    )


def _read_upload(upload: UploadFile) -> Attachment:
    """Read an uploaded file as an unchecked attachment; `parse_form_reply` checks it."""
    # One byte more than the limit is enough to tell that the file is too large.
    content = upload.file.read(MAX_UPLOAD_BYTES + 1)
    return Attachment(filename=upload.filename or "", content_type=upload.content_type or "", content=content)
