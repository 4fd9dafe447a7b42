"""Load throughput: Summit ETL against a raw COPY pipe, pandas and dlt (docs/benchmarks.md).

One invocation generates the source table once (idempotently), then loads it in full into
an empty target with each contender in turn and prints one comparison table:

    .venv/bin/python bench/load_throughput.py                 # 1,000,000 rows, all contenders
    .venv/bin/python bench/load_throughput.py --memory-check  # Summit's peak RSS, 1M vs 5M rows
    .venv/bin/python bench/load_throughput.py --service       # raw_copy, summit, summit_service

Each contender runs in a child process (this script with `--contender`), so its peak RSS is
its own and not the high-water mark of whichever contender ran before it. The child times
the load only (wall time and its own CPU time, all threads) and reports JSON on its last
stdout line; the parent verifies the target's
row count independently and fails loudly if it is not the number of rows read.
`summit_service` is the same Summit pipeline through a `summit-etl serve` started for it
(bench/service.py): created with POST /pipelines, timed from POST .../execute until its run
record is terminal, and reported beside the engine's own time from that record.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

ADMIN_URL = os.environ.get("SUMMIT_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
# Another name lets two people benchmark on one server without sharing a target.
DB_PREFIX = os.environ.get("SUMMIT_BENCH_DB_PREFIX", "summit_bench")
SOURCE_DB = f"{DB_PREFIX}_src"
TARGET_DB = f"{DB_PREFIX}_dst"
SUMMIT_DB = f"{DB_PREFIX}_summit"
TARGET_SCHEMA = "bench"
TARGET_TABLE = "dst"
# Every contender's target is `CREATE TABLE bench.dst (LIKE public.src_template INCLUDING
# ALL)`: LIKE cannot reach across databases, so the target database keeps an empty copy of
# the source's definition to clone from.
TEMPLATE_TABLE = "src_template"
BATCH_ROWS = 50_000
RESULT_PREFIX = "BENCH_RESULT "
CONTENDERS = ("raw_copy", "raw_unindexed", "summit", "summit_par2", "dlt", "pandas",
              "summit_service")
# Summit's pipeline created and executed through a `summit-etl serve` started for it
# (bench/service.py), after the in-process contenders so its idle daemon does not share the
# cores with them; `--service` runs it with its anchors only.
SERVICE_CONTENDER = "summit_service"
SERVICE_ANCHORS = ("raw_copy", "summit")
# Run only when asked for with --only: dlt told to COPY csv instead of its default INSERTs.
EXTRA_CONTENDERS = ("dlt_csv",)
# Summit rows/s divided by the baseline's rows/s must reach these (the targets).
TARGET_RATIOS = {
    "raw_copy": 1.0, "raw_unindexed": 0.8, "pandas": 10.0, "dlt": 2.0, "dlt_csv": 2.0
}
MEMORY_CHECK_ROWS = (1_000_000, 5_000_000)
MEMORY_GROWTH_LIMIT = 1.3
QUIET_CPU_FRACTION = 0.15  # of both cores, measured over a second before each contender
QUIET_TIMEOUT_S = float(os.environ.get("SUMMIT_BENCH_QUIET_TIMEOUT", "300"))

SOURCE_COLUMNS = sql.SQL(
    """
    id         bigint PRIMARY KEY,
    quantity   integer NOT NULL,
    name       text NOT NULL,
    code       varchar(32),
    amount     numeric(12,2) NOT NULL,
    created_at timestamptz NOT NULL,
    active     boolean NOT NULL,
    payload    jsonb NOT NULL,
    score      double precision,
    day        date NOT NULL
    """
)
# Deterministic values from the row number, a few NULLs, and jsonb/numeric/timestamptz
# columns, the types whose conversion costs the most in Python-row based loaders.
SOURCE_ROWS = sql.SQL(
    """
    SELECT i,
           (i %% 1000)::int,
           'customer ' || md5(i::text),
           CASE WHEN i %% 17 = 0 THEN NULL ELSE 'C' || lpad((i %% 100000)::text, 8, '0') END,
           ((i * 7919) %% 10000000) / 100.0,
           timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second',
           i %% 3 = 0,
           jsonb_build_object('n', i, 'tag', 'tag' || (i %% 10), 'even', i %% 2 = 0),
           CASE WHEN i %% 11 = 0 THEN NULL ELSE sqrt(i::double precision) END,
           date '2020-01-01' + (i %% 3650)::int
      FROM generate_series(1::bigint, %s::bigint) AS i
    """
)


# --- connections and data ----------------------------------------------------------------


def database_url(name: str) -> str:
    return make_conninfo(ADMIN_URL, dbname=name)


def url_form(name: str, driver: str = "postgresql") -> str:
    """A URL for clients that want one (SQLAlchemy, dlt, ADBC): ADMIN_URL with `name`."""
    base = ADMIN_URL.rsplit("/", 1)[0]
    return f"{base.replace('postgresql://', driver + '://', 1)}/{name}"


def source_table(rows: int) -> str:
    return f"src_{rows}"


def ensure_database(name: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def table_rows(url: str, schema: str, table: str) -> int | None:
    """count(*) of the table, or None when it does not exist."""
    with psycopg.connect(url) as conn:
        found = conn.execute("SELECT to_regclass(%s)", (f"{schema}.{table}",)).fetchone()
        if found is None or found[0] is None:
            return None
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))
        ).fetchone()
    return int(row[0]) if row else 0


def ensure_source(rows: int) -> str:
    """The source table of `rows` rows, generated server-side unless it is already there."""
    name = source_table(rows)
    url = database_url(SOURCE_DB)
    if table_rows(url, "public", name) == rows:
        print(f"source public.{name}: {rows:,} rows already generated", flush=True)
        return name
    print(f"generating public.{name} ({rows:,} rows) ...", flush=True)
    started = time.perf_counter()
    ident = sql.Identifier("public", name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ident))
        conn.execute(sql.SQL("CREATE TABLE {} ({})").format(ident, SOURCE_COLUMNS))
        conn.execute(sql.SQL("INSERT INTO {} ").format(ident) + SOURCE_ROWS, (rows,))
        # Freeze and set hint bits now, so that the first contender to read the table does
        # not pay for writing them back.
        conn.execute(sql.SQL("VACUUM (FREEZE, ANALYZE) {}").format(ident))
    print(f"generated in {time.perf_counter() - started:.1f} s", flush=True)
    return name


def reset_target() -> None:
    """An empty `bench.dst` shaped like the source, primary key included."""
    with psycopg.connect(database_url(TARGET_DB), autocommit=True) as conn:
        template = sql.Identifier("public", TEMPLATE_TABLE)
        conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(template, SOURCE_COLUMNS))
        # dlt keeps its bookkeeping tables in the dataset schema: drop them with the target.
        conn.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(TARGET_SCHEMA))
        )
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(TARGET_SCHEMA)))
        conn.execute(
            sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(
                sql.Identifier(TARGET_SCHEMA, TARGET_TABLE), template
            )
        )
        # Start every contender with no dirty WAL of the previous one left to flush.
        conn.execute("CHECKPOINT")


def select_source(table: str, limit: int | None) -> str:
    """The read query of the Python-row contenders; `limit` takes the first ids only."""
    where = f" WHERE id <= {int(limit)}" if limit is not None else ""
    return f"SELECT * FROM public.{table}{where}"  # noqa: S608 - names are built from ints


# --- the contenders (each runs in its own child process) ---------------------------------


def load_raw_copy(table: str, limit: int | None) -> int:
    """COPY BINARY out of the source, chunks written unchanged into COPY BINARY in."""
    source = sql.SQL("COPY (SELECT * FROM {}) TO STDOUT (FORMAT binary)").format(
        sql.Identifier("public", table)
    )
    target = sql.SQL("COPY {} FROM STDIN (FORMAT binary)").format(
        sql.Identifier(TARGET_SCHEMA, TARGET_TABLE)
    )
    with (
        psycopg.connect(database_url(SOURCE_DB)) as src,
        psycopg.connect(database_url(TARGET_DB)) as dst,
        src.cursor().copy(source) as copy_out,
        dst.cursor() as cursor,
    ):
        with cursor.copy(target) as copy_in:
            for chunk in copy_out:
                copy_in.write(chunk)
        return cursor.rowcount


def load_raw_unindexed(table: str, limit: int | None) -> int:
    """The raw pipe's own limit: in one transaction, COPY BINARY into a table created
    without indexes, build the primary key afterwards, and swap it in for the target
    (plain COPY, no FREEZE: FREEZE measured slower in this pipe, docs/benchmarks.md)."""
    fresh = sql.Identifier(TARGET_SCHEMA, f"{TARGET_TABLE}_new")
    source = sql.SQL("COPY (SELECT * FROM {}) TO STDOUT (FORMAT binary)").format(
        sql.Identifier("public", table)
    )
    with (
        psycopg.connect(database_url(SOURCE_DB)) as src,
        psycopg.connect(database_url(TARGET_DB)) as dst,
        src.cursor().copy(source) as copy_out,
        dst.cursor() as cursor,
    ):
        cursor.execute(sql.SQL("CREATE TABLE {} (LIKE {})").format(
            fresh, sql.Identifier("public", TEMPLATE_TABLE)))
        with cursor.copy(sql.SQL("COPY {} FROM STDIN (FORMAT binary)").format(fresh)) as copy_in:
            for chunk in copy_out:
                copy_in.write(chunk)
        written = cursor.rowcount
        cursor.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (id)").format(fresh))
        cursor.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(TARGET_SCHEMA, TARGET_TABLE)))
        cursor.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(
            fresh, sql.Identifier(TARGET_TABLE)))
        return written


def load_pandas(table: str, limit: int | None) -> int:
    """read_sql in chunks, to_sql each chunk: the loop people write by hand."""
    import pandas as pd
    from sqlalchemy import create_engine, text
    from sqlalchemy.dialects.postgresql import JSONB

    source = create_engine(url_form(SOURCE_DB, "postgresql+psycopg"))
    target = create_engine(url_form(TARGET_DB, "postgresql+psycopg"))
    written = 0
    # stream_results makes chunksize stream through a server-side cursor; without it the
    # driver would fetch every row into client memory before yielding the first chunk.
    with (
        source.connect().execution_options(stream_results=True) as src,
        target.begin() as dst,
    ):
        for frame in pd.read_sql(text(select_source(table, limit)), src, chunksize=BATCH_ROWS):
            # Without the JSONB dtype to_sql cannot bind the dicts psycopg read from jsonb.
            frame.to_sql(
                TARGET_TABLE, dst, schema=TARGET_SCHEMA, if_exists="append", index=False,
                dtype={"payload": JSONB()},
            )
            written += len(frame)
    source.dispose()
    target.dispose()
    return written


def load_dlt(table: str, limit: int | None, file_format: str | None = None) -> int:
    """dlt's sql_table with the pyarrow backend into its postgres destination.

    By default dlt loads postgres from `insert_values` files; `file_format="csv"` makes it
    COPY instead (the `dlt_csv` contender, not run by default).
    """
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    import dlt
    from dlt.sources.sql_database import sql_table

    resource_ = sql_table(
        credentials=url_form(SOURCE_DB, "postgresql+psycopg"),
        table=table,
        schema="public",
        backend="pyarrow",
        chunk_size=BATCH_ROWS,
    )
    with tempfile.TemporaryDirectory(prefix="summit_bench_dlt_") as pipelines_dir:
        pipeline = dlt.pipeline(
            pipeline_name="summit_bench",
            pipelines_dir=pipelines_dir,
            destination=dlt.destinations.postgres(credentials=dlt_target_url()),
            dataset_name=TARGET_SCHEMA,
        )
        info = pipeline.run(
            resource_, table_name=TARGET_TABLE, write_disposition="append",
            loader_file_format=file_format,
        )
        info.raise_on_failed_jobs()
        trace = pipeline.last_trace
        counts = trace.last_normalize_info.row_counts
        for step in trace.steps:  # where dlt's time goes: extract, normalize, load
            if step.started_at and step.finished_at:
                seconds = (step.finished_at - step.started_at).total_seconds()
                _STAGE_METRICS[f"{step.step}DurationMs"] = round(seconds * 1000, 3)
    return int(counts.get(TARGET_TABLE, 0))


def dlt_target_url() -> str:
    """dlt insists on a password; under trust authentication the server ignores it."""
    url = url_form(TARGET_DB)
    if "@" in url and ":" not in url.split("://", 1)[1].split("@", 1)[0]:
        url = url.replace("@", ":unused@", 1)
    return url


class _ReaderBusy(logging.Handler):
    """The readers' own busy time, which the read-ahead logs when they stop."""

    def emit(self, record: logging.LogRecord) -> None:
        busy = getattr(record, "readerBusyMs", None)
        if busy is not None:
            for number, ms in enumerate(busy):
                _STAGE_METRICS[f"reader{number}BusyMs"] = ms


