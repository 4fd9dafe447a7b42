"""A capture's connection to its source: the read's own while a read is under way, so that
confirming each batch does not open a connection (about 10 ms each), else a fresh one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg


class SourceConnection:
    def __init__(self, url: str) -> None:
        self.url = url
        self._reading: psycopg.Connection | None = None

    @contextmanager
    def reading(self) -> Iterator[psycopg.Connection]:
        """The connection of one read, shared with `current` until the read ends."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            self._reading = conn
            try:
                yield conn
            finally:
                self._reading = None

    @contextmanager
    def current(self) -> Iterator[psycopg.Connection]:
        """The read's connection while a read is under way, else a connection of its own."""
        if self._reading is not None and not self._reading.closed:
            yield self._reading
            return
        with psycopg.connect(self.url, autocommit=True) as conn:
            yield conn
