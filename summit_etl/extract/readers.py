"""Source reads on reader threads, handed to the run through one bounded queue.

The loader writes batch after batch into the target's COPY; reading the next batches (the
source's COPY, decoded into Arrow) on a reader thread lets the two overlap instead of
taking turns on one thread (pyarrow and the ADBC driver release the GIL while they wait
and decode). The queue holds at most `QUEUE_DEPTH` batches, so memory stays flat whatever
the size of the table.

Several queries (the ranges of a parallel read, extract/ranges.py) get one reader each,
each on its own connection, all in one REPEATABLE READ snapshot exported by a
coordinating connection (pg_export_snapshot): together they see the source exactly as
one read would, whatever commits meanwhile.

Leaving the `with` block (the read's end, the consumer's error, an interrupt) stops the
readers: one waiting on the full queue notices within `_POLL_S`, one waiting on the
server has its statement cancelled; each closes its cursor and connection, and the block
exits once they have.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import adbc_driver_postgresql.dbapi as adbc
import psycopg
import pyarrow as pa
from psycopg import sql

from summit_etl.extract.columns import ReadPlan
from summit_etl.extract.postgres import Cancellable, Connector, stream_batches

log = logging.getLogger(__name__)

QUEUE_DEPTH = 3  # batches read ahead, in all: 3 × 50,000 rows by default
_POLL_S = 0.05  # how soon a reader blocked on the full queue sees a stop
# How long stopping waits for a reader; a cancelled statement ends within milliseconds,
# so this is reached only by a server that stopped answering (keepalives end it later).
_JOIN_S = 30.0


class _Done:
    """A reader's last item: its query returned every row."""


@dataclass(frozen=True)
class _Failed:
    error: BaseException


class _Reader(threading.Thread):
    """One query's rows into the shared queue, on its own connection."""

    def __init__(
        self,
        number: int,
        conn: adbc.Connection,
        query: str,
        batch_size: int,
        plan: ReadPlan | None,
        out: queue.Queue[pa.Table | _Done | _Failed],
        stop: threading.Event,
    ) -> None:
        super().__init__(name=f"summit-reader-{number}", daemon=True)
        self._conn = conn
        self._query = query
        self._batch_size = batch_size
        self._plan = plan
        self._out = out
        self._halt = stop
        self._statement = Cancellable()
        self.busy = 0.0  # seconds spent reading and decoding, the queue's waits excluded

    def run(self) -> None:
        try:
            self._statement.attach(self._conn)
            started = time.perf_counter()
            _, batches = stream_batches(self._conn, self._query, self._batch_size, self._plan)
            try:
                for batch in batches:
                    self.busy += time.perf_counter() - started
                    if not self._put(batch):
                        return
                    started = time.perf_counter()
            finally:
                batches.close()  # its cursor, also when the consumer stopped us
            self._put(_Done())
        except BaseException as exc:  # handed to the consumer, whose run it fails
            if not self._halt.is_set():
                self._put(_Failed(exc))
        finally:
            self._statement.detach()
            self._conn.close()

    def _put(self, item: pa.Table | _Done | _Failed) -> bool:
        """Queue `item`, waiting for room; False once the consumer stopped the read."""
        while not self._halt.is_set():
            try:
                self._out.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def cancel(self) -> None:
        """Cancel the statement the reader waits on, if it still runs one."""
        self._statement.cancel()


class ReadAhead:
    """The batches of every reader, in the order they arrive."""

    def __init__(self, readers: list[_Reader], out: queue.Queue, stop: threading.Event) -> None:
        self._readers = readers
        self._out = out
        self._halt = stop

    def __iter__(self) -> Iterator[pa.Table]:
        running = len(self._readers)
        while running:
            item = self._out.get()
            if isinstance(item, _Done):
                running -= 1
            elif isinstance(item, _Failed):
                raise item.error  # the reader's own error, for the run to report
            else:
                yield item

    def stop(self) -> None:
        self._halt.set()
        for reader in self._readers:
            if reader.is_alive():
                reader.cancel()
        for reader in self._readers:
            if reader.ident is None:  # never started: nothing to wait for
                continue
            reader.join(_JOIN_S)
            if reader.is_alive():
                log.warning(
                    "a source reader did not stop in time; its connection closes when it does",
                    extra={"stage": "extraction", "reader": reader.name},
                )
        log.debug(
            "source readers stopped",
            extra={
                "stage": "extraction",
                "readerBusyMs": [round(r.busy * 1000, 3) for r in self._readers],
            },
        )


@contextmanager
def read_ahead(
    url: str,
    queries: list[str],
    batch_size: int,
    plan: ReadPlan | None = None,
    *,
    snapshot: str | None = None,
) -> Iterator[ReadAhead]:
    """Read `queries` on one reader thread each (several: in one snapshot; `snapshot`: in
    that exported one, which its exporter holds while the block opens); iterate the result
    for their batches. Leaving the block stops and closes every reader."""
    with ExitStack() as opened:
        built_in = plan is not None and plan.built_in_types_only
        connections = _connect(
            url, len(queries), opened, built_in_types=built_in, snapshot=snapshot
        )
        opened.pop_all()  # from here on each reader closes its own connection
    out: queue.Queue[pa.Table | _Done | _Failed] = queue.Queue(QUEUE_DEPTH)
    stop = threading.Event()
    readers = [
        _Reader(n, conn, q, batch_size, plan, out, stop)
        for n, (conn, q) in enumerate(zip(connections, queries, strict=True))
    ]
    ahead = ReadAhead(readers, out, stop)
    try:
        for reader in readers:
            reader.start()
        yield ahead
    finally:
        ahead.stop()
        for reader, conn in zip(readers, connections, strict=True):
            if reader.ident is None:  # never started (an interrupt came first): close it here
                conn.close()


def _connect(
    url: str, count: int, opened: ExitStack, *, built_in_types: bool, snapshot: str | None
) -> list[adbc.Connection]:
    """`count` source connections; more than one share one exported snapshot (`snapshot`
    when given, even for one)."""
    # The driver's slow starts side by side, not one after another (extract/postgres.py).
    connectors = [
        opened.enter_context(Connector(url, built_in_types=built_in_types)) for _ in range(count)
    ]
    if snapshot is not None:
        return _in_snapshot(connectors, snapshot, opened)
    if count == 1:
        return [opened.enter_context(connectors[0].open())]
    # The exporter's transaction ends after this: each reader holds what it imported.
    with exported_snapshot(url) as (_, exported):
        return _in_snapshot(connectors, exported, opened)


@contextmanager
def exported_snapshot(url: str) -> Iterator[tuple[psycopg.Connection, str]]:
    """A read-only REPEATABLE READ transaction on `url` and the id of its exported
    snapshot, held until the block ends (other sessions import it meanwhile)."""
    with psycopg.connect(url) as exporter:
        exporter.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        exporter.read_only = True
        row = exporter.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None
        try:
            yield exporter, row[0]
        finally:
            exporter.rollback()


def import_snapshot(cursor: adbc.Cursor, snapshot: str) -> None:
    """Put the transaction the driver began, in which nothing ran yet, in `snapshot`."""
    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    cursor.execute(f"SET TRANSACTION SNAPSHOT {sql.Literal(snapshot).as_string(None)}")


def _in_snapshot(
    connectors: list[Connector], snapshot: str, opened: ExitStack
) -> list[adbc.Connection]:
    """A connection of each connector, its transaction in the exported `snapshot`."""
    connections = []
    for connector in connectors:
        conn = opened.enter_context(connector.open())
        connections.append(conn)
        with conn.cursor() as cursor:
            import_snapshot(cursor, snapshot)
    return connections
