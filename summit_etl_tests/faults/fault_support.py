"""The fault suite's data: a source table, its changes between runs, the pipelines of each
loading strategy over it, and the key-by-key comparison of target with source."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from summit_etl_tests.cdc.cdc_support import LogicalCluster
from summit_etl_tests.support import run_sql

# A scratch database on one of the suite's throwaway clusters (the `cluster_database` fixture).
MakeDatabase = Callable[[LogicalCluster], str]

ROWS = 2000
WIDE_ROWS = 6  # change_source(infinity=True): more than the driver's first batch
# qty is negative for every 50th id (from 7 on): the rows a quarantine rule holds back.
SOURCE_DDL = """
CREATE TABLE public.items (
    id bigint PRIMARY KEY,
    name text NOT NULL,
    qty integer NOT NULL,
    updated_at timestamptz NOT NULL
);
"""
_INSERT = """
INSERT INTO public.items
SELECT g, 'item ' || g, CASE WHEN g %% 50 = 7 THEN -1 ELSE g %% 50 END,
       '2025-01-01T00:00:00Z'::timestamptz + make_interval(secs => g)
  FROM generate_series(%s::int, %s::int) g
"""
HASHED = "md5(row(id, name, qty, updated_at)::text)"


def create_source(url: str) -> None:
    run_sql(url, SOURCE_DDL)
    run_sql(url, _INSERT, (1, ROWS))


def change_source(url: str, *, deletes: bool, infinity: bool = False) -> None:
    """Between two runs: 300 updates (newer timestamps), 600 inserts, 100 deletes when the
    pipeline can see deletes (full reads and CDC). With `infinity`, then WIDE_ROWS inserts
    of 1 MiB each and one more update that moves a row to the end of the table with an
    `updated_at` of 'infinity': a read typed without a probe has handed over the driver's
    first batch (4 MiB, extract/postgres.py) when it meets that value, and starts over."""
    run_sql(
        url,
        "UPDATE public.items SET name = name || ' v2', "
        "updated_at = '2025-06-01T00:00:00Z'::timestamptz + make_interval(secs => id) "
        "WHERE id <= 300",
    )
    run_sql(url, _INSERT, (ROWS + 1, ROWS + 600))
    if deletes:
        run_sql(url, "DELETE FROM public.items WHERE id BETWEEN 1001 AND 1100")
    if infinity:
        run_sql(
            url,
            "INSERT INTO public.items SELECT g, repeat('wide ', 209716), 1, now() "
            "FROM generate_series(%s::int, %s::int) g",
            (ROWS + 601, ROWS + 600 + WIDE_ROWS),
        )
        run_sql(url, "UPDATE public.items SET updated_at = 'infinity' WHERE id = 1500")


@dataclass(frozen=True)
class Tally:
    """Target against source, key by key and row hash by row hash."""

    lost: int  # source keys missing from the target
    duplicated: int  # extra target rows of a key (current versions, for scd_type2)
    extra: int  # target keys the source does not have
    different: int  # keys on both sides whose rows differ


CLEAN = Tally(0, 0, 0, 0)


def tally(source_url: str, target_url: str, *, scd2: bool = False, rule: str = "true") -> Tally:
    """Compare dw.items with the source rows that pass `rule` (a fixed test predicate)."""
    source = dict(run_sql(source_url, f"SELECT id, {HASHED} FROM public.items WHERE {rule}"))
    current = " WHERE is_current" if scd2 else ""
    target_rows = run_sql(target_url, f"SELECT id, {HASHED} FROM dw.items{current}")
    per_key = Counter(key for key, _ in target_rows)
    target = dict(target_rows)
    return Tally(
        lost=len(source.keys() - target.keys()),
        duplicated=sum(n - 1 for n in per_key.values()),
        extra=len(target.keys() - source.keys()),
        different=sum(1 for key, digest in target.items() if key in source and source[key] != digest),
    )


def scd2_versions(target_url: str) -> Counter[int]:
    """How many keys have 1, 2, ... versions: history opened exactly once per change."""
    rows = run_sql(target_url, "SELECT count(*) FROM dw.items GROUP BY id")
    return Counter(int(n) for (n,) in rows)


def watermark(summit_url: str, pipeline_id: str) -> Any:
    rows = run_sql(
        summit_url,
        "SELECT last_loaded_value FROM etl_watermarks WHERE pipeline_id = %s "
        "ORDER BY id DESC LIMIT 1",
        (pipeline_id,),
    )
    return rows[0][0] if rows else None


def source_high_mark(source_url: str) -> Any:
    return run_sql(source_url, "SELECT max(updated_at) FROM public.items")[0][0]


QUARANTINE_RULE = {
    "id": "qty-not-negative",
    "dimension": "validity",
    "rule": {"type": "range", "config": {"field": "qty", "min": 0}},
    "action": "quarantine",
}


def pipeline(case: str, pipeline_id: str, source_url: str, target_url: str) -> dict[str, Any]:
    """The raw configuration of one fault case (`bulk`, `upsert`, `quarantine`, `scd2`,
    `trigger`, `log_based`; `compared_delta`, `compared_scd2`: full reads narrowed by
    `extraction.compareHashes`), with small batches so that a run spans several."""
    loading: dict[str, Any] = {
        "targetTable": "dw.items",
        "targetUrl": target_url,
        "createTable": True,
        "upsertKey": ["id"],
    }
    raw: dict[str, Any] = {
        "id": pipeline_id,
        "name": f"Fault case {case}",
        "source": {"url": source_url, "table": "public.items"},
        "extraction": {"strategy": "full", "batchSize": 500},
        "loading": loading,
    }
    if case == "bulk":
        loading["strategy"] = "bulk"
    elif case in ("upsert", "quarantine"):
        loading["strategy"] = "upsert"
        raw["extraction"] = {
            "strategy": "incremental", "incrementalColumn": "updated_at", "batchSize": 500
        }
        raw["watermark"] = {"type": "timestamp"}
        if case == "quarantine":
            raw["quality"] = {"rules": [QUARANTINE_RULE]}
    elif case in ("scd2", "compared_scd2"):
        loading["strategy"] = "scd_type2"
    elif case == "compared_delta":
        loading["strategy"] = "delta"
    else:
        loading["strategy"] = "upsert"
        raw["extraction"] = {"strategy": "cdc"}
        raw["cdc"] = {"strategy": case, "primaryKeys": ["id"], "batchSize": 200}
    if case.startswith("compared_"):
        raw["extraction"]["compareHashes"] = True
    return raw
