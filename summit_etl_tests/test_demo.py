"""The shipped example pipelines run for real against the demo source."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import DagsterInstance

from summit_etl.demo import add_demo_activity, prepare_demo_source
from summit_etl.orchestration.factory import build_definitions
from summit_etl.orchestration.keys import job_name
from summit_etl.registry import load_registry
from summit_etl_tests.support import run_sql

PIPELINES = Path(__file__).parents[1] / "pipelines"


def test_every_example_pipeline_runs_against_the_demo_source(
    source_url: str, summit_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert prepare_demo_source(source_url, customers=300, orders=1000) is True
    assert prepare_demo_source(source_url, customers=300, orders=1000) is False  # filled once
    monkeypatch.setenv("DEMO_SOURCE_URL", source_url)
    registry = load_registry(PIPELINES, summit_url)
    assert registry.errors == []
    defs = build_definitions(registry, summit_url)
    with DagsterInstance.ephemeral() as instance:
        for pipeline_id in sorted(registry.pipelines):
            result = defs.resolve_job_def(job_name(pipeline_id)).execute_in_process(instance=instance)
            assert result.success, pipeline_id
        statuses = run_sql(summit_url, "SELECT pipeline_id, status FROM pipeline_runs ORDER BY pipeline_id")
        assert statuses == [
            ("customers-full", "success"),
            ("customers-history", "success"),
            ("orders-incremental", "success"),
        ]
        assert run_sql(summit_url, "SELECT count(*) FROM analytics.customers WHERE email <> lower(trim(email))") == [(0,)]
        assert run_sql(summit_url, "SELECT count(*) FROM analytics.orders WHERE status = 'test'") == [(0,)]
        loaded = run_sql(summit_url, "SELECT count(*) FROM analytics.orders")[0][0]
        assert loaded == run_sql(source_url, "SELECT count(*) FROM shop.orders WHERE status <> 'test'")[0][0]

        add_demo_activity(source_url, new_orders=20)
        result = defs.resolve_job_def(job_name("orders-incremental")).execute_in_process(instance=instance)
        assert result.success

        # The history compares row hashes: one changed customer is the one row it reads.
        run_sql(source_url, "UPDATE shop.customers SET country = 'XX' WHERE id = 7")
        result = defs.resolve_job_def(job_name("customers-history")).execute_in_process(instance=instance)
        assert result.success
        history = run_sql(
            summit_url,
            "SELECT records_extracted FROM pipeline_runs WHERE pipeline_id = 'customers-history'"
            " ORDER BY created_at",
        )
        assert history == [(300,), (1,)]
        versions = run_sql(
            summit_url,
            "SELECT country, is_current FROM analytics.customers_history WHERE id = 7"
            " ORDER BY is_current",
        )
        assert versions[1] == ("XX", True) and versions[0][1] is False and len(versions) == 2
    assert run_sql(summit_url, "SELECT count(*) FROM analytics.orders")[0][0] == loaded + 20
    shipped_source = run_sql(source_url, "SELECT count(*) FROM shop.orders WHERE status = 'shipped'")
    assert run_sql(summit_url, "SELECT count(*) FROM analytics.orders WHERE status = 'shipped'") == shipped_source
