"""Batch runs reading the source on reader threads (real PostgreSQL): a parallel full read
loads every row exactly once whatever the table's key, in one snapshot of the source, and
a reader's error fails the run at extraction with nothing left behind."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from typing import Any

import pytest

from summit_etl.engine import RunRequest, run_pipeline
from summit_etl.registry import parse_pipeline
from summit_etl.runs.stages import Stage, StageFailure
from summit_etl_tests.support import cancel_when, run_sql

ROWS = 30_000

# Each source: its table, then rows (a few batches' worth per reader).
TABLES = {
    "integer key": (
        "CREATE TABLE public.src (id bigint PRIMARY KEY, body text)",
        f"INSERT INTO public.src SELECT g, 'b' || g FROM generate_series(1, {ROWS}) g",
    ),
    "composite key": (
        "CREATE TABLE public.src (region int, id int, body text, PRIMARY KEY (region, id))",
        f"INSERT INTO public.src SELECT g % 7, g, 'b' || g FROM generate_series(1, {ROWS}) g",
    ),
    "text key": (
        "CREATE TABLE public.src (code text PRIMARY KEY, body text)",
        f"INSERT INTO public.src SELECT md5(g::text), 'b' || g FROM generate_series(1, {ROWS}) g",
    ),
    # Duplicate rows too: a keyless table's rows are told apart by nothing but their place.
    "keyless (ctid)": (
        "CREATE TABLE public.src (id int, body text)",
        f"INSERT INTO public.src SELECT g % 1000, 'same' FROM generate_series(1, {ROWS}) g",
    ),
    "empty": ("CREATE TABLE public.src (id bigint PRIMARY KEY, body text)", "SELECT 1"),
    # Almost every row in the first key range: most readers get (next to) nothing.
    "skewed keys": (
        "CREATE TABLE public.src (id bigint PRIMARY KEY, body text)",
        f"INSERT INTO public.src SELECT g, 'b' FROM generate_series(1, {ROWS}) g "
        "UNION ALL SELECT 1000000000 + g, 'far' FROM generate_series(1, 3) g",
    ),
}


def pipeline(
    source_url: str, target_url: str, parallelism: int, target: str = "dw.dst", **source: Any
) -> Any:
    return parse_pipeline(
        {
            "id": "parallel",
            "name": "Parallel read",
            "source": {"url": source_url, "table": "public.src", **source},
            "extraction": {"strategy": "full", "batchSize": 2_000, "parallelism": parallelism},
            "loading": {
                "strategy": "bulk",
                "targetTable": target,
                "targetUrl": target_url,
                "createTable": True,
            },
        },
        "test",
    )


def rows(url: str, table: str) -> Counter[tuple]:
    return Counter(run_sql(url, f"SELECT * FROM {table}"))  # noqa: S608 - fixed names


def sessions(url: str) -> int:
    """Sessions on the database, the asking one excepted, once closed ones have left."""
    query = (
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    deadline = time.monotonic() + 5
    while (count := int(run_sql(url, query)[0][0])) and time.monotonic() < deadline:
        time.sleep(0.05)
    return count


def readers_alive() -> int:
    return sum(t.name.startswith("summit-reader-") for t in threading.enumerate())


def test_a_parallel_read_loads_every_row_exactly_once(
    source_url: str, target_url: str, summit_url: str
) -> None:
    # One database each for every kind of table: a test's databases cost more than its reads.
    run_sql(target_url, "CREATE SCHEMA dw")
    for number, (kind, (ddl, insert)) in enumerate(TABLES.items()):
        source, target = f"public.src_{number}", f"dw.dst_{number}"
        run_sql(source_url, f"{ddl}; {insert}; ANALYZE public.src".replace("public.src", source))
        run_sql(target_url, ddl.replace("public.src", target))
        config = pipeline(source_url, target_url, 4, table=source, target=target)
        outcome = run_pipeline(config, RunRequest(uuid.uuid4().hex), summit_url)
        expected = rows(source_url, source)
        assert outcome.counts.records_loaded == sum(expected.values()), kind
        assert rows(target_url, target) == expected, kind
    assert readers_alive() == 0
    assert sessions(source_url) == 0


def test_writes_during_a_parallel_read_are_not_mixed_into_it(
    source_url: str, target_url: str, summit_url: str
) -> None:
    # Transfers between the first and the last key range (and, as updates move rows to
    # other blocks, between ctid ranges) keep the total: a read mixing states breaks it.
    run_sql(
        source_url,
        "CREATE TABLE public.src (id bigint PRIMARY KEY, balance int NOT NULL);"
        f"INSERT INTO public.src SELECT g, 100 FROM generate_series(1, {ROWS}) g;"
        "ANALYZE public.src",
    )
    done = threading.Event()
    transfers = 0

    def transfer() -> None:
        nonlocal transfers
        while not done.is_set():
            low, high = 1 + transfers % 100, ROWS - transfers % 100
            run_sql(
                source_url,
                "UPDATE public.src SET balance = balance + CASE id WHEN %s THEN -1 ELSE 1 END"
                " WHERE id IN (%s, %s)",
                (low, low, high),
            )
            transfers += 1

    writer = threading.Thread(target=transfer)
    writer.start()
    try:
        for _ in range(2):
            run_pipeline(
                pipeline(source_url, target_url, 4), RunRequest(uuid.uuid4().hex), summit_url
            )
            total, count = run_sql(target_url, "SELECT sum(balance), count(*) FROM dw.dst")[0]
            assert (total, count) == (100 * ROWS, ROWS)
    finally:
        done.set()
        writer.join()
    assert transfers > 0


def test_a_reader_error_fails_the_run_at_extraction_and_leaves_nothing_behind(
    source_url: str, target_url: str, summit_url: str
) -> None:
    run_sql(
        target_url,
        "CREATE SCHEMA dw; CREATE TABLE dw.dst (id int PRIMARY KEY, inverse int);"
        "INSERT INTO dw.dst VALUES (1, 1), (2, 0)",
    )
    # Fails on the server after several batches have reached the loader.
    query = "SELECT g AS id, 1 / (g - 20000) AS inverse FROM generate_series(1, 30000) g"
    config = pipeline(source_url, target_url, 1, table=None, query=query)
    with pytest.raises(StageFailure) as failure:
        run_pipeline(config, RunRequest(uuid.uuid4().hex), summit_url)
    assert failure.value.stage is Stage.extraction
    assert "division by zero" in str(failure.value.cause)
    assert run_sql(target_url, "SELECT * FROM dw.dst ORDER BY id") == [(1, 1), (2, 0)]
    assert readers_alive() == 0
    assert sessions(source_url) == 0
    assert sessions(target_url) == 0


def test_reloaded_rows_that_break_a_foreign_key_fail_the_run_naming_it_in_its_record(
    source_url: str, target_url: str, summit_url: str
) -> None:
    run_sql(
        target_url,
        "CREATE SCHEMA dw; CREATE TABLE dw.cities (name text PRIMARY KEY);"
        "INSERT INTO dw.cities VALUES ('Oslo');"
        "CREATE TABLE dw.dst (id int PRIMARY KEY, city text"
        " CONSTRAINT dst_city_fk REFERENCES dw.cities);"
        "INSERT INTO dw.dst VALUES (1, 'Oslo')",
    )
    query = (
        "SELECT g AS id, CASE WHEN g = 3 THEN 'Paris' ELSE 'Oslo' END AS city"
        " FROM generate_series(1, 5) g"
    )
    config = pipeline(source_url, target_url, 1, table=None, query=query)
    run_id = uuid.uuid4().hex
    with pytest.raises(StageFailure) as failure:
        run_pipeline(config, RunRequest(run_id), summit_url)
    expected = (
        "the reloaded rows of dw.dst break its foreign key dst_city_fk (Key (city)=(Paris) is "
        'not present in table "cities".); the old rows are kept'
    )
    assert failure.value.stage is Stage.loading
    recorded = run_sql(
        summit_url, "SELECT status, errors FROM pipeline_runs WHERE id = %s", (run_id,)
    )
    assert recorded[0][0] == "failed"
    assert [e["message"] for e in recorded[0][1]] == [expected], recorded
    assert run_sql(target_url, "SELECT * FROM dw.dst") == [(1, "Oslo")]


def test_a_cancel_mid_read_stops_the_reader_and_leaves_the_target_as_it_was(
    source_url: str, target_url: str, summit_url: str
) -> None:
    run_sql(
        target_url,
        "CREATE SCHEMA dw; CREATE TABLE dw.dst (id int PRIMARY KEY, inverse int);"
        "INSERT INTO dw.dst VALUES (1, 1), (2, 0)",
    )
    # The source takes 60 s for its first row: the run waits on its reader when cancelled.
    query = (
        "SELECT g AS id, g AS inverse FROM generate_series(1, 1000) g "
        "WHERE pg_sleep(CASE WHEN g = 1 THEN 60 ELSE 0 END) IS NOT NULL"
    )
    config = pipeline(source_url, target_url, 1, table=None, query=query)
    request = RunRequest(uuid.uuid4().hex)

    def reading() -> bool:
        return bool(
            run_sql(
                source_url,
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND state = 'active' AND query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()",
            )[0][0]
        )

    canceller = cancel_when(reading)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(config, request, summit_url)
    canceller.join()
    assert time.monotonic() - started < 40  # the reader's statement was cancelled
    status = run_sql(summit_url, "SELECT status FROM pipeline_runs WHERE id = %s", (request.run_id,))
    assert status == [("cancelled",)]
    assert run_sql(target_url, "SELECT * FROM dw.dst ORDER BY id") == [(1, 1), (2, 0)]
    assert readers_alive() == 0
    assert sessions(source_url) == 0


# A source whose every scan is counted: public.tick() runs once per row read.
COUNTED = """
CREATE SEQUENCE public.reads;
CREATE FUNCTION public.tick() RETURNS boolean VOLATILE LANGUAGE sql
    AS $$ SELECT nextval('public.reads') > 0 $$;
