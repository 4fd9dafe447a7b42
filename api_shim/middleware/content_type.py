"""Mutating requests speak JSON. A browser can send a form or `text/plain` to any site
without asking it first, but never `application/json`: so requiring it keeps pages on other
sites from driving the API even where no `Origin` is sent.

A bodiless request without a Content-Type is accepted (what `curl -X POST URL` sends, as
the runbook does); a Content-Type other than JSON is refused even with an empty body, since
an empty HTML form sends one.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from api_shim.middleware.reply import MUTATING_METHODS, header, send_error


def has_body(scope: Scope) -> bool:
    length = header(scope, b"content-length")
    return header(scope, b"transfer-encoding") is not None or (
        length is not None and length.strip() not in (b"", b"0")
    )


class JsonContentTypeMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in MUTATING_METHODS:
            await self.app(scope, receive, send)
            return
        content_type = header(scope, b"content-type")
        media_type = (content_type or b"").split(b";", 1)[0].strip().lower()
        if (content_type is not None or has_body(scope)) and media_type != b"application/json":
            await send_error(send, 415, "the request body must be sent as application/json")
            return
        await self.app(scope, receive, send)
