"""What quality rules cost: the engine benchmark's full load with ten mixed rules against
the same load with none, in one process, alternating runs.

    .venv/bin/python bench/quality_overhead.py [--rows 1000000] [--repeats 2]

It reuses `load_throughput.py`'s source table and target (same databases, same data).
Great Expectations is imported before the clock starts: its import (about 5 s) is paid
once per process, not per run.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from typing import Any

from load_throughput import (
    BATCH_ROWS,
    SOURCE_DB,
    SUMMIT_DB,
    TARGET_DB,
    TARGET_SCHEMA,
    TARGET_TABLE,
    ensure_source,
    prepare_databases,
    reset_target,
    table_rows,
    url_form,
    wait_for_quiet,
)

OVERHEAD_TARGET = 0.30

RULES: list[dict[str, Any]] = [
    {"id": "name-present", "dimension": "completeness", "rule": {"type": "not_null", "config": {"field": "name"}}},
    {"id": "code-present", "dimension": "completeness", "threshold": 90,
     "rule": {"type": "not_null", "config": {"field": "code"}}},
    {"id": "code-format", "dimension": "validity",
     "rule": {"type": "format", "config": {"field": "code", "format": "regex", "pattern": "^C[0-9]{8}$"}}},
    {"id": "quantity-range", "dimension": "accuracy",
     "rule": {"type": "range", "config": {"field": "quantity", "min": 0, "max": 999}}},
    {"id": "id-unique", "dimension": "uniqueness", "rule": {"type": "unique", "config": {"field": "id"}}},
    {"id": "active-values", "dimension": "consistency",
     "rule": {"type": "accepted_values", "config": {"field": "active", "values": [True, False]}}},
    {"id": "quantity-type", "dimension": "validity", "rule": {"type": "type", "config": {"field": "quantity", "type": "int"}}},
    {"id": "rows", "dimension": "completeness", "rule": {"type": "row_count", "config": {"min": 1}}},
    {"id": "fresh", "dimension": "timeliness",
     "rule": {"type": "freshness", "config": {"field": "created_at", "maxAgeSeconds": 10 ** 9}}},
    {"id": "no-negative-amounts", "dimension": "accuracy",
     "rule": {"type": "custom_sql", "config": {"query": "SELECT * FROM {batch} WHERE amount < 0"}}},
]


def load(table: str, rules: list[dict[str, Any]]) -> tuple[float, dict[str, float], float | None]:
    """One full bulk load; (seconds, stage metrics, quality score)."""
    from summit_etl.engine import RunRequest, run_pipeline
    from summit_etl.registry import parse_pipeline

    config = parse_pipeline(
        {
            "id": "bench-quality-overhead",
            "name": "Quality overhead benchmark",
            "source": {"url": url_form(SOURCE_DB), "table": f"public.{table}"},
            "extraction": {"strategy": "full", "batchSize": BATCH_ROWS},
            "quality": {"rules": rules},
            "loading": {"strategy": "bulk", "targetTable": f"{TARGET_SCHEMA}.{TARGET_TABLE}",
                        "targetUrl": url_form(TARGET_DB)},
        },
        "bench/quality_overhead.py",
    )
    reset_target()
    wait_for_quiet()
    started = time.perf_counter()
    outcome = run_pipeline(config, RunRequest(run_id=f"bench-{uuid.uuid4().hex[:12]}"), url_form(SUMMIT_DB))
    seconds = time.perf_counter() - started
    score = outcome.quality_report["overallScore"] if outcome.quality_report else None
    return seconds, outcome.metrics, score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    prepare_databases()
    table = ensure_source(args.rows)
    import great_expectations  # noqa: F401 - warm the import before any clock starts

    timings: dict[str, list[float]] = {"no rules": [], "10 rules": []}
    validation_ms: list[float] = []
    score = None
    for _ in range(args.repeats):
        for label, rules in (("no rules", []), ("10 rules", RULES)):
            seconds, metrics, run_score = load(table, rules)
            loaded = table_rows(url_form(TARGET_DB), TARGET_SCHEMA, TARGET_TABLE)
            if loaded != args.rows:
                raise SystemExit(f"{label}: target holds {loaded} rows, expected {args.rows}")
            timings[label].append(seconds)
            if rules:
                validation_ms.append(metrics["validationDurationMs"])
                score = run_score
    base, checked = statistics.median(timings["no rules"]), statistics.median(timings["10 rules"])
    overhead = checked / base - 1
    print(f"\n{args.rows:,} rows, median of {args.repeats} alternating runs each\n")
    print("| load | seconds (median) | rows/s | runs |")
    print("|---|---|---|---|")
    for label, values in timings.items():
        median = statistics.median(values)
        print(f"| {label} | {median:.2f} | {args.rows / median:,.0f} | {', '.join(f'{v:.2f}' for v in values)} |")
    verdict = "met" if overhead <= OVERHEAD_TARGET else "missed"
    print(f"\nquality overhead: {overhead:+.1%} (target ≤ {OVERHEAD_TARGET:.0%}: {verdict}); "
          f"validation stage {statistics.median(validation_ms) / 1000:.2f} s; overall score {score}")


if __name__ == "__main__":
    main()
