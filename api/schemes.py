"""Scheme cases over HTTP: members, imports, the bulk run, the overview, its exports, and the report links.

The `/schemes/{case}` routes need a bearer token of staff who may see the scheme case.
Importing members and starting a bulk run also need the role `caseworker`
(`engine.runtime.schemes.Schemes`). The report link in a request letter,
`/report-replies/{token}`, needs no bearer token: the single-use token in the path is the
member's proof. It returns JSON, or an HTML page with the report's form when the request's
Accept header prefers text/html; the form posts to `/report-replies/{token}/form`.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import partial
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, BackgroundTasks, Depends, Header, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from api.deps import ActorDep, LanguageDep, ServiceDep, get_service
from api.hearings import (
    PageLanguageQuery,
    _chosen_language,
    _link_error_page,
    link_response,
    render_page,
)
from api.records import content_disposition
from engine.calendar import local_date
from engine.definitions.templates import format_date, format_moment
from engine.errors import CaseError, FieldError, InvalidInput
from engine.i18n import Language, Text
from engine.runtime.scheme_reports import report_request, submit_report
from engine.runtime.scheme_requests import DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE
from engine.runtime.schemes import MAX_PAGE_SIZE, Schemes
from engine.service import Sagsflow

router = APIRouter()

# The media types an import accepts, and the format each is read as.
IMPORT_TYPES = {"text/csv": "csv", "application/json": "json"}


def get_schemes(request: Request) -> Schemes:
    return Schemes(get_service(request))


SchemesDep = Annotated[Schemes, Depends(get_schemes)]
PageLimit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
PageOffset = Annotated[int, Query(ge=0, le=1_000_000_000)]
Period = Annotated[str, Query(min_length=4, max_length=4, pattern=r"^\d{4}$", description="The year, e.g. 2026.")]


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    period: str = Field(min_length=4, max_length=4, description="The year the requests cover, e.g. 2026.")
    reply_by: date | None = Field(
        default=None, description="Replaces the scheme's reply deadline, for a run that goes out late."
    )
    chunk_size: int = Field(
        default=DEFAULT_CHUNK_SIZE, ge=1, le=MAX_CHUNK_SIZE, description="Request cases created per transaction."
    )


class ReportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: dict[str, Any] = Field(description="The values of the report's form, by field.")


def _dispatch(service: Sagsflow) -> None:
    service.dispatch_outbox()


# The scheme case ---------------------------------------------------------------------------------


@router.get("/schemes/{case_ref}/members", tags=["schemes"])
def list_members(
    case_ref: str,
    actor: ActorDep,
    schemes: SchemesDep,
    include_inactive: bool = False,
    limit: PageLimit = 100,
    offset: PageOffset = 0,
) -> dict[str, Any]:
    """List the scheme's members and the snapshot each request is filled from."""
    return schemes.members(actor, case_ref, include_inactive=include_inactive, limit=limit, offset=offset)


@router.post("/schemes/{case_ref}/members/import", tags=["schemes"])
async def import_members(
    case_ref: str,
    request: Request,
    actor: ActorDep,
    schemes: SchemesDep,
    content_type: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """Import members from the body, CSV (`text/csv`) or a JSON list (`application/json`); all rows or none."""
    media_type = (content_type or "").split(";")[0].strip().lower()
    file_format = IMPORT_TYPES.get(media_type)
    if file_format is None:
        raise InvalidInput(
            [
                FieldError(
                    "Content-Type",
                    "unsupported_type",
                    Text(
                        "Send filen som text/csv eller application/json.",
                        "Send the file as text/csv or application/json.",
                    ),
                )
            ]
        )
    content = await request.body()
    return await run_in_threadpool(schemes.import_members, actor, case_ref, content, file_format)


@router.post("/schemes/{case_ref}/requests", tags=["schemes"])
def run_requests(
    case_ref: str, body: RunRequest, actor: ActorDep, schemes: SchemesDep, service: ServiceDep, tasks: BackgroundTasks
) -> dict[str, Any]:
    """Create one request case with its letter for every active member without a request for the period.

    Running it again for the same period creates nothing new, and the response reports how many exist.
    """
    report = schemes.run_requests(actor, case_ref, body.period, reply_by=body.reply_by, chunk_size=body.chunk_size)
    tasks.add_task(_dispatch, service)
    return report.as_dict()


@router.get("/schemes/{case_ref}/overview", tags=["schemes"])
def overview(
    case_ref: str,
    actor: ActorDep,
    language: LanguageDep,
    schemes: SchemesDep,
    period: Annotated[str | None, Query(max_length=4, pattern=r"^\d{4}$")] = None,
    limit: PageLimit = 100,
    offset: PageOffset = 0,
) -> dict[str, Any]:
    """Count requests, replies and missing replies per period; with `period`, list that period's requests."""
    return schemes.overview(actor, case_ref, language, period=period, limit=limit, offset=offset)


@router.get(
    "/schemes/{case_ref}/export",
    tags=["schemes"],
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {}, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {}}}
    },
)
def export(
    case_ref: str,
    period: Period,
    actor: ActorDep,
    language: LanguageDep,
    schemes: SchemesDep,
    file_format: Annotated[Literal["csv", "xlsx"], Query(alias="format")] = "csv",
) -> Response:
    """Export one period's requests, with each member's reported values, as a CSV or XLSX file."""
    exported = schemes.export(actor, case_ref, period, file_format, language)
    headers = {"Content-Disposition": content_disposition(exported.filename), "Cache-Control": "no-store"}
    return Response(exported.content, media_type=exported.media_type, headers=headers)


