"""Plain ASGI middleware, one concern a module, applied in the order of `stack()`."""

from __future__ import annotations

from collections.abc import Callable

from starlette.middleware import Middleware
from starlette.types import Scope

from api_shim.middleware.auth import BearerTokenMiddleware
from api_shim.middleware.body_limit import BodyLimitMiddleware
from api_shim.middleware.content_type import JsonContentTypeMiddleware
from api_shim.middleware.cross_site import CrossSiteMiddleware
from api_shim.middleware.path_input import PathInputMiddleware
from api_shim.middleware.request_log import RequestLogMiddleware
from api_shim.middleware.trusted_host import TrustedHostMiddleware
from api_shim.settings import ApiSettings, Role


def stack(settings: ApiSettings, required_role: Callable[[Scope], Role | None]) -> list[Middleware]:
    """Outermost first: every request is logged; the host and the caller's site are checked
    before credentials, credentials before anything about the request's content."""
    return [
        Middleware(RequestLogMiddleware),
        Middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts),
        Middleware(CrossSiteMiddleware, allowed_origins=settings.allowed_origins),
        Middleware(BearerTokenMiddleware, tokens=settings.tokens, required_role=required_role),
        Middleware(PathInputMiddleware),
        Middleware(JsonContentTypeMiddleware),
        Middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes),
    ]