def summit_document(table: str, parallelism: int = 1) -> dict[str, Any]:
    """Summit's pipeline: full extraction (`parallelism` readers), bulk load into the target;
    run in process by `summit`/`summit_par2`, created through the API by `summit_service`."""
    return {
        "id": "bench-load-throughput",
        "name": "Load throughput benchmark",
        "source": {"url": url_form(SOURCE_DB), "table": f"public.{table}"},
        # Without the key when 1, so that the main branch's code reads this config too.
        "extraction": {"strategy": "full", "batchSize": BATCH_ROWS}
        | ({"parallelism": parallelism} if parallelism > 1 else {}),
        "loading": {
            "strategy": "bulk",
            "targetTable": f"{TARGET_SCHEMA}.{TARGET_TABLE}",
            "targetUrl": url_form(TARGET_DB),
            "createTable": False,
        },
    }


def load_summit(table: str, limit: int | None, parallelism: int = 1) -> int:
    """Summit's own run, through run_pipeline."""
    from summit_etl.engine import RunRequest, run_pipeline
    from summit_etl.registry import parse_pipeline

    readers = logging.getLogger("summit_etl.extract.readers")
    readers.setLevel(logging.DEBUG)
    readers.addHandler(_ReaderBusy())

    config = parse_pipeline(summit_document(table, parallelism), "bench/load_throughput.py")
    request = RunRequest(run_id=f"bench-{uuid.uuid4().hex[:12]}")
    outcome = run_pipeline(config, request, url_form(SUMMIT_DB))
    _STAGE_METRICS.update(outcome.metrics)
    return outcome.counts.records_loaded


