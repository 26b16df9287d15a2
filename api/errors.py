"""JSON error responses: one shape for every error, in the client's language.

    {"error": {"code": "four_eyes", "message": "...", "field": "step", "hint": "...",
               "errors": [{"field": "data.quantity", "code": "...", "message": "...", "hint": "..."}]}}

Client mistakes get 400, 401, 403, 404, 409, 413 or 422. Anything unexpected is logged
with its traceback and answered with a plain 500 that reveals nothing internal.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.language import request_language
from api.limits import BodyTooLarge, too_large_message
from engine.errors import CaseError, DefinitionError, InvalidInput, SagsflowError
from engine.i18n import Language, Text

logger = logging.getLogger(__name__)


class SafeJSONResponse(JSONResponse):
    """JSON that can always be encoded: text the client sent with lone surrogates is echoed escaped."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def error_body(
    code: str,
    message: str,
    *,
    field: str | None = None,
    hint: str | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    if hint is not None:
        body["hint"] = hint
    if errors:
        body["errors"] = errors
    return {"error": body}


# Danish and English wording for the pydantic error types a request body can produce.
_VALIDATION_TEXTS: dict[str, Text] = {
    "missing": Text("Feltet mangler.", "The field is missing."),
    "extra_forbidden": Text("Ukendt felt.", "Unknown field."),
    "dict_type": Text("Skal være et JSON-objekt.", "Must be a JSON object."),
    "model_attributes_type": Text("Skal være et JSON-objekt.", "Must be a JSON object."),
    "string_type": Text("Skal være tekst.", "Must be text."),
    "int_type": Text("Skal være et helt tal.", "Must be a whole number."),
    "int_parsing": Text("Skal være et helt tal.", "Must be a whole number."),
    "int_from_float": Text("Skal være et helt tal.", "Must be a whole number."),
    "bool_type": Text("Skal være true eller false.", "Must be true or false."),
    "bool_parsing": Text("Skal være true eller false.", "Must be true or false."),
    "string_pattern_mismatch": Text("Har ikke den forventede form.", "Does not have the expected form."),
}

# Error types whose message names the bound from the error's context: (context key, Danish, English).
_BOUND_TEXTS: dict[str, tuple[str, str, str]] = {
    "greater_than_equal": ("ge", "Skal være mindst {bound}.", "Must be at least {bound}."),
    "greater_than": ("gt", "Skal være større end {bound}.", "Must be greater than {bound}."),
    "less_than_equal": ("le", "Må højst være {bound}.", "Must be at most {bound}."),
    "less_than": ("lt", "Skal være mindre end {bound}.", "Must be less than {bound}."),
    "string_too_long": ("max_length", "Må højst være {bound} tegn.", "Must be at most {bound} characters."),
    "string_too_short": ("min_length", "Skal være mindst {bound} tegn.", "Must be at least {bound} characters."),
    "too_long": ("max_length", "Må højst have {bound} elementer.", "Must have at most {bound} items."),
    "too_short": ("min_length", "Skal have mindst {bound} element(er).", "Must have at least {bound} item(s)."),
}


