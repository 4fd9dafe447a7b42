"""Streaming a source query into Arrow (real PostgreSQL): the driver hands over batches of
a few MiB, so the loader gets its first rows while the source's COPY is still running; a
Connector begins a connection's slow start before the connection is wanted."""

from __future__ import annotations

import threading
import time

import adbc_driver_manager
import adbc_driver_postgresql.dbapi as adbc
import pyarrow as pa
import pytest
from psycopg import sql

from summit_etl.config import PipelineConfig
from summit_etl.extract.columns import EXACT_IN_ARROW, TYPED_WHEN_NEEDED
from summit_etl.extract.postgres import (
    BATCH_BYTES,
    Cancellable,
    Connector,
    read_plan,
    select_sql,
    stream_batches,
)
from summit_etl.registry import parse_pipeline
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



def test_a_cancel_stops_the_running_statement_and_any_that_would_begin(source_url: str) -> None:
    """From another thread: the statement running on the attached connection ends at once;
    after detach the connection is left alone; once cancelled, no read begins."""
    statement = Cancellable()
    with Connector(source_url) as connector, connector.open() as conn, conn.cursor() as cursor:
        statement.attach(conn)
        timer = threading.Timer(0.5, statement.cancel)
        timer.start()
        started = time.monotonic()
        with pytest.raises(adbc.Error, match="cancel"):
            cursor.execute("SELECT pg_sleep(30)")
            cursor.fetchall()
        assert time.monotonic() - started < 10
        timer.join()
        statement.detach()
        conn.rollback()
        statement.cancel()  # detached: the connection's next statement runs
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
        with pytest.raises(InterruptedError, match="cancelled before it began"):
            statement.attach(conn)

MADE_ON_THE_SERVER = """
CREATE DOMAIN public.positive AS int CHECK (VALUE > 0);
CREATE TYPE public.mood AS ENUM ('calm', 'glad');
CREATE TABLE public.moods (id public.positive PRIMARY KEY, mood public.mood, moods public.mood[]);
INSERT INTO public.moods VALUES (1, 'glad', '{calm,glad}');
"""


def _moods(source_url: str, *steps: dict[str, str]) -> PipelineConfig:
    return parse_pipeline(
        {
            "id": "moods",
            "name": "moods",
            "source": {"url": source_url, "table": "public.moods"},
            "transformation": {"transformations": list(steps)},
            "loading": {"strategy": "bulk", "targetTable": "dw.moods", "targetUrl": source_url},
        },
        "test",
    )


def test_a_read_needs_the_servers_catalog_only_for_a_type_made_there_read_typed(
    source_url: str,
) -> None:
    """The server sends a domain in its base type and the read gets an enum as text, so
    those need no catalog; an enum array a flatten step explodes travels typed, and then
    the driver must know the enum from the server's catalog."""
    run_sql(source_url, MADE_ON_THE_SERVER)
    plain = read_plan(_moods(source_url))
    assert plain.built_in_types_only
    flattening = _moods(source_url, {"type": "flatten", "field": "moods"})
    exploded = read_plan(flattening)
    assert not exploded.built_in_types_only
    query = select_sql(flattening.source, None, None, exploded)
    for plan, built_in in ((exploded, False), (exploded, True)):
        with Connector(source_url, built_in_types=built_in).open() as conn:
            schema, batches = stream_batches(conn, query, 10, plan)
            moods = pa.Table.from_batches(
                [b for t in batches for b in t.to_batches()], schema=schema
            ).column("moods")
        # Without the catalog the enum's values would arrive as opaque bytes.
        decoded = moods.to_pylist() == [["calm", "glad"]]
        assert decoded is not built_in, moods.type


# A value of each type a read can get typed (numeric travels as its text, extract/columns.py).
TYPED_SAMPLES = {
    "int2": "1", "int4": "2", "int8": "3", "float4": "1.5", "float8": "2.5", "bool": "true",
    "text": "t", "varchar": "v", "bpchar": "b", "bytea": "\\x01ff",
    "uuid": "00000000-0000-0000-0000-000000000001", "json": '{"a": 1}', "jsonb": '{"b": 2}',
    "date": "2024-02-29", "timestamp": "2024-02-29 01:02:03.456789",
    "timestamptz": "2024-02-29 01:02:03.456789+00", "time": "23:59:59.999999",
}


def test_the_drivers_own_types_decode_every_typed_read_as_the_servers_catalog_does(
    source_url: str,
) -> None:
    assert set(TYPED_SAMPLES) == (EXACT_IN_ARROW | TYPED_WHEN_NEEDED) - {"numeric"}
    query = ", ".join(
        f"{sql.Literal(value).as_string(None)}::{name} AS {name}"
        for name, value in TYPED_SAMPLES.items()
    )
    read = {}
    for built_in in (False, True):
        with Connector(source_url, built_in_types=built_in).open() as conn:
            _, batches = stream_batches(conn, f"SELECT {query}", 10)
            read[built_in] = pa.concat_tables(list(batches))
    assert read[True].schema == read[False].schema
    assert read[True].to_pylist() == read[False].to_pylist()
