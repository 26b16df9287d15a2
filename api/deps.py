"""Dependencies shared by the API's routers: the engine, the acting user, the language, versions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header, Request, Response

from api.language import request_language
from engine.auth import Actor
from engine.errors import BadRequest
from engine.i18n import Language, Text
from engine.service import Sagsflow


def get_service(request: Request) -> Sagsflow:
    service: Sagsflow = request.app.state.service
    return service


def get_actor(request: Request, authorization: Annotated[str | None, Header()] = None) -> Actor:
    token = None
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer":
            token = value.strip()
    return get_service(request).authenticate(token)


ServiceDep = Annotated[Sagsflow, Depends(get_service)]
ActorDep = Annotated[Actor, Depends(get_actor)]
LanguageDep = Annotated[Language, Depends(request_language)]


def expected_version(body_version: int | None, if_match: str | None) -> int | None:
    header_version: int | None = None
    if if_match:
        text = if_match.strip().removeprefix("W/").strip('"')
        if not (text.isascii() and text.isdigit() and len(text) <= 9):
            raise BadRequest(
                Text(
                    f'If-Match skal være sagens version, fx "3", ikke {if_match}.',
                    f'If-Match must be the case version, e.g. "3", not {if_match}.',
                ),
                field="If-Match",
            )
        header_version = int(text)
    if body_version is not None and header_version is not None and body_version != header_version:
        raise BadRequest(
            Text(
                f"Versionen i If-Match ({header_version}) og i indholdet ({body_version}) er forskellige.",
                f"The version in If-Match ({header_version}) differs from the one in the body ({body_version}).",
            ),
            field="version",
        )
    return body_version if body_version is not None else header_version


def with_etag(response: Response, view: dict[str, Any]) -> dict[str, Any]:
    response.headers["ETag"] = f'"{view["version"]}"'
    return view