_STAGE_METRICS: dict[str, float] = {}
LOADERS: dict[str, Callable[[str, int | None], int]] = {
    "raw_copy": load_raw_copy,
    "raw_unindexed": load_raw_unindexed,
    "pandas": load_pandas,
    "dlt": load_dlt,
    "dlt_csv": lambda table, limit: load_dlt(table, limit, "csv"),
    "summit": load_summit,
    "summit_par2": lambda table, limit: load_summit(table, limit, parallelism=2),
}
# Imported before the clock starts, so no contender's time includes its imports.
WARM_IMPORTS: dict[str, tuple[str, ...]] = {
    "raw_copy": (),
    "raw_unindexed": (),
    "pandas": ("pandas", "sqlalchemy"),
    "dlt": ("dlt", "dlt.sources.sql_database"),
    "dlt_csv": ("dlt", "dlt.sources.sql_database"),
    "summit": ("summit_etl.engine", "summit_etl.registry"),
    "summit_par2": ("summit_etl.engine", "summit_etl.registry"),
}


def rss_now_kib() -> int:
    """Current resident set size (Linux: /proc/self/statm pages)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def process_cpu_seconds() -> float:
    """User plus system CPU time of this process, all its threads: the client's share of
    the two cores, which the servers' backends need too."""
    times = os.times()
    return times.user + times.system


