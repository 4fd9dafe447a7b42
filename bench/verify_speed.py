"""Verify speed: Summit's key-range checksums against a hand-written row-by-row compare.

    .venv/bin/python bench/verify_speed.py               # 1,000,000 rows
    .venv/bin/python bench/verify_speed.py --rows 200000

Source and target tables are generated once (idempotently) in two databases of the local
server. Three timings, each the best of `--repeats`: verify on equal tables, verify after
10 rows of the target were changed, deleted or added (the bisection down to those rows),
and the baseline, which streams both tables in key order and compares every row in Python
(what a hand-written check does). Each answer is checked, so a fast wrong answer fails.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from summit_etl.registry import parse_pipeline
from summit_etl.store import db
from summit_etl.verify import verify_pipeline

ADMIN_URL = os.environ.get("SUMMIT_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DATABASES = {"source": "summit_bench_verify_src", "target": "summit_bench_verify_dst",
             "summit": "summit_bench_verify_summit"}
TABLE = "CREATE TABLE public.items (id bigint PRIMARY KEY, name text, price numeric(12,2), at timestamptz, active boolean)"
FILL = """INSERT INTO public.items SELECT g, 'item ' || g, g / 4.0,
       '2025-01-01T00:00:00Z'::timestamptz + make_interval(secs => g), g %% 2 = 0
  FROM generate_series(1, %s) g"""


def drift_statements(rows: int) -> list[tuple[str, tuple[int, ...]]]:
    """3 changed, 4 deleted and 3 added rows, spread over the key range."""
    return [
        ("UPDATE public.items SET name = 'changed' WHERE id IN (%s, %s, %s)",
         (10, rows // 4, rows - 1)),
        ("DELETE FROM public.items WHERE id IN (%s, %s, %s, %s)",
         (5, rows // 2, rows * 3 // 4, rows * 9 // 10)),
        ("INSERT INTO public.items (id, name) VALUES (-1, 'a'), (-2, 'b'), (%s, 'c')",
         (rows * 2,)),
    ]


def url(name: str) -> str:
    return ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def prepare(rows: int) -> None:
    for name in DATABASES.values():
        db.ensure_database(url(name))
    db.migrate(url(DATABASES["summit"]))
    for side in ("source", "target"):
        with psycopg.connect(url(DATABASES[side]), autocommit=True) as conn:
            count = conn.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'items'").fetchone()
            if count and count[0] and conn.execute("SELECT count(*) FROM public.items").fetchone() == (rows,):
                continue
            conn.execute("DROP TABLE IF EXISTS public.items")
            conn.execute(TABLE)
            conn.execute(FILL, (rows,))
            conn.execute("VACUUM ANALYZE public.items")


def naive_compare() -> int:
    """Differences found by streaming both tables in key order and comparing in Python."""
    query = sql.SQL("SELECT * FROM public.items ORDER BY id")
    with psycopg.connect(url(DATABASES["source"])) as src, psycopg.connect(url(DATABASES["target"])) as dst:
        left = src.cursor(name="left")
        right = dst.cursor(name="right")
        left.execute(query)
        right.execute(query)
        a, b, differences = next(left, None), next(right, None), 0
        while a is not None or b is not None:
            if b is None or (a is not None and a[0] < b[0]):
                differences, a = differences + 1, next(left, None)
            elif a is None or b[0] < a[0]:
                differences, b = differences + 1, next(right, None)
            else:
                differences += a != b
                a, b = next(left, None), next(right, None)
    return differences


def best(repeats: int, work: Callable[[], Any]) -> tuple[float, Any]:
    timings, answer = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        answer = work()
        timings.append(time.perf_counter() - started)
    return min(timings), answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    prepare(args.rows)
    config = parse_pipeline({
        "id": "bench-verify", "name": "bench",
        "source": {"url": url(DATABASES["source"]), "table": "public.items"},
        "loading": {"strategy": "upsert", "targetTable": "public.items",
                    "targetUrl": url(DATABASES["target"]), "upsertKey": ["id"]},
    }, "bench")
    summit = url(DATABASES["summit"])
    equal_s, equal = best(args.repeats, lambda: verify_pipeline(config, summit))
    assert equal["status"] == "match" and equal["sourceRows"] == args.rows, equal
    naive_equal_s, found = best(1, naive_compare)
    assert found == 0, found
    target = url(DATABASES["target"])
    with psycopg.connect(target, autocommit=True) as conn:
        for statement, params in drift_statements(args.rows):
            conn.execute(statement, params)
    try:
        drift_s, drift = best(args.repeats, lambda: verify_pipeline(config, summit))
        assert (drift["missing"], drift["extra"], drift["different"]) == (4, 3, 3), drift
        naive_drift_s, found = best(1, naive_compare)
        assert found == 10, found
    finally:  # the next invocation starts from equal tables again
        with psycopg.connect(target, autocommit=True) as conn:
            conn.execute("DROP TABLE public.items")
    print(f"verify speed, {args.rows:,} rows per side (best of {args.repeats}; baseline once)\n")
    print(f"| {'case':<28} | {'summit verify':>13} | {'row-by-row in Python':>20} | {'speed-up':>8} |")
    print(f"|{'-' * 30}|{'-' * 14}:|{'-' * 21}:|{'-' * 9}:|")
    for case, ours, theirs in (("equal tables", equal_s, naive_equal_s),
                               ("10 rows differ", drift_s, naive_drift_s)):
        print(f"| {case:<28} | {ours:>11.2f} s | {theirs:>18.2f} s | {theirs / ours:>7.1f}x |")


if __name__ == "__main__":
    main()
