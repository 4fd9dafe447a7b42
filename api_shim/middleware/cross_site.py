"""Refuse what a web page on another site makes a browser send: the browser names that site
in `Origin` and says `Sec-Fetch-Site: cross-site`; curl and scripts send neither."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from api_shim.middleware.reply import header, send_error


class CrossSiteMiddleware:
    def __init__(self, app: ASGIApp, allowed_origins: frozenset[str]) -> None:
        self.app = app
        self.allowed_origins = allowed_origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = (header(scope, b"origin") or b"").decode("latin-1").strip().rstrip("/").lower()
        configured = origin in self.allowed_origins
        if origin and not configured and not self._same_origin(scope, origin):
            await send_error(
                send, 403, "cross-origin request refused: add the origin to ETL_ALLOWED_ORIGINS"
            )
            return
        if header(scope, b"sec-fetch-site") == b"cross-site" and not configured:
            await send_error(send, 403, "cross-site request refused")
            return
        await self.app(scope, receive, send)

    @staticmethod
    def _same_origin(scope: Scope, origin: str) -> bool:
        """The origin is this very service as the client addressed it (scheme and Host)."""
        host = (header(scope, b"host") or b"").decode("latin-1").strip().lower()
        return bool(host) and origin == f"{scope.get('scheme', 'http')}://{host}"
