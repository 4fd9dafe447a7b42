"""Incremental loads: watermarks with lookback, `>=` and key de-duplication, resets."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest

from summit_etl.engine import RunRequest, run_pipeline
from summit_etl.registry import parse_pipeline
from summit_etl_tests.support import run_sql

T0 = "2025-01-01 00:00:00.000001+00"


@pytest.fixture
def source(source_url: str) -> str:
    run_sql(
        source_url,
        "CREATE TABLE public.events (id bigint PRIMARY KEY, body text, seq bigint, updated_at timestamptz NOT NULL)",
    )
    run_sql(
        source_url,
        """
        INSERT INTO public.events
        SELECT g, 'e' || g, g * 10, %s::timestamptz + make_interval(secs => g) FROM generate_series(1, 100) g;
        """,
        (T0,),
    )
    return source_url


def config(
    source: str, target: str, strategy: str = "upsert", lookback: float = 0, **extra: Any
) -> Any:
    return parse_pipeline(
        {
            "id": "events",
            "name": "Events",
            "source": {"url": source, "table": "public.events"},
            "extraction": {
                "strategy": "incremental",
                "incrementalColumn": extra.pop("column", "updated_at"),
            },
            "watermark": {"type": extra.pop("type", "timestamp"), "lookbackWindow": lookback},
            "loading": {
                "strategy": strategy,
                "targetTable": "dw.events",
                "targetUrl": target,
                "createTable": True,
                **({"upsertKey": ["id"]} if strategy != "append_only" else {}),
            },
        },
        "test",
    )


def run(cfg: Any, summit: str, **request: Any) -> Any:
    return run_pipeline(cfg, RunRequest(run_id=str(uuid.uuid4()), **request), summit)


def target(url: str) -> list[tuple]:
    return run_sql(url, "SELECT id, body FROM dw.events ORDER BY id")


def test_second_run_reads_only_new_and_changed_rows(
    source: str, target_url: str, summit_url: str
) -> None:
    cfg = config(source, target_url)
    assert run(cfg, summit_url).counts.records_extracted == 100
    run_sql(
        source,
        "UPDATE public.events SET body = 'changed', updated_at = updated_at + interval '1 hour' WHERE id = 5",
    )
    run_sql(
        source,
        "INSERT INTO public.events VALUES (101, 'new', 1010, %s::timestamptz + interval '2 hours')",
        (T0,),
    )
    outcome = run(cfg, summit_url)
    assert outcome.counts.records_extracted == 3  # the two changes and the boundary row (>=)
    rows = dict(target(target_url))
    assert len(rows) == 101 and rows[5] == "changed" and rows[101] == "new"


def test_watermark_history_keeps_full_precision_and_zone(
    source: str, target_url: str, summit_url: str
) -> None:
    cfg = config(source, target_url)
    run(cfg, summit_url)
    run(cfg, summit_url)
    history = run_sql(
        summit_url,
        "SELECT source_table, last_loaded_value, records_loaded, status FROM etl_watermarks ORDER BY id",
    )
    assert [h[0] for h in history] == ["public.events", "public.events"]
    assert history[0][1] == "2025-01-01T00:01:40.000001+00:00"
    assert history[0][2:] == (100, "success")
    assert history[1][1] == history[0][1]  # nothing new: the mark stays put


def test_rows_sharing_the_boundary_timestamp_are_not_lost_or_duplicated(
    source: str, target_url: str, summit_url: str
) -> None:
    cfg = config(source, target_url, strategy="append_only")
    run(cfg, summit_url)
    # Committed after the first run, with exactly the watermark's timestamp.
    run_sql(
        source,
        "INSERT INTO public.events SELECT 200, 'late twin', 0, updated_at FROM public.events WHERE id = 100",
    )
    outcome = run(cfg, summit_url)
    assert outcome.counts.records_extracted == 2  # >= re-reads the boundary row too
    rows = target(target_url)
    assert len(rows) == 101 and (200, "late twin") in rows
    assert run_sql(target_url, "SELECT count(*) FROM dw.events WHERE id = 100") == [(1,)]


def test_late_commits_inside_the_lookback_are_picked_up(
    source: str, target_url: str, summit_url: str
) -> None:
    cfg = config(source, target_url, lookback=300)
    run(cfg, summit_url)
    # Stamped 60 s before the watermark but committed after the run (a long transaction).
    run_sql(
        source,
        "INSERT INTO public.events VALUES (300, 'late', 0, %s::timestamptz + interval '40 seconds')",
        (T0,),
    )
    run(cfg, summit_url)
    assert (300, "late") in target(target_url)
    assert len(target(target_url)) == 101


def test_rerunning_the_same_increment_adds_nothing(
    source: str, target_url: str, summit_url: str
) -> None:
    cfg = config(source, target_url, strategy="append_only", lookback=3600)
    run(cfg, summit_url)
    for _ in range(2):
        outcome = run(cfg, summit_url)
        assert outcome.counts.records_extracted == 100  # the whole lookback is re-read ...
        assert outcome.load.inserted == 0  # ... and nothing is added twice
    assert run_sql(target_url, "SELECT count(*), count(DISTINCT id) FROM dw.events") == [(100, 100)]


def test_deleting_the_watermark_rows_makes_a_full_reload(
    source: str, target_url: str, summit_url: str
) -> None:
    cfg = config(source, target_url, strategy="bulk")
    run(cfg, summit_url)
    run_sql(source, "DELETE FROM public.events WHERE id <= 10")
    assert run(cfg, summit_url).counts.records_extracted == 1  # boundary row only
    # The runbook's "Reset Watermark", verbatim.
    run_sql(
        summit_url,
        "CREATE TABLE etl_watermarks_backup AS SELECT * FROM etl_watermarks WHERE source_table = 'public.events'",
    )
    run_sql(summit_url, "DELETE FROM etl_watermarks WHERE source_table = 'public.events'")
    outcome = run(cfg, summit_url)
    assert outcome.counts.records_extracted == 90
    assert [r[0] for r in target(target_url)] == list(range(11, 101))  # replaced, not appended


def test_full_reload_flag_reads_everything(source: str, target_url: str, summit_url: str) -> None:
    cfg = config(source, target_url)
    run(cfg, summit_url)
    outcome = run(cfg, summit_url, full_reload=True)
    assert outcome.counts.records_extracted == 100
    assert outcome.load.inserted == 0 and outcome.load.updated == 0


def test_numeric_watermark_with_lookback(source: str, target_url: str, summit_url: str) -> None:
    cfg = config(source, target_url, column="seq", type="numeric", lookback=25)
    run(cfg, summit_url)
    assert run_sql(summit_url, "SELECT last_loaded_value FROM etl_watermarks") == [("1000",)]
    run_sql(
        source, "INSERT INTO public.events VALUES (150, 'x', 990, now()), (151, 'y', 1020, now())"
    )
    outcome = run(cfg, summit_url)
    assert outcome.counts.records_extracted == 5  # 980, 990 (late), 990 (old), 1000, 1020
    assert len(target(target_url)) == 102


def test_each_pipeline_has_its_own_watermark(source: str, target_url: str, summit_url: str) -> None:
    first = config(source, target_url)
    second = first.model_copy(update={"id": "events-copy"})
    run(first, summit_url)
    assert run(second, summit_url).counts.records_extracted == 100


@pytest.mark.parametrize(("forget", "state"), [("TRUNCATE", "empty"), ("DROP TABLE", "missing")])
def test_a_target_without_rows_is_read_in_full_despite_a_watermark(
    source: str, target_url: str, summit_url: str, forget: str, state: str
) -> None:
    cfg = config(source, target_url)
    run(cfg, summit_url)
    run_sql(target_url, f"{forget} dw.events")
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[method-assign]
    logger = logging.getLogger("summit_etl.engine")
    logger.addHandler(handler)
    try:
        outcome = run(cfg, summit_url)
    finally:
        logger.removeHandler(handler)
    assert outcome.counts.records_extracted == 100
    assert len(target(target_url)) == 100
    assert any(
        r.getMessage() == f"target dw.events is {state} but a watermark exists: reading every row"
        for r in seen
    )
