"""Hearings and deadlines: opening a hearing from a case step, the parties' reply links, overdue work.

`POST /cases/{case}/steps/{step}/hearing` needs a bearer token with the step's role. The
reply link in a hearing letter, `/hearing-replies/{token}`, needs no bearer token: the
single-use token in the path is the party's proof.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Header, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from api.deps import ActorDep, LanguageDep, ServiceDep, expected_version, with_etag
from engine.auth import Scope, require_scope
from engine.errors import Forbidden
from engine.i18n import Text
from engine.runtime.commands import CaseCommand
from engine.runtime.hearings import MAX_ATTACHMENTS, MAX_PARTIES, open_hearing, reply_request, submit_reply
from engine.runtime.worker import list_overdue
from engine.service import Sagsflow

router = APIRouter()


class HearingPartyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=200, description="The party's name, as the letter addresses it.")
    id_type: str = Field(description="CVR or CPR; digital post needs one of them.")
    id: str = Field(max_length=20, description="The CVR or CPR number.")
    email: str | None = Field(default=None, max_length=254)


class OpenHearingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parties: list[HearingPartyBody] = Field(
        default_factory=list,
        max_length=MAX_PARTIES,
        description="The parties to hear; a party hearing without parties hears the case's own party.",
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


@router.get("/hearing-replies/{token}", tags=["hearings"])
def reply_request_route(token: str, service: ServiceDep, language: LanguageDep) -> dict[str, Any]:
    """Show a party what the reply link answers: the case's journal number, the process and the deadline."""
    return reply_request(service.database, service.services, service.catalog, token, language)


@router.post("/hearing-replies/{token}", status_code=201, tags=["hearings"])
def submit_reply_route(token: str, body: ReplyRequest, service: ServiceDep, tasks: BackgroundTasks) -> dict[str, Any]:
    """File a party's reply on the case; the link works once."""
    attachments = [attachment.model_dump() for attachment in body.attachments]
    filed = submit_reply(service.database, service.services, service.catalog, token, body.text, attachments)
    # The last reply closes the hearing, and the phase the case enters may send letters.
    tasks.add_task(_dispatch, service)
    return filed


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
