"""Every type through every batch loading strategy (full and incremental reads): the
target created from the source keeps each column's declared type, and every value reads
back as the same PostgreSQL text."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from summit_etl.engine import RunRequest, StageFailure, run_pipeline
from summit_etl.registry import parse_pipeline
from summit_etl_tests.support import run_sql
from summit_etl_tests.types.wide import (
    COLUMNS,
    as_text,
    create_wide,
    declared_types,
    differences,
    insert_rows,
)

LOAD_STRATEGIES = ["bulk", "append_only", "upsert", "scd_type1", "scd_type2", "delta"]


def _config(source_url: str, target_url: str, strategy: str, **extra: Any) -> Any:
    raw: dict[str, Any] = {
        "id": f"wide-{strategy.replace('_', '-')}",
        "name": "Wide",
        "source": {"url": source_url, "table": "public.wide"},
        "loading": {
            "strategy": strategy,
            "targetTable": f"dw.wide_{strategy}",
            "targetUrl": target_url,
            "createTable": True,
            "upsertKey": ["id"],
        },
        **extra,
    }
    return parse_pipeline(raw, "test")


def _run(config: Any, summit_url: str) -> Any:
    return run_pipeline(config, RunRequest(run_id=str(uuid.uuid4())), summit_url)


@pytest.fixture
def wide_source(source_url: str) -> str:
    create_wide(source_url)
    return source_url


def test_every_type_round_trips_through_every_loading_strategy(
    wide_source: str, target_url: str, summit_url: str
) -> None:
    expected = as_text(wide_source, "public.wide")
    source_types = declared_types(wide_source, "public.wide")
    for strategy in LOAD_STRATEGIES:
        config = _config(wide_source, target_url, strategy)
        # Merges run twice: the second run compares every type with what the target holds.
        for _ in range(1 if strategy in ("bulk", "append_only") else 2):
            assert _run(config, summit_url).status == "success", strategy
        table = f"dw.wide_{strategy}"
        where = "is_current" if strategy == "scd_type2" else "true"
        assert differences(expected, as_text(target_url, table, where)) == [], strategy
        created = declared_types(target_url, table)
        assert {c: created[c] for c in COLUMNS} == {c: source_types[c] for c in COLUMNS}
    assert run_sql(target_url, "SELECT count(*) FROM dw.wide_scd_type2") == [(3,)]

    # Where configured, enum columns land as text instead of as the enum type.
    raw = _config(wide_source, target_url, "bulk").model_dump(by_alias=True, exclude_none=True)
    raw["loading"].update(enumsAsText=True, targetTable="dw.wide_enums")
    assert _run(parse_pipeline(raw, "test"), summit_url).status == "success"
    created = declared_types(target_url, "dw.wide_enums")
    assert (created["en"], created["ena"], created["comp"]) == ("text", "text[]", "pair")
    assert differences(expected, as_text(target_url, "dw.wide_enums")) == []


def test_incremental_reads_keep_every_type(wide_source: str, target_url: str, summit_url: str) -> None:
    config = _config(
        wide_source,
        target_url,
        "upsert",
        extraction={"strategy": "incremental", "incrementalColumn": "id"},
        watermark={"type": "numeric"},
    )
    assert _run(config, summit_url).status == "success"
    insert_rows(wide_source, 4)
    outcome = _run(config, summit_url)
    assert outcome.status == "success"
    assert outcome.counts.records_extracted == 4  # ids 3..6: the boundary row is re-read
    assert differences(as_text(wide_source, "public.wide"), as_text(target_url, "dw.wide_upsert")) == []


def test_typed_read_of_an_infinite_timestamp_names_the_column(
    wide_source: str, target_url: str, summit_url: str
) -> None:
    """With a transformation, dates and timestamps are read typed; ±infinity then fails
    the run naming the column rather than landing as something else."""
    run_sql(wide_source, "CREATE TABLE public.events (id int PRIMARY KEY, at timestamptz)")
    run_sql(wide_source, "INSERT INTO public.events VALUES (1, now()), (2, 'infinity')")
    raw = {
        "id": "events",
        "name": "Events",
        "source": {"url": wide_source, "table": "public.events"},
        "transformation": {"transformations": [{"type": "filter", "expression": "id > 0"}]},
        "loading": {"strategy": "bulk", "targetTable": "dw.events", "targetUrl": target_url, "createTable": True},
    }
    with pytest.raises(StageFailure) as failure:
        _run(parse_pipeline(raw, "test"), summit_url)
    assert "column 'at' (source type timestamptz)" in str(failure.value)
    assert run_sql(target_url, "SELECT to_regclass('dw.events')") == [(None,)]  # nothing loaded

