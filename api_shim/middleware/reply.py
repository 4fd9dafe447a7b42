"""The error answer of a middleware, in the API's one error shape (see api_shim/errors.py)."""

from __future__ import annotations

import json

from starlette.types import Scope, Send


async def send_error(
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


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of a request header (names are lower-case in ASGI)."""
    return next((v for k, v in scope["headers"] if k == name), None)


MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
