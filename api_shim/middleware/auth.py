"""Bearer tokens with roles, whenever tokens are configured (SPEC §3)."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping

from starlette.types import ASGIApp, Receive, Scope, Send

from api_shim.middleware.reply import header, send_error
from api_shim.settings import Role


class BearerTokenMiddleware:
    """Every route that `required_role` gives a role needs `Authorization: Bearer <token>`
    of that role or above: 401 without a valid token, 403 with too small a role."""

    def __init__(
        self,
        app: ASGIApp,
        tokens: Mapping[str, Role],
        required_role: Callable[[Scope], Role | None],
    ) -> None:
        self.app = app
        self.tokens = [(t.encode(), role) for t, role in tokens.items()]
        self.required_role = required_role

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        needed = self.required_role(scope) if scope["type"] == "http" and self.tokens else None
        if needed is None:
            await self.app(scope, receive, send)
            return
        scheme, _, token = (header(scope, b"authorization") or b"").partition(b" ")
        role = self._role_of(token.strip()) if scheme.lower() == b"bearer" else None
        if role is None:
            await send_error(
                send,
                401,
                "authentication required: send Authorization: Bearer <token>",
                {"www-authenticate": 'Bearer realm="summit-etl"'},
            )
            return
        if role < needed:
            await send_error(
                send, 403, f"this token's role ({role.name}) may not do this: {needed.name} needed"
            )
            return
        await self.app(scope, receive, send)

    def _role_of(self, token: bytes) -> Role | None:
        # Compare against every token, so the time taken says nothing about which matched.
        found = None
        for known, role in self.tokens:
            if hmac.compare_digest(token, known):
                found = role
        return found
