"""The HTTP API: a thin FastAPI layer over `engine.service.Sagsflow`.

Every route except `/health` needs `Authorization: Bearer <token>`; roles are checked by
the engine. Write commands on a case take the case version the client last saw, either
as `"version"` in the body or as `If-Match: "<version>"`; a stale version gets 409 and
changes nothing. Responses for a case carry its version in the `ETag` header.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Annotated, Any, Literal

from fastapi import BackgroundTasks, FastAPI, Header, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from starlette.concurrency import run_in_threadpool

from api import hearings, mail, people, pools, records, schemes
from api.deps import ActorDep, LanguageDep, expected_version, with_etag
from api.errors import SafeJSONResponse, install_error_handlers
from api.limits import BodySizeLimit
from engine import __version__
from engine.service import Sagsflow
from engine.settings import Settings

logger = logging.getLogger(__name__)


ID_PATTERN = r"^[a-z][a-z0-9_-]*$"


class SubmitRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    process: str = Field(max_length=64, pattern=ID_PATTERN, description="Process id, e.g. cites-import.")
    data: dict[str, Any] = Field(description="The application's field values.")
    language: Literal["da", "en"] | None = Field(default=None, description="Language of the case's letters.")


class CompleteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: dict[str, Any] = Field(default_factory=dict, description="Values for the step's form fields.")
    version: StrictInt | None = Field(default=None, ge=1, description="The case version the client last saw.")


class ApproveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"]
    comment: str | None = Field(default=None, max_length=5000)
    version: StrictInt | None = Field(default=None, ge=1)


def create_app(service: Sagsflow, settings: Settings | None = None, *, dispatch_interval: float = 15.0) -> FastAPI:
    """Build the application; `dispatch_interval` is the seconds between outbox sweeps (0 turns them off)."""
    settings = settings or Settings()

    def dispatch_letters() -> None:
        report = service.dispatch_outbox()
        if report.sent or report.retried or report.failed:
            logger.info("Outbox: %d sent, %d to retry, %d failed", report.sent, report.retried, report.failed)

    async def dispatch_periodically() -> None:
        # Letters queued before a restart, and letters waiting for a retry after a failed
        # delivery, are picked up here; letters from a command are sent right after it.
        while True:
            try:
                await run_in_threadpool(dispatch_letters)
            except Exception:
                logger.exception("Outbox dispatch failed; trying again in %d seconds", dispatch_interval)
            await asyncio.sleep(dispatch_interval)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(dispatch_periodically()) if dispatch_interval > 0 else None
        yield
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    app = FastAPI(
        default_response_class=SafeJSONResponse,
        title="Sagsflow",
        version=__version__,
        description="Declarative case workflows for Danish public administration.",
        lifespan=lifespan,
    )
    app.state.service = service
    for feature in (records, hearings, people, mail, pools, schemes):
        app.include_router(feature.router)
    app.state.default_language = settings.language
    app.add_middleware(BodySizeLimit)
    install_error_handlers(app)

    @app.get("/health", tags=["system"])
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__}

    @app.get("/me", tags=["system"])
    def me(actor: ActorDep) -> dict[str, Any]:
        return {"user": actor.name, "roles": sorted(actor.roles)}

    @app.get("/processes", tags=["processes"])
    def list_processes(actor: ActorDep, language: LanguageDep) -> list[dict[str, Any]]:
        return service.list_processes(language)

    @app.get("/processes/{process_id}", tags=["processes"])
    def get_process(process_id: str, actor: ActorDep, language: LanguageDep) -> dict[str, Any]:
        return service.get_process(process_id, language)

    @app.post("/cases", status_code=201, tags=["cases"])
    def submit(
        body: SubmitRequest,
        actor: ActorDep,
        language: LanguageDep,
        response: Response,
        tasks: BackgroundTasks,
    ) -> dict[str, Any]:
        view = service.submit(actor, body.process, body.data, body.language or language)
        response.headers["Location"] = f"/cases/{view['id']}"
        tasks.add_task(dispatch_letters)
        return with_etag(response, view)

    @app.get("/cases", tags=["cases"])
    def list_cases(
        actor: ActorDep,
        language: LanguageDep,
        process: Annotated[str | None, Query(max_length=64, pattern=ID_PATTERN)] = None,
        phase: Annotated[str | None, Query(max_length=64, pattern=ID_PATTERN)] = None,
        status: Annotated[Literal["open", "closed"] | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
    ) -> dict[str, Any]:
        return service.list_cases(
            actor, language, process_id=process, phase=phase, status=status, limit=limit, offset=offset
        )

    @app.get("/cases/{case_ref}", tags=["cases"])
    def get_case(case_ref: str, actor: ActorDep, language: LanguageDep, response: Response) -> dict[str, Any]:
        return with_etag(response, service.get_case(actor, case_ref, language))

    @app.post("/cases/{case_ref}/steps/{step_id}/complete", tags=["cases"])
    def complete_step(
        case_ref: str,
        step_id: str,
        body: CompleteRequest,
        actor: ActorDep,
        language: LanguageDep,
        response: Response,
        tasks: BackgroundTasks,
        if_match: Annotated[str | None, Header()] = None,
    ) -> dict[str, Any]:
        expected = expected_version(body.version, if_match)
        view = service.complete_step(actor, case_ref, step_id, body.data, expected, language)
        tasks.add_task(dispatch_letters)
        return with_etag(response, view)

    @app.post("/cases/{case_ref}/steps/{step_id}/approve", tags=["cases"])
    def approve_step(
        case_ref: str,
        step_id: str,
        body: ApproveRequest,
        actor: ActorDep,
        language: LanguageDep,
        response: Response,
        tasks: BackgroundTasks,
        if_match: Annotated[str | None, Header()] = None,
    ) -> dict[str, Any]:
        expected = expected_version(body.version, if_match)
        view = service.approve(actor, case_ref, step_id, body.decision, body.comment, expected, language)
        tasks.add_task(dispatch_letters)
        return with_etag(response, view)

    @app.get("/cases/{case_ref}/letters", tags=["documents"])
    def list_letters(case_ref: str, actor: ActorDep) -> list[dict[str, Any]]:
        return service.list_letters(actor, case_ref)

    @app.get("/cases/{case_ref}/documents/{number}", tags=["documents"])
    def get_document(
        case_ref: str, number: Annotated[int, Path(ge=1, le=1_000_000_000)], actor: ActorDep
    ) -> dict[str, Any]:
        return service.get_document(actor, case_ref, number)

    return app
