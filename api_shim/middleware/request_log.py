"""One JSON log line per request."""

from __future__ import annotations

import logging
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("summit_etl.api")

_PIPELINE_IN_PATH = re.compile(r"^/pipelines/([^/]+)")


class RequestLogMiddleware:
    """Method, path, status, duration, pipelineId (no headers, no query string, no body:
    nothing that could carry a secret)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            path = scope["path"]
            match = _PIPELINE_IN_PATH.match(path)
            log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": path,
                    "status": status,
                    "durationMs": round((time.perf_counter() - started) * 1000, 2),
                    **({"pipelineId": match.group(1)} if match else {}),
                },
            )
