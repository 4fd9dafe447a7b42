"""Refuse NUL and other control characters in the path and query string (400) before they
reach a lookup: PostgreSQL text cannot hold NUL, so `/pipelines/%00/runs` would fail there."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from api_shim.middleware.reply import send_error

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class PathInputMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _CONTROL.search(scope["path"]):
            await send_error(send, 400, "the path contains a control character (such as NUL)")
            return
        query = scope.get("query_string", b"").decode("latin-1")
        for name, value in parse_qsl(query, keep_blank_values=True, errors="replace"):
            if _CONTROL.search(name) or _CONTROL.search(value):
                shown = _CONTROL.sub("?", name)[:100]
                await send_error(
                    send, 400, f"query parameter {shown!r} contains a control character"
                )
                return
        await self.app(scope, receive, send)