CREATE TABLE public.events (id int PRIMARY KEY, at timestamptz, amount numeric(12,2), t time);
INSERT INTO public.events
SELECT g, timestamptz '2024-01-01' + g * interval '1 minute', g / 100.0, time '08:00'
  FROM generate_series(1, {rows}) g;
"""
COUNTED_QUERY = "SELECT id, at, amount, t FROM public.events WHERE public.tick()"


def counted_source(url: str, rows: int) -> None:
    run_sql(url, COUNTED.replace("{rows}", str(int(rows))))


def rows_read(url: str) -> int:
    """Rows the counted source's scans have read so far."""
    return int(run_sql(url, "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM public.reads")[0][0])


def events_as_text(url: str, table: str) -> list[tuple]:
    return run_sql(url, f"SELECT id::text, at::text, amount::text, t::text FROM {table} ORDER BY id")  # noqa: S608


def test_a_read_without_special_values_scans_the_source_once(
    source_url: str, target_url: str, summit_url: str
) -> None:
    """Dates, timestamps, times and numerics travel typed without a probe scan first."""
    counted_source(source_url, 5_000)
    config = pipeline(source_url, target_url, 1, table=None, query=COUNTED_QUERY)
    for run in (1, 2):
        assert run_pipeline(config, RunRequest(uuid.uuid4().hex), summit_url).status == "success"
        assert rows_read(source_url) == 5_000 * run
    assert events_as_text(target_url, "dw.dst") == events_as_text(source_url, "public.events")
    types = run_sql(
        target_url,
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
        " WHERE attrelid = 'dw.dst'::regclass AND attnum > 0 ORDER BY attnum",
    )
    assert types == [
        ("id", "integer"),
        ("at", "timestamp with time zone"),
        ("amount", "numeric(12,2)"),
        ("t", "time without time zone"),
    ]


