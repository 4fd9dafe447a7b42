"""The route table: each path with its methods, each method with its endpoint and the token
role it needs. One Route per path, so a 405 names every method the path has in `Allow`."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from anyio import to_thread
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

from api_shim.answers import Answers
from api_shim.settings import Role

Endpoint = Callable[[Request], Awaitable[Response] | Response]

# Reads hold a pooled connection for about a millisecond: a few threads serve 50 clients,
# and more would only trade the GIL and wait for the pool. Their own limiter (each app's
# `state.reads`) also keeps reads from waiting behind launches and `?wait=true`, which
# hold threads of anyio's default 40 for seconds.
READ_THREADS = 8


@dataclass(frozen=True)
class Operation:
    endpoint: Endpoint
    role: Role | None  # None: open to everyone, also when tokens are configured
    # A read whose 200 answer depends only on the summit database and the request's path and
    # query: kept in the process's answer store (api_shim/answers.py) until the next write.
    stored: bool = False


async def _call(target: Endpoint, request: Request, method: str) -> Response:
    """The endpoint's answer: awaited, or on a thread (reads on their own limiter)."""
    if inspect.iscoroutinefunction(target):
        result: Any = await target(request)
    elif method == "GET":
        result = await to_thread.run_sync(target, request, limiter=request.app.state.reads)
    else:
        result = await run_in_threadpool(target, request)
    response: Response = result
    return response


def _dispatch(operations: dict[str, Operation]) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        operation = operations[method]
        if operation.stored:
            answers: Answers = request.app.state.answers
            return await answers.serve(request, lambda: _call(operation.endpoint, request, method))
        return await _call(operation.endpoint, request, method)

    return endpoint


@dataclass(frozen=True, eq=False)  # hashed by identity: one table per process
class RouteTable:
    paths: dict[str, dict[str, Operation]]

    def __post_init__(self) -> None:
        writes = [
            f"{m} {p}"
            for p, ops in self.paths.items()
            for m, op in ops.items()
            if op.stored and m != "GET"
        ]
        if writes:  # a stored answer to a write would skip the write
            raise ValueError(f"only GET answers may be stored: {', '.join(writes)}")

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
