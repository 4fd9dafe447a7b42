"""The route table: each path with its methods, each method with its endpoint and the token
role it needs. One Route per path, so a 405 names every method the path has in `Allow`."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

from api_shim.settings import Role

Endpoint = Callable[[Request], Awaitable[Response] | Response]


@dataclass(frozen=True)
class Operation:
    endpoint: Endpoint
    role: Role | None  # None: open to everyone, also when tokens are configured


def _dispatch(operations: dict[str, Operation]) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        target = operations[method].endpoint
        if inspect.iscoroutinefunction(target):
            result: Any = await target(request)
        else:
            result = await run_in_threadpool(target, request)
        response: Response = result
        return response

    return endpoint


@dataclass(frozen=True, eq=False)  # hashed by identity: one table per process
class RouteTable:
    paths: dict[str, dict[str, Operation]]

    def routes(self) -> list[Route]:
        return [
            Route(path, _dispatch(operations), methods=list(operations))
            for path, operations in self.paths.items()
        ]

    def required_role(self, scope: Scope, routes: list[Route]) -> Role | None:
        """The role a request needs; read for paths and methods that do not exist, so an
        unauthenticated caller learns nothing about which do."""
        for route in routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                method = "GET" if scope["method"] == "HEAD" else scope["method"]
                return self.paths[route.path][method].role
        return Role.read
