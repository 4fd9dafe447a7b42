"""Rendered answers of the database read routes, kept per API process for as long as the
summit database's server has committed nothing since they were read.

What decides is a reading of `pg_current_snapshot()`. Two equal readings mean that no
transaction which wrote anything committed between them: a writer in progress at the first
is in its list of running transactions and leaves that list when it ends; a writer that
started after it raised `xmax`. So an answer read after reading R is served to a request
whose own reading is R again, whoever wrote in between: the API's other worker, the
engine's run workers, Dagster, an operator's psql. Nothing has to announce a write, and an
answer is never older than the request.

The reading is cluster-wide, so writes to the server's other databases (Dagster's storage)
empty the store too; they cost misses, not wrong answers. A request uses only a reading
taken after it arrived; requests that arrive while one is under way share the next one, so
a burst of 50 costs two round trips, not 50. Requests for one answer under one reading
share its one computation too: the first write after a quiet spell does not send every
waiting client to the database at once. Without a reading (database down, a reading slower
than `timeout`), requests take the uncached path and its errors.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress

import psycopg
from starlette.requests import Request
from starlette.responses import Response

log = logging.getLogger("summit_etl.api")

# RFC 9211 `Cache-Status`, so a client (and a test) can tell a stored answer from a fresh one.
HIT = "summit-api; hit"
SHARED = "summit-api; hit; detail=shared"  # computed once for requests that came together
STORED = "summit-api; fwd=miss; stored"
MISS = "summit-api; fwd=miss"
BYPASS = "summit-api; fwd=bypass; detail=no-reading"

_RETRY_SECONDS = 1.0  # after a failed reading, requests skip the store this long


class Answers:
    def __init__(self, database_url: str, budget_bytes: int, timeout: float = 1.0) -> None:
        self._url = database_url
        self._budget = budget_bytes
        self._timeout = timeout
        self._connection: psycopg.AsyncConnection | None = None
        self._turn = asyncio.Lock()  # one reading at a time on the one connection
        self._next: asyncio.Future[str | None] | None = None  # the reading not yet started
        self._pending: set[asyncio.Task[None]] = set()
        self._retry_at = 0.0
        self._reading: str | None = None  # the newest reading; stored answers belong to it
        self._stored: dict[str, bytes] = {}  # oldest first: the first to go over budget
        self._bytes = 0
        # Answers being computed, by reading and key: their 200 body, or None for another answer.
        self._computing: dict[tuple[str, str], asyncio.Future[bytes | None]] = {}

    @property
    def enabled(self) -> bool:
        return self._budget > 0

    async def reading(self) -> str | None:
        """A reading of the server's snapshot taken after this call began, or None."""
        if not self.enabled or time.monotonic() < self._retry_at:
            return None
        future = self._next
        if future is None:
            future = self._next = asyncio.get_running_loop().create_future()
            task = asyncio.create_task(self._take(future))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
        # Shielded: a client that hangs up must not cancel the reading others wait for.
        return await asyncio.shield(future)

    async def serve(self, request: Request, compute: Callable[[], Awaitable[Response]]) -> Response:
        """The stored answer to `request`, or `compute()`'s, stored when it is a 200."""
        key = f"{request.scope['path']}?{request.scope['query_string'].decode('latin-1')}"
        reading = await self.reading()
        if reading is None:
            response = await compute()
            response.headers["Cache-Status"] = BYPASS
            return response
        body = self.get(reading, key)
        if body is not None:
            return _stored(body, HIT)
        underway = self._computing.get((reading, key))
        if underway is not None:
            body = await asyncio.shield(underway)
            if body is not None:
                return _stored(body, SHARED)
            return await compute()  # the first got an error: each finds its own
        underway = self._computing[reading, key] = asyncio.get_running_loop().create_future()
        body = None
        try:
            response = await compute()
            if response.status_code == 200:
                body = bytes(response.body)
        finally:
            del self._computing[reading, key]
            underway.set_result(body)
        stored = body is not None and self.put(reading, key, body)
        response.headers["Cache-Status"] = STORED if stored else MISS
        return response

    def get(self, reading: str | None, key: str) -> bytes | None:
        if reading is None or reading != self._reading:
            return None
        return self._stored.get(key)

    def put(self, reading: str | None, key: str, body: bytes) -> bool:
        """Keep `body`, read after `reading`, unless a newer reading has come since."""
        if reading is None or reading != self._reading or len(body) > self._budget // 4:
            return False
        self._bytes -= len(self._stored.pop(key, b""))
        while self._stored and self._bytes + len(body) > self._budget:
            self._bytes -= len(self._stored.pop(next(iter(self._stored))))
        self._stored[key] = body
        self._bytes += len(body)
        return True

    async def close(self) -> None:
        for task in list(self._pending):
            task.cancel()
        if self._next is not None and not self._next.done():
            self._next.set_result(None)  # requests still waiting go uncached
        if self._connection is not None:
            await self._connection.close()

    async def _take(self, future: asyncio.Future[str | None]) -> None:
        reading: str | None = None
        try:
            async with self._turn:
                self._next = None  # later arrivals wait for a reading that starts after them
                reading = await self._fresh_reading()
        finally:  # also when cancelled at shutdown: nobody is left waiting
            if not future.done():
                future.set_result(reading)

    async def _fresh_reading(self) -> str | None:
        try:
            reading: str | None = await asyncio.wait_for(self._read(), self._timeout)
        except (psycopg.Error, OSError, TimeoutError) as exc:
            if self._retry_at == 0.0:  # once per outage, not once a second
                log.warning(
                    "answer store: no snapshot reading, serving uncached",
                    extra={"error": str(exc).splitlines()[0] if str(exc) else "timeout"},
                )
            await self._drop_connection()
            self._retry_at = time.monotonic() + _RETRY_SECONDS
            reading = None
        else:
            if self._retry_at:
                log.info("answer store: snapshot readings are back")
            self._retry_at = 0.0
        if reading != self._reading:
            self._stored.clear()
            self._bytes = 0
            self._reading = reading
        return reading

    async def _read(self) -> str:
        if self._connection is None or self._connection.closed:
            self._connection = await psycopg.AsyncConnection.connect(
                self._url, autocommit=True, connect_timeout=max(1, int(self._timeout))
            )
            # A new connection may reach a new server (a failover): nothing read before counts.
            self._reading = None
        cursor = await self._connection.execute("SELECT pg_current_snapshot()::text")
        row = await cursor.fetchone()
        assert row is not None  # noqa: S101 - a SELECT without FROM returns its one row
        return str(row[0])

    async def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with suppress(psycopg.Error):  # closing a broken connection
                await connection.close()


def _stored(body: bytes, status: str) -> Response:
    return Response(body, media_type="application/json", headers={"Cache-Status": status})
