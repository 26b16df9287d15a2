"""Users, teams, tokens with scopes, and handing a case or step over to someone else.

Handing over is case work: it takes the case version like every write, and a token with
scopes needs `cases:work`. Managing users needs the role `admin`, and a token with
scopes needs `admin`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from api.deps import ActorDep, LanguageDep, ServiceDep, expected_version, with_etag

router = APIRouter()

USER_NAME = Field(max_length=200, description="A user name: letters, digits and . _ @ -.")


class AssignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    assignee: str | None = Field(max_length=200, description="The user to hand over to; null removes the assignee.")
    version: StrictInt | None = Field(default=None, ge=1, description="The case version the client last saw.")


class NewUserRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: str = USER_NAME
    roles: list[Annotated[str, Field(max_length=64)]] = Field(min_length=1, max_length=50)
    teams: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=list, max_length=50, description='Teams the user works in; "*" for every team.'
    )
    integration: StrictBool = Field(default=False, description="An integration rather than a person.")
    display_name: str | None = Field(default=None, max_length=200)


class UserChangeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    roles: list[Annotated[str, Field(max_length=64)]] | None = Field(default=None, min_length=1, max_length=50)
    teams: list[Annotated[str, Field(max_length=64)]] | None = Field(default=None, max_length=50)
    display_name: str | None = Field(default=None, max_length=200)
    active: StrictBool | None = None


@router.post("/cases/{case_ref}/assignee", tags=["cases"])
def assign_case(
    case_ref: str,
    body: AssignRequest,
    service: ServiceDep,
    actor: ActorDep,
    language: LanguageDep,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    expected = expected_version(body.version, if_match)
    return with_etag(response, service.assign_case(actor, case_ref, body.assignee, expected, language))


@router.post("/cases/{case_ref}/steps/{step_id}/assignee", tags=["cases"])
def assign_step(
    case_ref: str,
    step_id: str,
    body: AssignRequest,
    service: ServiceDep,
    actor: ActorDep,
    language: LanguageDep,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    expected = expected_version(body.version, if_match)
    return with_etag(response, service.assign_step(actor, case_ref, step_id, body.assignee, expected, language))


@router.get("/users", tags=["users"])
def list_users(service: ServiceDep, actor: ActorDep) -> list[dict[str, Any]]:
    return service.list_users(actor)


@router.post("/users", status_code=201, tags=["users"])
def add_user(body: NewUserRequest, service: ServiceDep, actor: ActorDep) -> dict[str, Any]:
    return service.add_user(
        actor, body.user, body.roles, body.teams, integration=body.integration, display_name=body.display_name
    )


@router.patch("/users/{name}", tags=["users"])
def update_user(name: str, body: UserChangeRequest, service: ServiceDep, actor: ActorDep) -> dict[str, Any]:
    return service.update_user(
        actor, name, roles=body.roles, teams=body.teams, display_name=body.display_name, active=body.active
    )


@router.post("/users/{name}/deactivate", tags=["users"])
def deactivate_user(name: str, service: ServiceDep, actor: ActorDep) -> dict[str, Any]:
    return service.deactivate_user(actor, name)