def _validation_entry(item: dict[str, Any], language: Language) -> dict[str, Any]:
    location = [str(part) for part in item.get("loc", ()) if part not in ("body", "query", "path", "header")]
    field = ".".join(location) or "body"
    kind = item.get("type", "")
    text = _VALIDATION_TEXTS.get(kind)
    context = item.get("ctx") or {}
    bound = _BOUND_TEXTS.get(kind)
    if bound is not None and bound[0] in context:
        key, danish, english = bound
        message = (danish if language == "da" else english).format(bound=context[key])
    elif kind == "literal_error":
        expected = str((item.get("ctx") or {}).get("expected", ""))
        if language == "da":
            message = f"Skal være en af: {expected.replace(' or ', ' eller ')}."
        else:
            message = f"Must be one of: {expected}."
    elif text is not None:
        message = text.get(language)
    else:
        message = str(item.get("msg", "Invalid value.")) if language == "en" else "Ugyldig værdi."
    return {"field": field, "code": kind or "invalid", "message": message}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SagsflowError)
    async def on_sagsflow_error(request: Request, error: SagsflowError) -> JSONResponse:
        language = request_language(request)
        if isinstance(error, CaseError):
            errors = [entry.as_dict(language) for entry in error.errors] if isinstance(error, InvalidInput) else None
            headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
            return SafeJSONResponse(
                error_body(
                    error.code,
                    error.message(language),
                    field=error.field,
                    hint=error.hint.get(language) if error.hint else None,
                    errors=errors,
                ),
                status_code=error.status,
                headers=headers,
            )
        if isinstance(error, DefinitionError):
            problems = [problem.as_dict(language) for problem in error.problems]
            return SafeJSONResponse(error_body(error.code, error.message(language), errors=problems), status_code=422)
        logger.error("%s while handling %s %s: %s", type(error).__name__, request.method, request.url.path, error)
        return SafeJSONResponse(error_body(error.code, error.message(language)), status_code=500)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        language = request_language(request)
        items = list(error.errors())
        if any(item.get("type") == "json_invalid" for item in items):
            detail = next(item for item in items if item.get("type") == "json_invalid")
            parser_message = str((detail.get("ctx") or {}).get("error", ""))
            hint = (
                f"Ret JSON-syntaksen; parseren meldte: {parser_message}."
                if language == "da"
                else f"Correct the JSON syntax; the parser reported: {parser_message}."
            )
            return SafeJSONResponse(
                error_body(
                    "invalid_json",
                    "Forespørgslens indhold er ikke gyldig JSON."
                    if language == "da"
                    else "The request body is not valid JSON.",
                    field="body",
                    hint=hint if parser_message else None,
                ),
                status_code=400,
            )
        content_type = request.headers.get("content-type", "")
        if "json" not in content_type and any(
            tuple(item.get("loc", ())) == ("body",) and item.get("type") in ("dict_type", "model_attributes_type")
            for item in items
        ):
            return SafeJSONResponse(
                error_body(
                    "unsupported_content_type",
                    f"Indholdet blev sendt som '{content_type or 'ingen type'}', ikke som JSON."
                    if language == "da"
                    else f"The body was sent as '{content_type or 'no type'}', not as JSON.",
                    field="body",
                    hint="Send JSON med Content-Type: application/json."
                    if language == "da"
                    else "Send JSON with Content-Type: application/json.",
                ),
                status_code=415,
            )
        entries = [_validation_entry(item, language) for item in items]
        message = (
            f"Ugyldig forespørgsel: {len(entries)} fejl."
            if language == "da"
            else f"Invalid request: {len(entries)} error(s)."
        )
        return SafeJSONResponse(
            error_body("invalid_request", message, field=entries[0]["field"] if entries else None, errors=entries),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        language = request_language(request)
        if isinstance(error.__cause__, BodyTooLarge):
            limit = error.__cause__.limit
            return SafeJSONResponse(error_body("too_large", too_large_message(limit, language)), status_code=413)
        if error.status_code == 404:
            message = "Adressen findes ikke." if language == "da" else "There is nothing at this address."
            code = "not_found"
        elif error.status_code == 405:
            message = (
                "Metoden er ikke tilladt på denne adresse." if language == "da" else "The method is not allowed here."
            )
            code = "method_not_allowed"
        elif error.status_code == 400:
            # FastAPI's own wording when a body cannot be read as the declared content type.
            message = (
                "Forespørgslens indhold kunne ikke læses; send JSON med Content-Type: application/json."
                if language == "da"
                else "The request body could not be read; send JSON with Content-Type: application/json."
            )
            code = "unreadable_body"
        else:
            message = str(error.detail)
            code = "http_error"
        return SafeJSONResponse(error_body(code, message), status_code=error.status_code, headers=error.headers)

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, error: Exception) -> JSONResponse:
        logger.exception("Unexpected error while handling %s %s", request.method, request.url.path)
        language = request_language(request)
        message = (
            "Der opstod en intern fejl; intet er ændret. Fejlen er logget."
            if language == "da"
            else "An internal error occurred; nothing was changed. The error has been logged."
        )
        return SafeJSONResponse(error_body("internal_error", message), status_code=500)
