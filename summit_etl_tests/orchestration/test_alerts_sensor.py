"""The summit_alerts sensor on a real Dagster instance: it runs from the start and evaluates
the rules each tick, saying what it did."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import DagsterInstance, DefaultSensorStatus, SkipReason, build_sensor_context

from summit_etl.orchestration.factory import build_definitions
from summit_etl.registry import load_registry
from summit_etl_tests.support import run_sql


def test_the_alerts_sensor_opens_and_resolves_alerts(
    tmp_path: Path, summit_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ETL_ALERT_HEALTH_URL", "")
    sensor = build_definitions(load_registry(tmp_path, summit_url), summit_url).resolve_sensor_def(
        "summit_alerts"
    )
    assert sensor.default_status is DefaultSensorStatus.RUNNING
    run_sql(summit_url, "INSERT INTO pipeline_runs (id, pipeline_id, status) VALUES ('r1', 'p', 'failed')")
    with DagsterInstance.ephemeral() as instance:
        result = sensor(build_sensor_context(instance=instance))
        assert isinstance(result, SkipReason) and result.skip_message.startswith("1 opened")
        run_sql(summit_url, "DELETE FROM pipeline_runs")
        assert sensor(build_sensor_context(instance=instance)).skip_message.startswith("0 opened; 1 resolved")
    assert run_sql(summit_url, "SELECT rule, status FROM etl_alerts") == [("failure_rate", "resolved")]