# The report link ---------------------------------------------------------------------------------


@router.get(
    "/report-replies/{token}",
    tags=["schemes"],
    response_model=None,
    responses={200: {"content": {"text/html": {}}, "description": "JSON, or the report page for a browser."}},
)
def report_link(
    token: str,
    request: Request,
    response: Response,
    service: ServiceDep,
    language: LanguageDep,
    lang: PageLanguageQuery = None,
    accept: Annotated[str | None, Header()] = None,
) -> dict[str, Any] | HTMLResponse:
    """Show which request a report link belongs to: the case, the period, the deadline and the form's fields.

    A browser (an Accept header that prefers text/html) gets the report page with the form instead.
    """
    return link_response(
        service,
        response,
        _chosen_language(lang, language),
        accept,
        lambda chosen: report_request(service.database, service.services, service.catalog, token, chosen),
        lambda facts, chosen: _report_page(request, service, token, facts, chosen),
    )


@router.post("/report-replies/{token}", status_code=201, tags=["schemes"])
def submit_report_route(token: str, body: ReportRequest, service: ServiceDep, tasks: BackgroundTasks) -> dict[str, Any]:
    """File the member's report on its request case; the link works once, until the deadline."""
    filed = submit_report(service.database, service.services, service.catalog, token, body.data)
    # The case enters its next phase, which sends the receipt.
    tasks.add_task(_dispatch, service)
    return filed


@router.get("/report-replies/{token}/form", include_in_schema=False)
def report_form_address(token: str) -> RedirectResponse:
    """Send a browser that reopens the form's address (a bookmark, a reload) to the report page."""
    return RedirectResponse(f"/report-replies/{quote(token, safe='')}", status_code=303)


# The form carries no cookie or other ambient credential, so it needs no CSRF token: a forged
# request would need the secret, single-use token in the path.
@router.post(
    "/report-replies/{token}/form",
    status_code=201,
    tags=["schemes"],
    response_class=HTMLResponse,
    name="submit_report_form",
)
async def submit_report_form(
    token: str,
    request: Request,
    service: ServiceDep,
    tasks: BackgroundTasks,
    language: LanguageDep,
    lang: PageLanguageQuery = None,
) -> HTMLResponse:
    """File a report sent from the report page's form, and return an HTML receipt or the form with its problems."""
    language = _chosen_language(lang, language)
    form = await request.form()
    # Browsers send a textarea's line breaks as CRLF; they are stored as LF, as JSON clients send them.
    values = {
        str(name): value.replace("\r\n", "\n")
        for name, value in form.items()
        if isinstance(value, str) and value.strip()
    }
    try:
        filed = await run_in_threadpool(
            partial(submit_report, from_form=True), service.database, service.services, service.catalog, token, values
        )
    except InvalidInput as invalid:
        return await run_in_threadpool(
            _report_page_again, request, service, token, language, values, invalid.errors, 422
        )
    except CaseError as error:
        return await run_in_threadpool(
            _report_page_again, request, service, token, language, values, [error], error.status
        )
    tasks.add_task(_dispatch, service)
    return render_page(
        "report_receipt.html",
        201,
        language,
        authority=service.services.authority.name,
        journal_number=filed["journal_number"],
        period=filed["period"],
        received=format_moment(datetime.fromisoformat(filed["received_at"]), language),
    )


def _report_page(
    request: Request,
    service: Sagsflow,
    token: str,
    facts: dict[str, Any],
    language: Language,
    *,
    values: dict[str, str] | None = None,
    problems: list[dict[str, str]] | None = None,
    status: int = 200,
) -> HTMLResponse:
    action = request.url_for("submit_report_form", token=token).include_query_params(lang=language)
    other_language: Language = "da" if language == "en" else "en"
    other_page = request.url_for("report_link", token=token).include_query_params(lang=other_language)
    deadline = datetime.fromisoformat(facts["deadline"])
    return render_page(
        "report_form.html",
        status,
        language,
        authority=service.services.authority.name,
        journal_number=facts["journal_number"],
        process=facts["process"],
        party=facts["party"],
        period=facts["period"],
        deadline=format_date(local_date(deadline), language),
        fields=facts["form"],
        values=values or {},
        problems=problems or [],
        action=f"{action.path}?{action.query}",
        other_language=other_language,
        other_language_url=f"{other_page.path}?{other_page.query}",
    )


def _report_page_again(
    request: Request,
    service: Sagsflow,
    token: str,
    language: Language,
    values: dict[str, str],
    errors: list[FieldError] | list[CaseError],
    status: int,
) -> HTMLResponse:
    """Show the form again with the problems of a rejected report and the values as the member wrote them.

    When the link no longer works, the member gets the link's error page instead.
    """
    try:
        facts = report_request(service.database, service.services, service.catalog, token, language)
    except CaseError as link_error:
        return _link_error_page(service, link_error, language)
    problems = [_problem(error, language) for error in errors]
    return _report_page(request, service, token, facts, language, values=values, problems=problems, status=status)


def _problem(error: FieldError | CaseError, language: Language) -> dict[str, str]:
    if isinstance(error, CaseError):
        hint = error.hint.get(language) if error.hint else ""
        return {"field": "", "message": error.message(language), "hint": hint}
    hint = error.hint.get(language) if error.hint else ""
    return {"field": error.field.removeprefix("data."), "message": error.text.get(language), "hint": hint}
