"""The code location on a real Dagster instance: assets, jobs, schedules and run sensors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from dagster import (
    AssetKey,
    DagsterInstance,
    RunRequest,
    SkipReason,
    build_run_status_sensor_context,
    build_schedule_context,
)

from summit_etl.orchestration.factory import build_definitions
from summit_etl.orchestration.keys import PIPELINE_TAG, job_name, schedule_name
from summit_etl.orchestration.sensors import record_run_failure
from summit_etl.registry import load_registry, sync_files_to_table
from summit_etl_tests.support import run_sql


@pytest.fixture
def pipelines_dir(tmp_path: Path, source_url: str, target_url: str) -> Path:
    run_sql(
        source_url,
        "CREATE TABLE public.users (id bigint PRIMARY KEY, email text, updated_at timestamptz);"
        "INSERT INTO public.users SELECT g, 'u' || g || '@x.org', now() FROM generate_series(1, 50) g",
    )
    pipeline = {
        "id": "users-sync",
        "name": "Users",
        "source": {"url": source_url, "table": "public.users"},
        "loading": {
            "strategy": "upsert",
            "targetTable": "dw.users",
            "targetUrl": target_url,
            "upsertKey": ["id"],
            "createTable": True,
        },
        "schedule": {"cron": "*/5 * * * *"},
    }
    (tmp_path / "users-sync.yaml").write_text(yaml.safe_dump(pipeline))
    broken = {**pipeline, "id": "broken", "loading": {"strategy": "nope", "targetTable": "x"}}
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(broken))
    return tmp_path


@pytest.fixture
def defs(pipelines_dir: Path, summit_url: str):  # noqa: ANN201
    registry = load_registry(pipelines_dir, summit_url)
    sync_files_to_table(registry, summit_url)
    return build_definitions(registry, summit_url)


def test_every_pipeline_becomes_asset_job_and_schedule(defs) -> None:  # noqa: ANN001
    repo = defs.get_repository_def()
    assert repo.has_job(job_name("users-sync"))
    assert repo.has_schedule_def(schedule_name("users-sync"))
    graph = repo.asset_graph
    assert AssetKey(["dw", "users"]) in graph.get_all_asset_keys()
    parents = graph.get(AssetKey(["dw", "users"])).parent_keys
    assert any(key.path[0] == "source" and key.path[-1] == "users" for key in parents)
    assert len(defs.metadata["config_errors"].value) == 1
    assert "loading.strategy" in defs.metadata["config_errors"].value[0]


def test_config_errors_are_reported_by_a_sensor(defs) -> None:  # noqa: ANN001
    from dagster import build_sensor_context

    sensor = defs.resolve_sensor_def("summit_config_errors")
    with DagsterInstance.ephemeral() as instance:
        result = sensor(build_sensor_context(instance=instance))
    assert isinstance(result, SkipReason)
    assert "broken.yaml" in result.skip_message and "loading.strategy" in result.skip_message


def test_materializing_runs_the_pipeline_and_records_it(
    defs, summit_url: str, target_url: str
) -> None:  # noqa: ANN001
    with DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def(job_name("users-sync")).execute_in_process(instance=instance)
        assert result.success
        run = instance.get_run_by_id(result.run_id)
        assert run.tags[PIPELINE_TAG] == "users-sync"
        materialization = result.asset_materializations_for_node(
            result.dagster_run.job_name.replace("pipeline_", "dw__") if False else "dw__users"
        )[0]
    assert materialization.metadata["records_loaded"].value == 50
    assert run_sql(target_url, "SELECT count(*) FROM dw.users") == [(50,)]
    assert run_sql(
        summit_url,
        "SELECT status, records_loaded, trigger FROM pipeline_runs WHERE id = %s",
        (result.run_id,),
    ) == [("success", 50, "manual")]


def test_full_reload_config_and_backfill_tag(defs, summit_url: str) -> None:  # noqa: ANN001
    job = defs.resolve_job_def(job_name("users-sync"))
    with DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(
            instance=instance,
            run_config={"ops": {"dw__users": {"config": {"full_reload": True}}}},
        )
        backfill = job.execute_in_process(instance=instance, tags={"dagster/backfill": "abc"})
    rows = dict(run_sql(summit_url, "SELECT id, full_reload FROM pipeline_runs"))
    assert rows[result.run_id] is True and rows[backfill.run_id] is True
    assert run_sql(
        summit_url, "SELECT trigger FROM pipeline_runs WHERE id = %s", (backfill.run_id,)
    ) == [("backfill",)]


def test_schedule_skips_with_a_reason_while_paused(defs, summit_url: str) -> None:  # noqa: ANN001
    schedule = defs.resolve_schedule_def(schedule_name("users-sync"))
    with DagsterInstance.ephemeral() as instance:
        running = schedule.evaluate_tick(build_schedule_context(instance=instance))
        assert isinstance(running.run_requests[0], RunRequest)
        # The runbook's "Pause a Pipeline", verbatim.
        run_sql(summit_url, "UPDATE pipelines SET enabled = false WHERE pipeline_id = 'users-sync'")
        paused = schedule.evaluate_tick(build_schedule_context(instance=instance))
        assert not paused.run_requests
        assert "users-sync is paused" in paused.skip_message
        run_sql(summit_url, "UPDATE pipelines SET enabled = true WHERE pipeline_id = 'users-sync'")
        resumed = schedule.evaluate_tick(build_schedule_context(instance=instance))
        assert len(resumed.run_requests) == 1


def test_failed_runs_end_up_failed_in_pipeline_runs(defs, summit_url: str, target_url: str) -> None:  # noqa: ANN001
    run_sql(
        target_url,
        "CREATE SCHEMA dw; CREATE TABLE dw.users (id bigint PRIMARY KEY, email varchar(3))",
    )
    with DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def(job_name("users-sync")).execute_in_process(
            instance=instance, raise_on_error=False
        )
        assert not result.success
        status, errors = run_sql(
            summit_url, "SELECT status, errors FROM pipeline_runs WHERE id = %s", (result.run_id,)
        )[0]
        assert status == "failed" and errors[0]["stage"] == "loading"
        assert "value too long for type character varying(3)" in errors[0]["message"]

        # A run whose worker died before recording its end: the failure sensor closes it.
        run_sql(
            summit_url,
            "UPDATE pipeline_runs SET status = 'running', errors = '[]' WHERE id = %s",
            (result.run_id,),
        )
        failure_event = next(
            e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE"
        )
        context = build_run_status_sensor_context(
            sensor_name="summit_record_failed_runs",
            dagster_instance=instance,
            dagster_run=instance.get_run_by_id(result.run_id),
            dagster_event=failure_event,
        ).for_run_failure()
        assert record_run_failure(context, summit_url) is True
        assert record_run_failure(context, summit_url) is False  # already closed: left alone
    status, errors = run_sql(
        summit_url, "SELECT status, errors FROM pipeline_runs WHERE id = %s", (result.run_id,)
    )[0]
    # The same entry the API's refresh writes: the step named, the engine's own words.
    assert status == "failed" and errors[0]["details"] == {
        "source": "dagster", "event": "ExecutionStepFailureEvent", "stepKey": "dw__users",
    }
    assert errors[0]["stage"] == "loading"
    assert "value too long for type character varying(3)" in errors[0]["message"]


def test_dagster_yaml_keeps_runs_in_their_own_postgres_database(
    defs,
    make_database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,  # noqa: ANN001
) -> None:
    from summit_etl.settings import PROJECT_ROOT

    dagster_url = make_database("dagster")
    monkeypatch.setenv("DAGSTER_PG_URL", dagster_url.replace("postgresql://", "postgresql+psycopg2://"))
    monkeypatch.setenv("SUMMIT_DAGSTER_STATE", str(tmp_path))
    with DagsterInstance.from_config(str(PROJECT_ROOT)) as instance:
        result = defs.resolve_job_def(job_name("users-sync")).execute_in_process(instance=instance)
        assert instance.get_run_by_id(result.run_id) is not None
    assert run_sql(dagster_url, "SELECT run_id FROM runs") == [(result.run_id,)]


def test_quality_rules_are_asset_checks_with_fail_rules_blocking(
    source_url: str, target_url: str, summit_url: str, tmp_path: Path
) -> None:
    run_sql(
        source_url,
        "CREATE TABLE public.users (id bigint PRIMARY KEY, email text);"
        "INSERT INTO public.users VALUES (1, 'a@x.org'), (2, NULL), (3, 'c@x.org')",
    )
    pipeline = {
        "id": "checked", "name": "Checked",
        "source": {"url": source_url, "table": "public.users"},
        "quality": {"rules": [
            {"id": "email-present", "dimension": "completeness", "severity": "high", "threshold": 60,
             "rule": {"type": "not_null", "config": {"field": "email"}}},
            {"id": "email.format", "dimension": "validity", "action": "fail",
             "rule": {"type": "format", "config": {"field": "email", "format": "email"}}},
        ]},
        "loading": {"strategy": "bulk", "targetTable": "dw.checked", "targetUrl": target_url, "createTable": True},
    }
    (tmp_path / "checked.yaml").write_text(yaml.safe_dump(pipeline))
    defs = build_definitions(load_registry(tmp_path, summit_url), summit_url)
    asset = defs.resolve_assets_def(AssetKey(["dw", "checked"]))
    specs = {spec.name: spec for spec in asset.check_specs}
    assert set(specs) == {"email_present", "email_format"}
    assert specs["email_format"].blocking and not specs["email_present"].blocking
    with DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def(job_name("checked")).execute_in_process(instance=instance)
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert evaluations["email_present"].passed  # 2 of 3 rows, above its 60% threshold
    assert evaluations["email_present"].metadata["affected_rows"].value == 1
    assert evaluations["email_format"].passed
    materialization = result.asset_materializations_for_node("dw__checked")[0]
    score = materialization.metadata["quality_score"].value
    assert score == run_sql(summit_url, "SELECT overall_score FROM data_quality_reports")[0][0]


@pytest.mark.parametrize("tagged", [True, False], ids=["api-backfill", "ui-materialization"])
def test_backfill_runs_are_recorded_by_the_failure_sensor(defs, summit_url: str, source_url: str, tagged: bool) -> None:  # noqa: ANN001
    """A backfill runs in `__ASSET_JOB`, not the pipeline's job; the sensor watches it too,
    also when the Dagster UI launched it without the pipeline tag."""
    from dagster import build_sensor_context

    sensor = defs.resolve_sensor_def("summit_record_failed_runs")
    run_sql(source_url, "DROP TABLE public.users")  # the run fails at extraction
    with DagsterInstance.ephemeral() as instance:
        first = build_sensor_context(instance=instance, definitions=defs)
        sensor.evaluate_tick(first)  # the first tick only places the cursor
        result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance, raise_on_error=False, asset_selection=[AssetKey(["dw", "users"])],
            tags={PIPELINE_TAG: "users-sync", "dagster/backfill": "abc"} if tagged else {},
        )
        assert result.dagster_run.job_name == "__ASSET_JOB" and not result.success
        # As if its worker had been killed before recording its end.
        run_sql(summit_url, "UPDATE pipeline_runs SET status = 'running', errors = '[]' WHERE id = %s", (result.run_id,))
        sensor.evaluate_tick(build_sensor_context(instance=instance, definitions=defs, cursor=first.cursor))
    status, errors = run_sql(summit_url, "SELECT status, errors FROM pipeline_runs WHERE id = %s", (result.run_id,))[0]
    # The stage and the words are the failed step's: the table the run could not read.
    assert status == "failed" and errors[0]["details"]["source"] == "dagster"
    assert errors[0]["stage"] == "extraction" and "users" in errors[0]["message"]


def test_jobs_run_in_process_and_the_queue_holds_one_run_per_pipeline(
    defs, make_database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: ANN001
) -> None:
    from dagster import in_process_executor

    from summit_etl.settings import PROJECT_ROOT

    assert defs.resolve_job_def(job_name("users-sync")).executor_def is in_process_executor
    assert defs.resolve_implicit_global_asset_job_def().executor_def is in_process_executor
    monkeypatch.setenv("DAGSTER_PG_URL", make_database("dagster").replace("postgresql://", "postgresql+psycopg2://"))
    monkeypatch.setenv("SUMMIT_DAGSTER_STATE", str(tmp_path))
    with DagsterInstance.from_config(str(PROJECT_ROOT)) as instance:
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
    assert {"key": PIPELINE_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits
