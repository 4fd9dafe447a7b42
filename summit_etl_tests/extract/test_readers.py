"""Reading ahead on reader threads (real PostgreSQL): every row once, one snapshot for
several readers, and no reader thread or source connection outlives its read, however
the read ends."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable

import psycopg
import pyarrow as pa
import pytest

from summit_etl.extract.readers import QUEUE_DEPTH, read_ahead
from summit_etl_tests.support import run_sql

ROWS = 20_000


@pytest.fixture
def source(source_url: str) -> str:
    run_sql(
        source_url,
        "CREATE TABLE public.items (id int PRIMARY KEY, body text NOT NULL);"
        f"INSERT INTO public.items SELECT g, 'item ' || g FROM generate_series(1, {ROWS}) g",
    )
    return source_url


def others(url: str) -> int:
    """Sessions on the database other than the asking one."""
    return int(
        run_sql(
            url,
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )[0][0]
    )


def waiting_on_locks(url: str) -> int:
    return int(
        run_sql(
            url,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock'",
        )[0][0]
    )


def readers_alive() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("summit-reader-")]


def settles(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    """A backend leaves pg_stat_activity a moment after its client closed it."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def ids(batches: list[pa.Table]) -> list[int]:
    return sorted(i for b in batches for i in b.column("id").to_pylist())


def test_one_reader_reads_every_row_once_and_closes(source: str) -> None:
    with read_ahead(source, ["SELECT id, body FROM public.items"], 1_000) as batches:
        read = list(batches)
    assert all(b.num_rows <= 1_000 for b in read)
    assert ids(read) == list(range(1, ROWS + 1))
    assert readers_alive() == []
    assert settles(lambda: others(source) == 0)


def test_readers_share_one_snapshot(source: str) -> None:
    queries = [
        "SELECT id FROM public.items WHERE id < 10000",
        "SELECT id FROM public.items WHERE id >= 10000",
    ]
    # A writer holds the table: the readers' statements start only after it committed
    # its changes, yet they must read the source as it was when the read began.
    writer = psycopg.connect(source)
    writer.execute("LOCK TABLE public.items IN ACCESS EXCLUSIVE MODE")
    writer.execute(
        "DELETE FROM public.items WHERE id % 2 = 0;"
        f"INSERT INTO public.items SELECT g, 'late' FROM generate_series({ROWS + 1}, "
        f"{ROWS + 100}) g"
    )
    try:
        with read_ahead(source, queries, 1_000) as batches:
            assert settles(lambda: waiting_on_locks(source) == 2, 30)
            writer.commit()
            read = list(batches)
    finally:
        writer.close()
    assert ids(read) == list(range(1, ROWS + 1))
    assert settles(lambda: others(source) == 0)


def test_a_reader_error_reaches_the_consumer_and_stops_every_reader(source: str) -> None:
    queries = [
        "SELECT id FROM public.items",  # slower than the failing one: stopped mid-read
        f"SELECT id, 1 / (id - {ROWS // 2}) AS boom FROM public.items ORDER BY id",
    ]
    with pytest.raises(Exception, match="division by zero"), read_ahead(source, queries, 100) as rows:
        for _ in rows:
            time.sleep(0.001)
    assert readers_alive() == []
    assert settles(lambda: others(source) == 0)


def test_a_consumer_failure_stops_a_reader_waiting_on_the_full_queue(source: str) -> None:
    reading = read_ahead(source, ["SELECT id FROM public.items"], 100)
    with pytest.raises(RuntimeError, match="loader broke"), reading as batches:
        next(iter(batches))
        # The reader fills the queue and waits for room that never comes.
        assert settles(lambda: len(readers_alive()) == 1)
        time.sleep(0.2)
        raise RuntimeError("loader broke")
    assert readers_alive() == []
    assert settles(lambda: others(source) == 0)


def test_an_interrupt_while_the_source_blocks_cancels_the_reader(source: str) -> None:
    holder = psycopg.connect(source)
    holder.execute("LOCK TABLE public.items IN ACCESS EXCLUSIVE MODE")
    try:

        def interrupt() -> None:
            assert settles(lambda: waiting_on_locks(source) == 1, 30)
            os.kill(os.getpid(), signal.SIGINT)  # as Dagster cancels a run

        canceller = threading.Thread(target=interrupt)
        started = time.monotonic()
        reading = read_ahead(source, ["SELECT id FROM public.items"], 100)
        with pytest.raises(KeyboardInterrupt), reading as batches:
            canceller.start()
            list(batches)
        canceller.join()
        assert time.monotonic() - started < 20  # not the source's lock timeout
        assert readers_alive() == []
        # Only the lock holder is left: the reader's statement was cancelled and closed.
        assert settles(lambda: others(source) == 1)
    finally:
        holder.close()


def test_memory_is_bounded_by_the_queue(source: str) -> None:
    with read_ahead(source, ["SELECT id, body FROM public.items"], 100) as batches:
        stream = iter(batches)
        next(stream)
        time.sleep(0.3)  # the reader runs ahead as far as it may
        queued = batches._out.qsize()  # noqa: SLF001 - the bound is what is tested
        assert queued <= QUEUE_DEPTH
        rest = list(stream)
    assert len(rest) + 1 == ROWS // 100
