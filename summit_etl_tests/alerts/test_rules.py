"""Each alert rule fires on a situation built in a real summit database, is kept (not
repeated) while it lasts, and resolves when it clears."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from summit_etl.alerts import evaluate
from summit_etl.alerts.settings import AlertSettings
from summit_etl.cdc.logical import slot_name
from summit_etl.config import PipelineConfig
from summit_etl.registry import parse_pipeline
from summit_etl.store import alerts as alert_store
from summit_etl.store.db import connect
from summit_etl_tests.cdc.conftest import logical_cluster, logical_database  # noqa: F401
from summit_etl_tests.support import run_sql

QUIET = AlertSettings(health_url="")  # every rule but the service health check


def open_alerts(summit_url: str) -> dict[str, str]:
    """dedup key → severity of every open alert."""
    with connect(summit_url) as conn:
        return {a.dedup_key: a.severity for a in alert_store.list_alerts(conn, status="open")}


def pipeline(pipeline_id: str, **overrides: Any) -> PipelineConfig:
    raw: dict[str, Any] = {
        "id": pipeline_id,
        "name": pipeline_id,
        "source": {"url": "postgresql://postgres@127.0.0.1:5432/postgres", "table": "public.t"},
        "loading": {"strategy": "bulk", "targetTable": "public.t_copy"},
        **overrides,
    }
    return parse_pipeline(raw, "test")


def add_run(summit_url: str, pipeline_id: str, status: str, **columns: Any) -> str:
    run_id = str(uuid.uuid4())
    names = ["id", "pipeline_id", "status", *columns]
    run_sql(
        summit_url,
        f"INSERT INTO pipeline_runs ({', '.join(names)}) VALUES ({', '.join(['%s'] * len(names))})",
        [run_id, pipeline_id, status, *columns.values()],
    )
    return run_id


def test_failure_rate_fires_over_ten_percent_and_resolves_below(summit_url: str) -> None:
    for status in ["failed", "success", "success", "success", "success"]:
        add_run(summit_url, "orders", status)
    evaluation = evaluate(summit_url, {}, QUIET)
    assert [a.rule for a in evaluation.opened] == ["failure_rate"]
    assert evaluation.opened[0].link == "http://127.0.0.1:3000/jobs/pipeline_orders"
    assert open_alerts(summit_url) == {"failure_rate:orders": "critical"}
    assert evaluate(summit_url, {}, QUIET).opened == []  # kept, not repeated
    for _ in range(5):
        add_run(summit_url, "orders", "success")  # 1 of 10 failed: not over 10 %
    assert [a.rule for a in evaluate(summit_url, {}, QUIET).resolved] == ["failure_rate"]
    assert open_alerts(summit_url) == {}


def test_cdc_lag_warns_after_30_minutes_and_pages_after_two_hours(summit_url: str) -> None:
    def lag(minutes: int) -> None:
        run_sql(
            summit_url,
            "INSERT INTO etl_cdc_watermarks (pipeline_id, source_table, last_processed_time) "
            "VALUES ('cdc', 'public.t', now() - make_interval(mins => %s)) "
            "ON CONFLICT (pipeline_id, source_table) DO UPDATE SET last_processed_time = EXCLUDED.last_processed_time",
            (minutes,),
        )

    lag(45)
    evaluate(summit_url, {}, QUIET)
    assert open_alerts(summit_url) == {"cdc_lag_warning:cdc": "warning"}
    lag(150)
    evaluate(summit_url, {}, QUIET)
    assert open_alerts(summit_url) == {"cdc_lag_warning:cdc": "warning", "cdc_lag_critical:cdc": "critical"}
    lag(0)
    evaluate(summit_url, {}, QUIET)
    assert open_alerts(summit_url) == {}


@pytest.fixture
def health_server() -> Iterator[Callable[[int, str], str]]:
    """A stand-in /health (the API's own answer shape) whose status the test sets."""
    answer = {"code": 200, "status": "healthy"}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = json.dumps({"status": answer["status"]}).encode()
            self.send_response(int(answer["code"]))
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def set_answer(code: int, status: str) -> str:
        answer.update(code=code, status=status)
        return f"http://127.0.0.1:{server.server_port}/health"

    yield set_answer
    server.shutdown()


def test_service_health_fires_when_unhealthy_or_silent(
    summit_url: str, health_server: Callable[[int, str], str]
) -> None:
    settings = replace(QUIET, health_url=health_server(503, "unhealthy"))
    evaluate(summit_url, {}, settings)
    assert open_alerts(summit_url) == {"service_health:service": "critical"}
    health_server(200, "degraded")
    evaluate(summit_url, {}, settings)
    assert open_alerts(summit_url) == {}
    evaluate(summit_url, {}, replace(QUIET, health_url="http://127.0.0.1:9/health"))
    assert open_alerts(summit_url) == {"service_health:service": "critical"}


def add_report(summit_url: str, pipeline_id: str, score: float, minutes_ago: int) -> None:
    run_sql(
        summit_url,
        'INSERT INTO data_quality_reports (pipeline_run_id, pipeline_id, "timestamp", overall_score, dimensions) '
        "VALUES (%s, %s, now() - make_interval(mins => %s), %s, '{}')",
        (str(uuid.uuid4()), pipeline_id, minutes_ago, score),
    )


def test_quality_below_70_and_drops_over_10_points_and_new_reports(summit_url: str) -> None:
    add_report(summit_url, "users", 92.0, 600)
    add_report(summit_url, "users", 65.0, 90)
    evaluate(summit_url, {}, QUIET)
    assert open_alerts(summit_url) == {"quality_low:users": "critical", "quality_drop:users": "warning"}
    add_report(summit_url, "users", 95.0, 0)
    evaluation = evaluate(summit_url, {}, QUIET)
    assert {a.rule for a in evaluation.resolved} == {"quality_low", "quality_drop"}
    assert [a.rule for a in evaluation.opened] == ["quality_report"]  # info: the new report
    assert set(open_alerts(summit_url).values()) == {"info"}


def test_sla_watermark_quarantine_and_pipeline_changes(summit_url: str) -> None:
    configs = {
        "slow": pipeline("slow", sla={"maxDurationSeconds": 10}),
        "inc": pipeline("inc", extraction={"strategy": "incremental", "incrementalColumn": "at"}),
    }
    slow_run = add_run(summit_url, "slow", "success")
    run_sql(summit_url, "UPDATE pipeline_runs SET start_time = now() - interval '1 minute', end_time = now() WHERE id = %s", (slow_run,))
    for _ in range(5):
        add_run(summit_url, "inc", "success", watermark_to="2025-01-01T00:00:00+00:00")
    run_sql(summit_url, "INSERT INTO etl_quarantine (run_id, pipeline_id, record, failed_rules, created_at) "
                        "VALUES ('r0', 'inc', '{}', '[]', now() - interval '30 hours'), "
                        "('r1', 'inc', '{}', '[]', now()), ('r1', 'inc', '{}', '[]', now())")
    run_sql(summit_url, "INSERT INTO pipelines (pipeline_id, name, config) VALUES ('inc', 'inc', '{}')")
    evaluate(summit_url, configs, QUIET)
    assert open_alerts(summit_url) == {
        f"sla_exceeded:{slow_run}": "warning",
        "watermark_stuck:inc": "warning",
        "quarantine_growing:inc": "warning",
        "pipeline_changed:inc@1": "info",
    }
    add_run(summit_url, "inc", "success", watermark_to="2025-01-02T00:00:00+00:00")
    run_sql(summit_url, "UPDATE etl_quarantine SET replayed_at = now() WHERE run_id = 'r1'")
    run_sql(summit_url, "UPDATE pipelines SET updated_at = now() - interval '2 hours'")
    run_sql(summit_url, "UPDATE pipeline_runs SET start_time = now() - interval '2 days' WHERE id = %s", (slow_run,))
    evaluate(summit_url, configs, QUIET)
    assert open_alerts(summit_url) == {}


def test_slot_retention_fires_over_the_limit_and_a_failing_rule_keeps_its_alert(
    summit_url: str, logical_database: Callable[[], str]  # noqa: F811
) -> None:
    source = logical_database()
    config = pipeline(
        "wal-heavy",
        source={"url": source, "table": "public.t"},
        extraction={"strategy": "cdc"},
        cdc={"strategy": "log_based", "primaryKeys": ["id"]},
        loading={"strategy": "upsert", "targetTable": "public.t_copy", "upsertKey": ["id"]},
    )
    run_sql(source, "CREATE TABLE public.t (id int PRIMARY KEY, v text)")
    run_sql(source, "SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot_name("wal-heavy"),))
    run_sql(source, "INSERT INTO public.t SELECT g, repeat('x', 200) FROM generate_series(1, 2000) g")
    settings = replace(QUIET, slot_retained_bytes=100_000)
    evaluate(summit_url, {"wal-heavy": config}, settings)
    assert open_alerts(summit_url) == {"slot_retention:wal-heavy": "critical"}
    unreachable = config.model_copy(update={"source": config.source.model_copy(
        update={"url": "postgresql://postgres@127.0.0.1:9/none"})})
    evaluation = evaluate(summit_url, {"wal-heavy": unreachable}, settings)
    assert "slot_retention" in evaluation.failed_rules and evaluation.resolved == []
    assert open_alerts(summit_url) == {"slot_retention:wal-heavy": "critical"}
    run_sql(source, "SELECT pg_drop_replication_slot(%s)", (slot_name("wal-heavy"),))
    evaluate(summit_url, {"wal-heavy": config}, settings)
    assert open_alerts(summit_url) == {}
