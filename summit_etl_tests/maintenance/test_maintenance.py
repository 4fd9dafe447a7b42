"""Maintenance tasks on real databases: they prune and archive exactly the rows they should,
vacuum one statement at a time, report the quality trend, and run as Dagster jobs."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance, DefaultScheduleStatus

from summit_etl import cli
from summit_etl.engine import RunRequest, run_pipeline
from summit_etl.maintenance import run_task
from summit_etl.orchestration.factory import build_definitions
from summit_etl.orchestration.maintenance import maintenance_job_name
from summit_etl.registry import load_registry, parse_pipeline
from summit_etl_tests.support import run_sql


def test_prune_runs_deletes_only_runs_older_than_the_retention(summit_url: str) -> None:
    for days in (40, 31, 29, 0):
        run_sql(summit_url, "INSERT INTO pipeline_runs (id, pipeline_id, status, created_at) "
                            "VALUES (%s, 'p', 'success', now() - make_interval(days => %s))",
                (f"run-{days}", days))
    result = run_task("prune_runs", summit_url, {})
    assert result.details == {"deleted": 2}
    assert run_sql(summit_url, "SELECT id FROM pipeline_runs ORDER BY id") == [("run-0",), ("run-29",)]


def test_archive_changes_moves_old_change_log_rows_in_one_transaction(
    summit_url: str, source_url: str, target_url: str
) -> None:
    run_sql(source_url, "CREATE TABLE public.users (id int PRIMARY KEY, email text, updated_at timestamptz DEFAULT now())")
    run_sql(source_url, "INSERT INTO public.users (id, email) SELECT g, 'u' || g FROM generate_series(1, 6) g")
    config = parse_pipeline({
        "id": "users-cdc", "name": "Users CDC",
        "source": {"url": source_url, "table": "public.users"},
        "extraction": {"strategy": "cdc"},
        "cdc": {"strategy": "timestamp", "trackingColumn": "updated_at", "primaryKeys": ["id"]},
        "loading": {"strategy": "upsert", "targetTable": "public.users", "targetUrl": target_url,
                    "upsertKey": ["id"], "createTable": True},
    }, "test")
    run_pipeline(config, RunRequest(str(uuid.uuid4())), summit_url)  # one pass, no idle window
    assert run_sql(target_url, "SELECT count(*) FROM public.users_changes") == [(6,)]
    run_sql(target_url, "UPDATE public.users_changes SET changed_at = now() - interval '100 days' "
                        "WHERE (primary_key->>'id')::int <= 2")
    pipelines = {"users-cdc": config}
    assert run_task("archive_changes", summit_url, pipelines).details == {"archived": {"public.users_changes": 2}}
    assert run_sql(target_url, "SELECT count(*) FROM public.users_changes") == [(4,)]
    archived = run_sql(target_url, "SELECT (primary_key->>'id')::int FROM public.users_changes_archive ORDER BY 1")
    assert archived == [(1,), (2,)]
    assert run_task("archive_changes", summit_url, pipelines).details == {"archived": {"public.users_changes": 0}}


def test_vacuum_runs_each_statement_on_its_own(summit_url: str) -> None:
    run_task("vacuum_watermarks", summit_url, {})
    vacuumed = run_sql(summit_url, "SELECT relname FROM pg_stat_user_tables WHERE last_vacuum IS NOT NULL "
                                   "AND last_analyze IS NOT NULL ORDER BY relname")
    assert [r[0] for r in vacuumed] == ["etl_cdc_watermarks", "etl_watermarks"]


def test_quality_trend_averages_the_last_seven_days(summit_url: str) -> None:
    for days, score in ((0, 80.0), (0, 90.0), (2, 70.0), (9, 10.0)):
        run_sql(summit_url, 'INSERT INTO data_quality_reports (pipeline_run_id, pipeline_id, "timestamp", overall_score, dimensions) '
                            "VALUES (%s, 'p', now() - make_interval(days => %s), %s, '{}')",
                (str(uuid.uuid4()), days, score))
    trend = run_task("quality_trend", summit_url, {}).details["trend"]
    assert [t["averageScore"] for t in trend] == [70.0, 85.0]


def test_maintenance_jobs_are_scheduled_and_run_in_dagster(tmp_path: Path, summit_url: str) -> None:
    defs = build_definitions(load_registry(tmp_path, summit_url), summit_url)
    schedule = defs.resolve_schedule_def(maintenance_job_name("prune_runs") + "_schedule")
    assert schedule.default_status is DefaultScheduleStatus.RUNNING and schedule.cron_schedule == "0 3 * * *"
    run_sql(summit_url, "INSERT INTO pipeline_runs (id, pipeline_id, status, created_at) "
                        "VALUES ('old', 'p', 'success', now() - interval '60 days')")
    with DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def(maintenance_job_name("prune_runs")).execute_in_process(instance=instance)
    assert result.success
    assert run_sql(summit_url, "SELECT count(*) FROM pipeline_runs") == [(0,)]


def test_the_cli_runs_a_task_and_names_the_known_ones(
    summit_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", summit_url)
    monkeypatch.setenv("SUMMIT_PIPELINES_DIR", str(tmp_path))
    assert cli.main(["maintenance", "run", "prune_runs", "--json"]) == 0
    answer: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert answer["name"] == "prune_runs" and answer["details"] == {"deleted": 0}
    assert cli.main(["maintenance", "run", "nope"]) == 2
    assert "prune_runs" in capsys.readouterr().err
