"""The language of a request: `Accept-Language`, else the server's `SAGSFLOW_LANGUAGE`."""

from __future__ import annotations

from fastapi import Request

from engine.i18n import DEFAULT_LANGUAGE, Language, negotiate_language


def request_language(request: Request) -> Language:
    default: Language = getattr(request.app.state, "default_language", DEFAULT_LANGUAGE)
    return negotiate_language(request.headers.get("accept-language"), default)
