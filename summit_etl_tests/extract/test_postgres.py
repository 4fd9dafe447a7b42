"""Streaming a source query into Arrow (real PostgreSQL): the driver hands over batches of
a few MiB, so the loader gets its first rows while the source's COPY is still running; a
Connector begins a connection's slow start before the connection is wanted."""

from __future__ import annotations

import threading
import time

import adbc_driver_manager
import adbc_driver_postgresql.dbapi as adbc
import pytest

from summit_etl.extract.postgres import BATCH_BYTES, Connector, stream_batches
from summit_etl_tests.support import run_sql

ROWS = 160_000


def test_batches_are_a_few_mib_whatever_the_batch_size(source_url: str) -> None:
    # About 200 bytes a row: some 30 MiB in all, two batches at the driver's 16 MiB default.
    run_sql(
        source_url,
        "CREATE TABLE public.wide AS SELECT g AS id, repeat('x', 200) AS body"
        f" FROM generate_series(1, {ROWS}) g",
    )
    with adbc.connect(source_url) as conn:
        _, batches = stream_batches(conn, "SELECT id, body FROM public.wide", batch_size=ROWS)
        sizes = [(batch.num_rows, batch.nbytes) for batch in batches]
    assert sum(rows for rows, _ in sizes) == ROWS
    assert len(sizes) >= 6
    # The first reaches the loader after a sixth of the read at most.
    assert sizes[0][0] <= ROWS // 6
    assert all(nbytes <= 2 * BATCH_BYTES for _, nbytes in sizes)


def catalog_sessions(url: str) -> int:
    return int(
        run_sql(
            url,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()",
        )[0][0]
    )


def test_a_connector_loads_the_catalog_before_it_is_asked_for_a_connection(
    source_url: str,
) -> None:
    """The driver's catalog load runs on its own connection as the Connector is made; the
    connection asked for later opens on its own, used once."""
    with Connector(source_url) as connector:
        # The catalog load's thread ends once the driver's database object is ready.
        deadline = time.monotonic() + 10
        while any(t.name.startswith("summit-catalog") for t in threading.enumerate()):
            assert time.monotonic() < deadline, "the catalog load never ended"
            time.sleep(0.01)
        assert catalog_sessions(source_url) == 0  # its connection is gone, none is open yet
        with connector.open() as conn, conn.cursor() as cursor:
            cursor.execute("SELECT 41 + 1")
            assert cursor.fetchone() == (42,)
        with pytest.raises(RuntimeError, match="one connection"), connector.open():
            pass
    assert catalog_sessions(source_url) == 0


def test_a_connector_that_cannot_connect_says_why_when_asked(source_url: str) -> None:
    missing = source_url.rsplit("/", 1)[0] + "/no_such_database"
    with (
        Connector(missing) as connector,
        pytest.raises(adbc_driver_manager.Error, match="no_such_database"),
        connector.open(),
    ):
        pass


def test_an_unused_connector_leaves_no_session_or_thread_behind(source_url: str) -> None:
    with Connector(source_url):
        pass  # e.g. the source failed before the first batch: the target is never written
    deadline = time.monotonic() + 10
    while any(t.name.startswith("summit-catalog") for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the catalog load never ended"
        time.sleep(0.01)
    assert catalog_sessions(source_url) == 0