@pytest.mark.parametrize("strategy", ["bulk", "incremental upsert"])
def test_special_values_found_mid_read_start_the_read_over_once_as_text(
    source_url: str, target_url: str, summit_url: str, strategy: str, caplog: Any
) -> None:
    """NaN, 24:00 and infinity in three columns: the batch holding the first fails, the
    load rolls back, one probe finds the other two columns, and the read starts over once
    with all three as text: every value lands exactly, run after run."""
    rows = 5_000
    counted_source(source_url, rows)
    run_sql(
        source_url,
        "UPDATE public.events SET amount = 'NaN' WHERE id = 2;"
        "UPDATE public.events SET t = '24:00' WHERE id = 2500;"
        f"UPDATE public.events SET at = 'infinity' WHERE id = {rows}",
    )
    config = pipeline(source_url, target_url, 1, table=None, query=COUNTED_QUERY)
    if strategy != "bulk":
        raw = config.model_dump(by_alias=True, exclude_none=True)
        raw["extraction"] = {"strategy": "incremental", "incrementalColumn": "id", "batchSize": 1_000}
        raw["watermark"] = {"type": "numeric"}
        raw["loading"] |= {"strategy": "upsert", "upsertKey": ["id"]}
        config = parse_pipeline(raw, "test")
    expected = events_as_text(source_url, "public.events")
    # The incremental run's second read is the boundary row only, which holds the infinity.
    second = ["amount", "at", "t"] if strategy == "bulk" else ["at"]
    for as_text in (["amount", "at", "t"], second):
        before = rows_read(source_url)
        caplog.clear()
        with caplog.at_level("INFO", logger="summit_etl.engine"):
            outcome = run_pipeline(config, RunRequest(uuid.uuid4().hex), summit_url)
        assert outcome.status == "success"
        assert events_as_text(target_url, "dw.dst") == expected
        restarts = [r for r in caplog.records if "reading again with it as text" in r.message]
        assert [r.asText for r in restarts] == [as_text]
        assert restarts[0].column in as_text
        # At most one wasted read: its part, the probe, the whole read again.
        read_now = outcome.counts.records_extracted
        assert read_now == (rows if outcome.watermark_from is None else 1)
        assert rows_read(source_url) - before <= 3 * read_now
    if strategy != "bulk":
        assert outcome.watermark_to == str(rows)


