"""One table reloaded in slices (issue 12 goal 2, the Dagster side; docs/benchmarks.md).

A full `bulk` run of the pipeline against the same table loaded as N slices (runs/slice.py):
one slice after another (one run worker), and all N at once, each in its own process (N run
workers; the process start is not timed, as a cluster's workers are already up). The
contenders reload the same populated target (a slice deletes its range, then inserts it),
the last one an emptied target (a first load: the TRUNCATE is not timed); after each, the
target must hold exactly the source's rows (count, sum of ids, sum of amounts) or the
script exits 1. Then the same reload through the real service (bench/service.py): the
pipeline created with POST /pipelines on a `summit-etl serve` started for it, and
POST /pipelines/{id}/backfill {"partitioned": true} timed until every slice run's record is
terminal (the daemon's dequeue and N run-worker processes included; the slowest slice's
engine time is printed beside it).

    .venv/bin/python bench/slices.py                        # 1,000,000 rows, 4 slices
    .venv/bin/python bench/slices.py --rows 200000 --parts 2 --repeat 2
    .venv/bin/python bench/slices.py --rows 200000 --service   # full run, N workers, service

The scratch databases are created for the run and dropped after it.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import psycopg
from psycopg import sql
from service import serving

from summit_etl.config import PipelineConfig
from summit_etl.engine import RunRequest, run_pipeline
from summit_etl.extract.ranges import split_read
from summit_etl.identifiers import TableName
from summit_etl.registry import parse_pipeline
from summit_etl.runs.slice import Slice, run_slice
from summit_etl.store import db

ADMIN_URL = os.environ.get(
    "SUMMIT_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
SOURCE = TableName("public", "items")
TARGET = TableName("bench", "items")
CHECK = "SELECT count(*), sum(id), sum(amount) FROM {}"
SERVICE = "backfill through the service"


def _database(prefix: str) -> str:
    name = f"summit_bench_{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def _url(name: str) -> str:
    return ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def _fill(url: str, rows: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE public.items (id bigint PRIMARY KEY, name text NOT NULL, "
            "amount numeric(12,2) NOT NULL, created_at timestamptz NOT NULL)"
        )
        conn.execute(
            "INSERT INTO public.items SELECT g, 'item ' || md5(g::text), (g %% 100000) / 100.0, "
            "'2026-01-01'::timestamptz + g * interval '1 second' "
            "FROM generate_series(1, %s) g",
            (rows,),
        )
        conn.execute("ANALYZE public.items")


def _document(source_url: str, target_url: str, parts: int) -> dict[str, Any]:
    """The pipeline, run in process here and created through the API for the service."""
    return {
        "id": "bench-slices",
        "name": "Slices benchmark",
        "source": {"url": source_url, "table": str(SOURCE)},
        "extraction": {"strategy": "full", "parallelism": parts},
        "loading": {
            "strategy": "bulk",
            "targetTable": str(TARGET),
            "targetUrl": target_url,
            "createTable": True,
        },
    }


def _fingerprint(url: str, table: TableName) -> tuple[Any, ...]:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql.SQL(CHECK).format(table.ident)).fetchone()
    assert row is not None
    return tuple(row)


def _slice(config: PipelineConfig, summit_url: str, part: Slice, backfill: str) -> int:
    """One slice, as one run worker would run it (top level: it runs in a pool process)."""
    request = RunRequest(f"bench-{uuid.uuid4().hex[:12]}", trigger="backfill")
    return run_slice(config, request, summit_url, part, backfill).counts.records_loaded


def _rounds(contenders: dict[str, Callable[[], int]], timings: dict[str, list[float]],
            repeat: int, target_url: str, rows: int, expected: tuple[Any, ...]) -> bool:
    """`repeat` rounds of every contender, each timed into `timings` and its target checked
    against the source; False if one loaded the wrong rows."""
    ok = True
    for _ in range(repeat):
        for name, contender in contenders.items():
            started = time.perf_counter()
            loaded = contender()
            timings.setdefault(name, []).append(time.perf_counter() - started)
            found = _fingerprint(target_url, TARGET)
            if loaded != rows or found != expected:
                print(f"FAILED {name}: loaded {loaded}, target {found}, source {expected}")
                ok = False
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--parts", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=1, help="rounds of every contender")
    parser.add_argument("--service", action="store_true",
                        help="only the backfill through the service and its anchors, the full "
                        "run and all slices at once in process")
    parser.add_argument("--keep-logs", action="store_true",
                        help="keep the started service's output directory")
    args = parser.parse_args()
    if args.parts < 2:
        parser.error("--parts ≥ 2 (a pipeline's slices job needs extraction.parallelism > 1)")

    names = {k: _database(k) for k in ("src", "dst", "summit")}
    urls = {k: _url(v) for k, v in names.items()}
    try:
        db.migrate(urls["summit"])
        _fill(urls["src"], args.rows)
        document = _document(urls["src"], urls["dst"], args.parts)
        config = parse_pipeline(document, "bench/slices.py")
        expected = _fingerprint(urls["src"], SOURCE)
        parts = [Slice(n, args.parts) for n in range(1, args.parts + 1)]
        # The target exists and holds the rows before any timed contender.
        run_pipeline(config, RunRequest("bench-warmup"), urls["summit"])
        timings: dict[str, list[float]] = {}
        engines: list[float] = []  # the slowest slice run's engine time, per service round
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.parts, mp_context=context) as pool:
            list(pool.map(time.sleep, [0.5] * args.parts))  # every worker up

            def full() -> int:
                request = RunRequest(f"bench-{uuid.uuid4().hex[:12]}", full_reload=True)
                return run_pipeline(config, request, urls["summit"]).counts.records_loaded

            def one_worker() -> int:
                backfill = uuid.uuid4().hex
                return sum(_slice(config, urls["summit"], p, backfill) for p in parts)

            def all_workers() -> int:
                backfill = uuid.uuid4().hex
                futures = [pool.submit(_slice, config, urls["summit"], p, backfill) for p in parts]
                return sum(f.result() for f in futures)

            def all_workers_empty_target() -> int:
                with psycopg.connect(urls["dst"], autocommit=True) as conn:
                    conn.execute(sql.SQL("TRUNCATE {}").format(TARGET.ident))
                return all_workers()

            def split() -> int:
                return len(split_read(urls["src"], SOURCE, args.parts))

            contenders: dict[str, Callable[[], int]] = {
                "full run (shadow swap)": full,
                f"{args.parts} slices, one worker": one_worker,
                f"{args.parts} slices, {args.parts} workers": all_workers,
                "... into an empty target": all_workers_empty_target,
            }
            if args.service:  # the anchors only
                del contenders[f"{args.parts} slices, one worker"]
                del contenders["... into an empty target"]
            ok = _rounds(contenders, timings, args.repeat, urls["dst"], args.rows, expected)
            started = time.perf_counter()
            ranges = split()
            split_ms = (time.perf_counter() - started) * 1000
        # Through the service after the rest, so that its idle daemon shares no core with them.
        with serving(keep_logs=args.keep_logs) as svc, svc.pipeline(document) as pipeline_id:

            def service_backfill() -> int:
                runs = svc.backfill_slices(pipeline_id, args.parts)
                for run in runs:
                    run.check()
                engines.append(max(run.engine_seconds for run in runs))
                return sum(run.records_loaded for run in runs)

            ok &= _rounds({SERVICE: service_backfill}, timings, args.repeat, urls["dst"],
                          args.rows, expected)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            for name in names.values():
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )

    base = min(timings["full run (shadow swap)"])
    print(f"\n{args.rows:,} rows, {args.parts} slices ({ranges} ranges), best of {args.repeat}")
    print(f"{'contender':<28} {'seconds':>8} {'rows/s':>10} {'vs full':>8}")
    for name, seconds in timings.items():
        best = min(seconds)
        print(f"{name:<28} {best:>8.2f} {args.rows / best:>10,.0f} {base / best:>7.2f}x")
    print(f"split_read alone: {split_ms:.0f} ms")
    print(f"{SERVICE}: POST /pipelines/{{id}}/backfill {{\"partitioned\": true}} until every "
          f"slice run's record is terminal; the slowest slice run's engine time "
          f"(metrics.totalDurationMs): {min(engines):.2f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
