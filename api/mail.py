"""The outbox over HTTP: its messages, the physical-mail queue, and queuing a failed letter or payment again.

The physical-mail queue contains the letters the outbox sends as print jobs instead of by
digital post.

`GET /physical-mail`, `GET /outbox` and `POST /outbox/{id}/retry` need a bearer token with
the role caseworker or admin. A caseworker gets the letters of the cases of their own
teams, as in `GET /cases`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Path, Query

from api.deps import ActorDep, LanguageDep, ServiceDep
from engine.runtime.outbox import PHYSICAL_MAIL
from engine.runtime.resend import outbox_messages, queue_again

router = APIRouter()


@router.get("/physical-mail", tags=["documents"])
def physical_mail_route(
    service: ServiceDep,
    actor: ActorDep,
    status: Annotated[Literal["pending", "sent", "failed"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """List the letters routed to physical mail, oldest first, optionally only those with `status`."""
    return {"items": outbox_messages(service, actor, status=status, channel=PHYSICAL_MAIL, limit=limit)}


@router.get("/outbox", tags=["documents"])
def outbox_route(
    service: ServiceDep,
    actor: ActorDep,
    status: Annotated[Literal["pending", "sent", "failed"] | None, Query()] = None,
    channel: Annotated[Literal["digital_post", "physical_mail", "finance"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """List the outbox's messages, oldest first, with channel, status, attempts and last error.

    A letter names its document and recipient. A finance booking (channel `finance`) has a
    `payment` instead, with the operation, the amount in øre and in kroner, and the creditor.
    """
    return {"items": outbox_messages(service, actor, status=status, channel=channel, limit=limit)}


@router.post("/outbox/{message_id}/retry", tags=["documents"])
def retry_route(
    message_id: Annotated[int, Path(ge=1, le=2**62)],
    service: ServiceDep,
    actor: ActorDep,
    language: LanguageDep,
    tasks: BackgroundTasks,
) -> dict[str, Any]:
    """Queue a letter or payment that the outbox gave up on again; the worker sends it with the same idempotency key."""
    view = queue_again(service, actor, message_id, language)
    tasks.add_task(service.dispatch_outbox)
    return view