def test_a_watermark_column_holding_infinity_fails_naming_it(
    source_url: str, target_url: str, summit_url: str
) -> None:
    """The watermark must be read typed: ±infinity there fails the run, nothing loaded."""
    counted_source(source_url, 100)
    run_sql(source_url, "UPDATE public.events SET at = 'infinity' WHERE id = 100")
    raw = pipeline(source_url, target_url, 1, table=None, query=COUNTED_QUERY).model_dump(
        by_alias=True, exclude_none=True
    )
    raw["extraction"] = {"strategy": "incremental", "incrementalColumn": "at"}
    raw["loading"] |= {"strategy": "upsert", "upsertKey": ["id"]}
    with pytest.raises(StageFailure) as failure:
        run_pipeline(parse_pipeline(raw, "test"), RunRequest(uuid.uuid4().hex), summit_url)
    assert "column 'at' (source type timestamptz)" in str(failure.value)
    assert run_sql(target_url, "SELECT to_regclass('dw.dst')") == [(None,)]


def test_a_parallel_read_starts_over_as_text_in_every_range(
    source_url: str, target_url: str, summit_url: str, caplog: Any
) -> None:
    """Readers of two key ranges: the one that meets an infinity fails the load, and the
    read starts over with that column as text in both ranges, every row exactly once."""
    counted_source(source_url, ROWS)
    run_sql(
        source_url,
        "UPDATE public.events SET at = '-infinity' WHERE id = 10;"
        f"UPDATE public.events SET at = 'infinity' WHERE id = {ROWS - 10}",
    )
    config = pipeline(source_url, target_url, 2, table="public.events")
    for _ in range(2):
        caplog.clear()
        with caplog.at_level("INFO", logger="summit_etl.engine"):
            outcome = run_pipeline(config, RunRequest(uuid.uuid4().hex), summit_url)
        assert (outcome.status, outcome.counts.records_loaded) == ("success", ROWS)
        restarts = [r for r in caplog.records if "reading again with it as text" in r.message]
        assert [r.asText for r in restarts] == [["at"]]
        assert events_as_text(target_url, "dw.dst") == events_as_text(source_url, "public.events")
    # The first attempt's readers and their sessions ended with it.
    assert readers_alive() == 0
    assert sessions(source_url) == 0
