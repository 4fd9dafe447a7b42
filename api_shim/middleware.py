"""Plain ASGI middleware, one concern each: request log, bearer tokens, body size."""

from __future__ import annotations

import hmac
import json
import logging
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("summit_etl.api")

_PIPELINE_IN_PATH = re.compile(r"^/pipelines/([^/]+)")
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


async def _send_error(
    send: Send, status: int, message: str, headers: dict[str, str] | None = None
) -> None:
    body = json.dumps({"error": message}).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    raw_headers += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


class RequestLogMiddleware:
    """One JSON line per request: method, path, status, duration, pipelineId (no headers,
    no query string, no body: nothing that could carry a secret)."""

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


class BearerTokenMiddleware:
    """Mutating requests need `Authorization: Bearer <token>` whenever tokens are set."""

    def __init__(self, app: ASGIApp, tokens: frozenset[str]) -> None:
        self.app = app
        self.tokens = [t.encode() for t in tokens]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.tokens or scope["method"] in _SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        if scheme.lower() != b"bearer" or not token:
            await _send_error(
                send,
                401,
                "authentication required: send Authorization: Bearer <token>",
                {"www-authenticate": 'Bearer realm="summit-etl"'},
            )
            return
        if not any(hmac.compare_digest(token.strip(), known) for known in self.tokens):
            await _send_error(send, 403, "the bearer token is not valid")
            return
        await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """Refuse request bodies over `max_bytes` (413) before anything reads them whole."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _send_error(send, 413, f"request body larger than {self.max_bytes} bytes")
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except BodyTooLarge:
            await _send_error(send, 413, f"request body larger than {self.max_bytes} bytes")


class BodyTooLarge(Exception):
    pass
