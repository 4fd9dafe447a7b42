"""What a small run costs, in process (docs/benchmarks.md, "Small runs").

Most runs move few rows: an hourly incremental pass, a CDC run woken by one change. Their
time is the engine's fixed cost: run records, connections (the ADBC driver loads the
server's type catalog before its first connection, 50-100 ms), the target's set-up and
the merge statements. One invocation makes scratch databases, then runs each case
`--runs` times one after the other in this process and prints the median and the fastest:

    .venv/bin/python bench/run_overhead.py            # 25 runs of each case
    .venv/bin/python bench/run_overhead.py --runs 10

The cases: `raw_copy` (the anchor: the same 10,000 rows through a psycopg COPY BINARY pipe,
both connections opened and the target emptied and committed each time), `bulk` (a full
reload of the 10,000 rows), `upsert` (a full read merged into the loaded target, nothing
changed), `cdc_trigger` (a trigger CDC run applying the one change made before it). Every
run must succeed and load what it read, or the script exits 1.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from summit_etl.engine import RunRequest, run_pipeline
from summit_etl.registry import parse_pipeline
from summit_etl.store import db

ADMIN_URL = os.environ.get("SUMMIT_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PREFIX = os.environ.get("SUMMIT_BENCH_DB_PREFIX", "summit_bench") + "_overhead"
ROWS = 10_000


def url(name: str) -> str:
    return ADMIN_URL.rsplit("/", 1)[0] + f"/{PREFIX}_{name}"


def fresh_databases() -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        for name in ("src", "dst", "summit"):
            ident = sql.Identifier(f"{PREFIX}_{name}")
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(ident))
    db.migrate(url("summit"))
    with psycopg.connect(url("src"), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE public.items (id bigint PRIMARY KEY, name text NOT NULL,"
            " amount numeric(12,2), updated_at timestamptz NOT NULL)"
        )
        conn.execute(
            "INSERT INTO public.items SELECT g, 'item ' || g, g / 100.0,"
            " '2025-01-01'::timestamptz + g * interval '1 minute'"
            " FROM generate_series(1, %s) g",
            (ROWS,),
        )
        conn.execute("VACUUM (FREEZE, ANALYZE) public.items")
    with psycopg.connect(url("dst"), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE public.raw_items (id bigint PRIMARY KEY, name text NOT NULL,"
            " amount numeric(12,2), updated_at timestamptz NOT NULL)"
        )


def raw_copy() -> int:
    with (
        psycopg.connect(url("src")) as source,
        psycopg.connect(url("dst")) as target,
        source.cursor().copy("COPY public.items TO STDOUT (FORMAT binary)") as out,
        target.cursor() as cursor,
    ):
        cursor.execute("TRUNCATE public.raw_items")
        with cursor.copy("COPY public.raw_items FROM STDIN (FORMAT binary)") as into:
            for chunk in out:
                into.write(chunk)
        return cursor.rowcount


def pipeline(pipeline_id: str, strategy: str, **extra: Any) -> Callable[[], int]:
    config = parse_pipeline(
        {
            "id": pipeline_id,
            "name": pipeline_id,
            "source": {"url": url("src"), "table": "public.items"},
            "loading": {
                "strategy": strategy,
                "targetTable": f"public.{pipeline_id.replace('-', '_')}",
                "targetUrl": url("dst"),
                "createTable": True,
                "upsertKey": ["id"],
            },
            **extra,
        },
        "bench",
    )

    def run() -> int:
        outcome = run_pipeline(config, RunRequest(uuid.uuid4().hex), url("summit"))
        if outcome.status != "success":
            raise SystemExit(f"{pipeline_id}: the run ended {outcome.status}")
        return outcome.counts.records_loaded

    return run


def cdc_run() -> Callable[[], int]:
    run = pipeline(
        "cdc-trigger", "upsert",
        extraction={"strategy": "cdc"}, cdc={"strategy": "trigger", "primaryKeys": ["id"]},
    )
    changed = 0

    def one_change() -> int:
        nonlocal changed
        changed += 1
        with psycopg.connect(url("src"), autocommit=True) as conn:
            conn.execute(
                "UPDATE public.items SET name = name || '+' WHERE id = %s", (changed % ROWS + 1,)
            )
        return run()

    return one_change


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=25)
    args = parser.parse_args()
    fresh_databases()
    cases: dict[str, tuple[Callable[[], int], int]] = {
        "raw_copy": (raw_copy, ROWS),
        "bulk": (pipeline("bulk", "bulk", extraction={"strategy": "full"}), ROWS),
        "upsert": (pipeline("upsert", "upsert", extraction={"strategy": "full"}), ROWS),
        "cdc_trigger": (cdc_run(), 1),
    }
    print("| case | rows a run | runs | median ms | fastest ms | median ÷ raw_copy's |")
    print("|---|---:|---:|---:|---:|---:|")
    anchor = None
    for name, (run, rows) in cases.items():
        run()  # the first run creates the target (and the capture): not timed
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            loaded = run()
            times.append(time.perf_counter() - started)
            if loaded != rows:
                print(f"{name}: loaded {loaded} rows, expected {rows}", file=sys.stderr)
                return 1
        median = statistics.median(times)
        anchor = anchor or median
        print(
            f"| {name} | {rows:,} | {args.runs} | {median * 1000:.0f} | {min(times) * 1000:.0f}"
            f" | {median / anchor:.1f}× |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
