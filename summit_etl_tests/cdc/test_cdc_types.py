"""Every type through every CDC strategy with every loading strategy: the initial read
(snapshot or first poll), then captured inserts and updates, each value compared with the
source as PostgreSQL text (json strictly, as its exact text)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from summit_etl.engine import RunRequest, run_pipeline
from summit_etl.registry import parse_pipeline
from summit_etl_tests.cdc.cdc_support import STRATEGIES, cdc_block, raw_pipeline
from summit_etl_tests.support import run_sql
from summit_etl_tests.types.geo import (
    check,
    create_places,
    insert_places,
    places_pipeline,
    requires_postgis,
    run_once,
    with_postgis,
)
from summit_etl_tests.types.wide import (
    COLUMNS,
    as_text,
    create_wide,
    declared_types,
    differences,
    insert_rows,
    update_to_edges,
)

CDC_STRATEGIES = STRATEGIES
# Every CDC strategy applies with every loading strategy; append loads keep each version.
LOAD_STRATEGIES = ["bulk", "append_only", "upsert", "scd_type1", "scd_type2", "delta"]
APPENDS = {"bulk", "append_only"}


def _current(loading: str, table: str) -> str:
    """The target rows that must equal the source: current versions only."""
    if loading == "scd_type2":
        return "is_current"
    if loading in APPENDS:
        return f"(id, version) IN (SELECT id, max(version) FROM {table} GROUP BY id)"
    return "true"


@pytest.mark.parametrize("strategy", CDC_STRATEGIES)
def test_every_type_round_trips_through_cdc_with_every_loading_strategy(
    strategy: str,
    cdc_source: str,
    target_url: str,
    summit_url: str,
) -> None:
    """One source table (and capture) and one target table per loading strategy."""
    source = cdc_source
    create_wide(source, tables=tuple(f"wide_{loading}" for loading in LOAD_STRATEGIES))
    source_types = declared_types(source, "public.wide_upsert")
    configs = {}
    for loading in LOAD_STRATEGIES:
        raw = raw_pipeline(
            strategy,
            source,
            target_url,
            pipeline_id=f"wide-{strategy}-{loading}".replace("_", "-"),
            loading={"strategy": loading},
        )
        raw["source"]["table"] = f"public.wide_{loading}"
        raw["loading"]["targetTable"] = f"dw.wide_{loading}"
        configs[loading] = parse_pipeline(raw, "test")

    def run_all_and_compare() -> None:
        for loading, config in configs.items():
            outcome = run_pipeline(config, RunRequest(run_id=str(uuid.uuid4())), summit_url)
            assert outcome.status == "success", loading
            target = f"dw.wide_{loading}"
            got = as_text(target_url, target, _current(loading, target))
            assert differences(as_text(source, f"public.wide_{loading}"), got) == [], loading

    run_all_and_compare()  # the snapshot, or the first poll
    for loading in LOAD_STRATEGIES:
        created = declared_types(target_url, f"dw.wide_{loading}")
        assert {c: created[c] for c in COLUMNS} == {c: source_types[c] for c in COLUMNS}, loading
        update_to_edges(source, 2, f"public.wide_{loading}")  # every column, one update
        insert_rows(source, 4, f"public.wide_{loading}")
    run_all_and_compare()
    for loading in APPENDS:  # three rows, then one updated and three new: every version kept
        assert run_sql(target_url, f"SELECT count(*) FROM dw.wide_{loading}") == [(7,)]


@requires_postgis
def test_postgis_round_trips_through_every_cdc_strategy(
    logical_database: Callable[[], str], target_url: str, summit_url: str
) -> None:
    """One source table per CDC strategy, all in one database (PostGIS created once)."""
    source = logical_database()
    create_places(source, tables=tuple(f"places_{s}" for s in CDC_STRATEGIES))
    with_postgis(target_url)
    pipelines = {}
    for strategy in CDC_STRATEGIES:
        cdc: dict[str, Any] = {**cdc_block(strategy), "primaryKeys": ["id"], "batchSize": 100}
        pipelines[strategy] = places_pipeline(
            source,
            target_url,
            f"dw.places_{strategy}",
            f"places_{strategy}",
            extraction={"strategy": "cdc"},
            cdc=cdc,
        )
    for strategy, raw in pipelines.items():
        run_once(raw, summit_url)  # the snapshot, or the first poll
        check(source, target_url, f"dw.places_{strategy}", f"places_{strategy}")
        insert_places(source, 10, f"places_{strategy}")
        run_sql(
            source,
            f"UPDATE public.places_{strategy} "
            "SET p = 'SRID=4326;POINT(-0.000000000001 45.123456789012)', "
            "ga = 'SRID=4326;MULTIPOINT(1.5 2.5, 3.000000000001 4)', "
            f"version = nextval('public.places_{strategy}_version_seq'), "
            "updated_at = clock_timestamp() WHERE id = 2",
        )
    for strategy, raw in pipelines.items():
        run_once(raw, summit_url)
        check(source, target_url, f"dw.places_{strategy}", f"places_{strategy}")