def run_child(contender: str, table: str, limit: int | None) -> None:
    """The `--contender` side: load once, print a JSON result line for the parent."""
    import importlib

    for module in WARM_IMPORTS[contender]:
        importlib.import_module(module)
    rss_before = rss_now_kib()
    cpu_before = process_cpu_seconds()
    started = time.perf_counter()
    reported = LOADERS[contender](table, limit)
    seconds = time.perf_counter() - started
    cpu_seconds = process_cpu_seconds() - cpu_before
    result = {
        "contender": contender,
        "seconds": seconds,
        "client_cpu_seconds": cpu_seconds,
        "reported_rows": reported,
        "rss_before_kib": rss_before,
        # Linux reports ru_maxrss in KiB.
        "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "metrics": _STAGE_METRICS,
    }
    print(RESULT_PREFIX + json.dumps(result), flush=True)


# --- the parent: run, verify, report -----------------------------------------------------


@dataclass
class Result:
    contender: str
    rows: int
    seconds: float
    peak_rss_mib: float  # NaN: not measured (the run worker of a service run)
    rss_before_mib: float
    client_cpu_seconds: float = math.nan  # NaN: not measured (a service run)
    metrics: dict[str, float] = field(default_factory=dict)
    sampled_from: int | None = None  # the full table size when this ran on a sample

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds


