"""Serve only requests addressed to a name of ours: a page on another site that rebinds its
own DNS name to 127.0.0.1 still sends its own name in `Host`, and is refused."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from api_shim.middleware.reply import header, send_error


def host_name(value: str) -> str:
    """`Host` without its port, lower-case: `localhost:4020` -> `localhost`, `[::1]:4020` ->
    `[::1]`."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[: value.find("]") + 1] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class TrustedHostMiddleware:
    def __init__(self, app: ASGIApp, allowed_hosts: frozenset[str]) -> None:
        self.app = app
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = header(scope, b"host")
        name = host_name(raw.decode("latin-1")) if raw else ""
        if name not in self.allowed_hosts:
            shown = name.encode("ascii", "backslashreplace").decode()[:100]
            await send_error(
                send,
                400,
                f"host {shown!r} is not served here: add it to ETL_ALLOWED_HOSTS",
            )
            return
        await self.app(scope, receive, send)
