"""The physical-mail queue: letters the outbox sends as print jobs instead of by digital post.

`GET /physical-mail` needs a bearer token with the role caseworker or admin. A caseworker
gets the letters of the cases of their own teams, as in `GET /cases`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from api.deps import ActorDep, ServiceDep
from engine.auth import Scope, require_scope
from engine.errors import Forbidden
from engine.i18n import Text
from engine.runtime.outbox import list_physical_mail

router = APIRouter()

# Printing and posting letters is office work, which approvers and applicants do not do.
MAIL_ROLES = ("caseworker", "admin")


@router.get("/physical-mail", tags=["documents"])
def physical_mail_route(
    service: ServiceDep,
    actor: ActorDep,
    status: Annotated[Literal["pending", "sent", "failed"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """List the letters routed to physical mail, oldest first, optionally only those with `status`."""
    require_scope(actor, Scope.CASES_READ)
    if not any(actor.has(role) for role in MAIL_ROLES):
        raise Forbidden(
            Text(
                "Kun sagsbehandlere og administratorer kan se breve til fysisk post.",
                "Only caseworkers and administrators can list the letters sent by physical mail.",
            ),
            code="missing_role",
            hint=Text("Det kræver rollen caseworker eller admin.", "This requires the role caseworker or admin."),
        )
    with service.database.read() as session:
        items = list_physical_mail(session, service.access.visible_cases(actor), status=status, limit=limit)
    return {"items": items}