class BenchmarkError(RuntimeError):
    pass


def spawn(contender: str, rows: int, limit: int | None) -> dict[str, Any]:
    command = [sys.executable, os.path.abspath(__file__), "--contender", contender,
               "--rows", str(rows)]
    if limit is not None:
        command += ["--limit", str(limit)]
    completed = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    lines = [ln for ln in completed.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if completed.returncode != 0 or not lines:
        tail = "\n".join(completed.stdout.splitlines()[-20:])
        raise BenchmarkError(f"{contender} failed (exit {completed.returncode}):\n{tail}")
    return json.loads(lines[-1][len(RESULT_PREFIX):])


def cpu_busy_fraction(interval: float = 1.0) -> float:
    """Share of all CPUs busy over `interval` seconds (from /proc/stat)."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            ticks = [int(v) for v in stat.readline().split()[1:]]
        idle = ticks[3] + ticks[4]  # idle + iowait
        return sum(ticks), idle

    total_a, idle_a = sample()
    time.sleep(interval)
    total_b, idle_b = sample()
    return 1 - (idle_b - idle_a) / max(total_b - total_a, 1)


def wait_for_quiet(limit: float = QUIET_CPU_FRACTION, timeout: float = QUIET_TIMEOUT_S) -> None:
    """Start a contender only once other work (test suites, autovacuum) has settled.

    On two cores a concurrent process halves whichever contender it overlaps with, so the
    comparison would measure the neighbours rather than the loaders.
    """
    deadline = time.monotonic() + timeout
    while (busy := cpu_busy_fraction()) > limit:
        if time.monotonic() > deadline:
            print(f"  warning: machine still {busy:.0%} busy after {timeout:.0f} s; "
                  "timings below are skewed by other work", flush=True)
            return
        time.sleep(2)


def check_target(contender: str, expected: int, reported: int) -> None:
    loaded = table_rows(database_url(TARGET_DB), TARGET_SCHEMA, TARGET_TABLE)
    if loaded != expected:
        raise BenchmarkError(
            f"{contender}: target holds {loaded} rows, expected {expected} "
            f"(the contender reported {reported})"
        )


def measure(contender: str, rows: int, limit: int | None = None) -> Result:
    """One fresh target, one child run, then the target's own count checked."""
    expected = min(rows, limit) if limit is not None else rows
    reset_target()
    wait_for_quiet()
    print(f"running {contender} on {expected:,} rows ...", flush=True)
    report = spawn(contender, rows, limit)
    check_target(contender, expected, report["reported_rows"])
    result = Result(
        contender=contender,
        rows=expected,
        seconds=report["seconds"],
        peak_rss_mib=report["peak_rss_kib"] / 1024,
        rss_before_mib=report["rss_before_kib"] / 1024,
        client_cpu_seconds=report["client_cpu_seconds"],
        metrics=report.get("metrics") or {},
        sampled_from=rows if expected != rows else None,
    )
    print(f"  {result.seconds:.2f} s, {result.rows_per_second:,.0f} rows/s, "
          f"peak RSS {result.peak_rss_mib:.0f} MiB", flush=True)
    return result


def measure_service(rows: int) -> list[Result]:
    """Summit through a started service: the pipeline created with POST /pipelines, then
    POST .../execute timed until its run record is terminal (what a client waits: daemon
    dequeue, run-worker start, engine), beside the engine's own time from that record."""
    from service import serving

    with serving() as svc:
        reset_target()
        with svc.pipeline(summit_document(source_table(rows))) as pipeline_id:
            wait_for_quiet()  # the code-location reload that the creation caused
            print(f"running {SERVICE_CONTENDER} on {rows:,} rows ...", flush=True)
            run = svc.execute(pipeline_id)
        run.check()
    check_target(SERVICE_CONTENDER, rows, run.records_loaded)
    print(f"  {run.seconds:.2f} s POST to run record terminal, engine {run.engine_seconds:.2f} s",
          flush=True)
    return [
        # The launch's phases print beside the stage metrics, as in bench/merge_speed.py.
        Result(SERVICE_CONTENDER, rows, run.seconds, math.nan, math.nan,
               metrics={**run.metrics, **run.phases}),
        Result(f"{SERVICE_CONTENDER} engine", rows, run.engine_seconds, math.nan, math.nan),
    ]


def ratio_cell(summit: Result | None, result: Result) -> str:
    if summit is None or result.contender.startswith("summit"):
        return "-"
    ratio = summit.rows_per_second / result.rows_per_second
    target = TARGET_RATIOS.get(result.contender)
    verdict = "" if target is None else f" (target ≥ {target:g}×: {'met' if ratio >= target else 'MISSED'})"
    return f"{ratio:.2f}×{verdict}"


def print_variants(results: list[Result]) -> None:
    """Each further Summit variant (summit_par2) against Summit and the baselines."""
    summit = next((r for r in results if r.contender == "summit"), None)
    for variant in (r for r in results if r.contender.startswith("summit_")):
        cells = [f"{variant.rows_per_second / summit.rows_per_second:.2f}× summit"] if summit else []
        cells += [
            f"{ratio_cell(variant, r)} {r.contender}"
            for r in results
            if not r.contender.startswith("summit")
        ]
        print(f"{variant.contender} ÷ contender: " + ", ".join(cells))


def cell(value: float, form: str = "{:.0f}") -> str:
    """A measured figure, or "-" where it was not measured (NaN)."""
    return "-" if math.isnan(value) else form.format(value)


def print_comparison(results: list[Result]) -> None:
    summit = next((r for r in results if r.contender == "summit"), None)
    header = ("contender", "rows", "seconds", "client CPU s", "rows/s", "RSS before MiB",
              "peak RSS MiB", "Summit ÷ contender")
    table = [header] + [
        (
            r.contender + (" *" if r.sampled_from else ""),
            f"{r.rows:,}",
            f"{r.seconds:.2f}",
            cell(r.client_cpu_seconds, "{:.2f}"),
            f"{r.rows_per_second:,.0f}",
            cell(r.rss_before_mib),
            cell(r.peak_rss_mib),
            ratio_cell(summit, r),
        )
        for r in results
    ]
    print_rows(table)
    print_variants(results)
    if any(r.contender == SERVICE_CONTENDER for r in results):
        print(f"{SERVICE_CONTENDER}: POST /pipelines/{{id}}/execute until the run record is "
              f"terminal, through summit-etl serve; {SERVICE_CONTENDER} engine: the same run's "
              "metrics.totalDurationMs (no run start); RSS is the run worker's, not measured.")
    for r in results:
        if r.sampled_from:
            print(f"* {r.contender} ran on the first {r.rows:,} rows of the {r.sampled_from:,}-row "
                  f"table; at its rate the full table would take "
                  f"~{r.sampled_from / r.rows_per_second:.0f} s (extrapolated).")
    for r in results:
        if r.metrics:
            stages = ", ".join(f"{k} {v:,.0f}" for k, v in r.metrics.items())
            print(f"{r.contender} stage metrics: {stages}")


def print_rows(table: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for n, row in enumerate(table):
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def prepare_databases() -> None:
    for name in (SOURCE_DB, TARGET_DB, SUMMIT_DB):
        ensure_database(name)
    # Migrated once here, so that no Summit run's time includes creating its run tables.
    from summit_etl.store import db

    db.prepare(url_form(SUMMIT_DB))


def comparison(rows: int, contenders: list[str], pandas_rows: int | None) -> None:
    prepare_databases()
    ensure_source(rows)
    results = []
    for contender in contenders:
        if contender == SERVICE_CONTENDER:
            results.extend(measure_service(rows))
            continue
        limit = pandas_rows if contender == "pandas" and pandas_rows and pandas_rows < rows else None
        results.append(measure(contender, rows, limit))
    print()
    print_comparison(results)


def memory_check() -> None:
    prepare_databases()
    results = []
    for rows in MEMORY_CHECK_ROWS:
        ensure_source(rows)
        results.append(measure("summit", rows))
    print()
    # "RSS before" is the interpreter with Summit imported; the peak minus it is what the
    # load itself held at most, the part that would grow if batches were not streamed.
    print_rows(
        [("rows", "seconds", "rows/s", "RSS before MiB", "peak RSS MiB", "peak - before MiB")]
        + [(f"{r.rows:,}", f"{r.seconds:.2f}", f"{r.rows_per_second:,.0f}",
            f"{r.rss_before_mib:.0f}", f"{r.peak_rss_mib:.0f}",
            f"{r.peak_rss_mib - r.rss_before_mib:.0f}") for r in results]
    )
    for r in results:
        stages = ", ".join(f"{k} {v:,.0f}" for k, v in r.metrics.items())
        print(f"summit {r.rows:,} rows stage metrics: {stages}")
    small, large = results
    growth = large.peak_rss_mib / small.peak_rss_mib
    verdict = "met" if growth <= MEMORY_GROWTH_LIMIT else "MISSED"
    print(f"peak RSS {large.rows:,} ÷ {small.rows:,}: {growth:.2f}× "
          f"(target ≤ {MEMORY_GROWTH_LIMIT}×: {verdict})")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="source rows (default 1M)")
    parser.add_argument("--only", default=",".join(CONTENDERS),
                        help=f"comma-separated contenders to run (default {','.join(CONTENDERS)}; "
                        f"also: {','.join(EXTRA_CONTENDERS)})")
    parser.add_argument("--pandas-rows", type=int, default=None,
                        help="run pandas on the first N rows only and extrapolate its rate")
    parser.add_argument("--service", action="store_true",
                        help=f"only {SERVICE_CONTENDER} (through summit-etl serve) and its "
                        f"anchors {','.join(SERVICE_ANCHORS)}")
    parser.add_argument("--memory-check", action="store_true",
                        help="only Summit, at 1M and 5M rows: peak RSS growth")
    parser.add_argument("--contender", choices=tuple(LOADERS),
                        help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.contender:
            run_child(args.contender, source_table(args.rows), args.limit)
        elif args.memory_check:
            memory_check()
        else:
            everyone = CONTENDERS + EXTRA_CONTENDERS
            asked = (SERVICE_ANCHORS + (SERVICE_CONTENDER,) if args.service
                     else tuple(args.only.split(",")))
            unknown = set(asked) - set(everyone)
            if unknown:
                raise BenchmarkError(f"unknown contenders: {sorted(unknown)}")
            chosen = [c for c in everyone if c in asked]
            comparison(args.rows, chosen, args.pandas_rows)
    except BenchmarkError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
