"""A capture's connection to its source.

Opening a connection costs the source a backend process (about 10 ms). So a read shares
its connection with the batch confirmations made while it is under way, and a live run
holds one connection for its whole idle window: at the default `runPollMs` its probes
would otherwise open up to ten connections a second on the source (a capture's identity,
then its head). Outside those, each use opens a connection of its own and closes it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import psycopg

log = logging.getLogger(__name__)

T = TypeVar("T")


class SourceConnection:
    def __init__(self, url: str) -> None:
        self.url = url
        self._reading: psycopg.Connection | None = None
        self._holding = False
        self._held: psycopg.Connection | None = None

    @contextmanager
    def held(self) -> Iterator[None]:
        """Keep one connection for every use until this ends (a live run's passes and probes)."""
        self._holding = True
        try:
            yield
        finally:
            self._holding = False
            self._drop_held()

    @contextmanager
    def reading(self) -> Iterator[psycopg.Connection]:
        """The connection of one read, shared with `current` until the read ends."""
        with self.current() as conn:
            self._reading = conn
            try:
                yield conn
            finally:
                self._reading = None

    @contextmanager
    def current(self) -> Iterator[psycopg.Connection]:
        """The read's connection while a read is under way, else the held one, else a
        connection of its own."""
        if self._reading is not None and not self._reading.closed:
            yield self._reading
            return
        if not self._holding:
            with psycopg.connect(self.url, autocommit=True) as conn:
                yield conn
            return
        if self._held is None or self._held.closed:
            self._held = psycopg.connect(self.url, autocommit=True)
        try:
            yield self._held
        except Exception:
            self._drop_held()  # in whatever state the failure left it: the next use opens one
            raise

    def query(self, statement: Callable[[psycopg.Connection], T]) -> T:
        """`statement` (an idempotent read) on `current()`. A held connection that died
        while it sat idle (the source restarted, or closed it) is opened again and the
        statement tried once more: only a failure on a live connection fails the run."""
        reused = self._holding and self._held is not None and not self._held.closed
        try:
            with self.current() as conn:
                return statement(conn)
        except psycopg.OperationalError as exc:
            if not reused:
                raise
            log.info(
                "source connection lost while idle: connecting again", extra={"error": str(exc)}
            )
        with self.current() as conn:
            return statement(conn)

    def _drop_held(self) -> None:
        held, self._held = self._held, None
        if held is not None and not held.closed:
            held.close()
