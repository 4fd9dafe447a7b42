"""One JSON shape for every error: `{"error": "...", "details": ...}` with a fitting status."""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

log = logging.getLogger("summit_etl.api")


class ApiError(HTTPException):
    def __init__(self, status_code: int, message: str, details: Any = None) -> None:
        super().__init__(status_code=status_code, detail=message)
        self.details = details


class DependencyDown(ApiError):
    """A dependency (Dagster, the database) did not answer: 503, naming it."""

    def __init__(self, dependency: str, reason: str) -> None:
        super().__init__(503, f"{dependency} is unavailable: {reason}", {"dependency": dependency})


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    """Registered for HTTPException (ApiError included)."""
    body: dict[str, Any] = {"error": getattr(exc, "detail", str(exc))}
    details = getattr(exc, "details", None)
    if details is not None:
        body["details"] = details
    return JSONResponse(
        body, status_code=getattr(exc, "status_code", 500), headers=getattr(exc, "headers", None)
    )


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """A bug: the answer names only the exception's type; the traceback goes to the log."""
    log.error(
        "unexpected error",
        exc_info=exc,
        extra={"method": request.method, "path": request.url.path},
    )
    return JSONResponse(
        {"error": "internal error", "details": {"type": type(exc).__name__}}, status_code=500
    )
