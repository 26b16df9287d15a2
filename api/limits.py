"""An ASGI middleware that rejects request bodies above a size limit before they are parsed.

Uploads (`POST /cases/{case}/documents`) and member imports
(`POST /schemes/{case}/members/import`) may carry a file of up to
`engine.records.MAX_UPLOAD_BYTES`, and a hearing reply (`POST /hearing-replies/{token}`)
attachments of that size together, base64-encoded in JSON. Every other request body is
limited to `MAX_BODY_BYTES`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.i18n import Language, negotiate_language
from engine.records import MAX_UPLOAD_BYTES, upload_limit_text
from engine.runtime.hearings import MAX_REPLY_ATTACHMENT_BYTES, reply_limit_text

MAX_BODY_BYTES = 1_000_000
# Room for the multipart boundaries, the part headers and the form fields beside the file.
MULTIPART_OVERHEAD_BYTES = 64_000
MAX_UPLOAD_BODY_BYTES = MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD_BYTES
# Uploads, and the member files a scheme case imports, may be as large as one uploaded file.
UPLOAD_PATH = re.compile(r"/cases/[^/]+/documents/?$|/schemes/[^/]+/members/import/?$")
# Base64 makes the attachments a third larger; the reply's text and the JSON around it get MAX_BODY_BYTES.
MAX_REPLY_BODY_BYTES = MAX_REPLY_ATTACHMENT_BYTES * 4 // 3 + MAX_BODY_BYTES
# The JSON reply and the reply page's form (multipart, so its files take less room than in base64).
REPLY_PATH = re.compile(r"^/hearing-replies/[^/]+(?:/form)?/?$|^/cases/[^/]+/steps/[^/]+/hearing/replies/?$")


class BodyTooLarge(Exception):
    """Raised from `receive` when a body without Content-Length grows past the limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body larger than {limit} bytes")
        self.limit = limit


def too_large_message(limit: int, language: Language) -> str:
    # An upload's message names the file's limit, which is what the user can act on.
    if limit == MAX_UPLOAD_BODY_BYTES:
        return upload_limit_text().get(language)
    if limit == MAX_REPLY_BODY_BYTES:
        return reply_limit_text().get(language)
    if language == "da":
        return f"Forespørgslen er for stor; grænsen er {limit} byte."
    return f"The request is too large; the limit is {limit} bytes."


class BodySizeLimit:
    def __init__(
        self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES, max_upload_bytes: int = MAX_UPLOAD_BODY_BYTES
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_upload_bytes = max_upload_bytes

    def limit_for(self, scope: Scope) -> int:
        if scope.get("method") != "POST":
            return self.max_bytes
        path = scope.get("path", "")
        if UPLOAD_PATH.search(path):
            return self.max_upload_bytes
        if REPLY_PATH.match(path):
            return max(self.max_bytes, MAX_REPLY_BODY_BYTES)
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await self._reject(limit, headers, send)
            return

        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._reject(limit, headers, send)

    async def _reject(self, limit: int, headers: dict[str, Any], send: Send) -> None:
        message = too_large_message(limit, negotiate_language(headers.get("accept-language")))
        body = json.dumps({"error": {"code": "too_large", "message": message}}, ensure_ascii=False).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
