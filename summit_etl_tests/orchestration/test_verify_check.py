"""The `source_equal` asset check on a real Dagster instance: on demand, not part of a run."""

from __future__ import annotations

from pathlib import Path

import yaml
from dagster import AssetSelection, DagsterInstance, Definitions, define_asset_job

from summit_etl.orchestration.factory import build_definitions
from summit_etl.orchestration.keys import job_name
from summit_etl.orchestration.verify_check import CHECK_NAME, verify_check_key
from summit_etl.registry import load_registry
from summit_etl_tests.support import run_sql


def test_source_equal_runs_on_demand_and_fails_when_the_target_drifts(
    tmp_path: Path, source_url: str, target_url: str, summit_url: str
) -> None:
    run_sql(source_url, "CREATE TABLE public.users (id bigint PRIMARY KEY, email text)")
    run_sql(source_url, "INSERT INTO public.users SELECT g, 'u' || g FROM generate_series(1, 40) g")
    pipeline = {
        "id": "users-sync",
        "name": "Users",
        "source": {"url": source_url, "table": "public.users"},
        "loading": {"strategy": "upsert", "targetTable": "dw.users", "targetUrl": target_url,
                    "upsertKey": ["id"], "createTable": True},
    }
    (tmp_path / "users-sync.yaml").write_text(yaml.safe_dump(pipeline))
    registry = load_registry(tmp_path, summit_url)
    defs = build_definitions(registry, summit_url)
    key = verify_check_key(registry.pipelines["users-sync"])
    on_demand = Definitions.merge(
        defs, Definitions(jobs=[define_asset_job("verify_users", selection=AssetSelection.checks(key))])
    )
    with DagsterInstance.ephemeral() as instance:
        load = defs.resolve_job_def(job_name("users-sync")).execute_in_process(instance=instance)
        assert load.success
        assert not [e for e in load.get_asset_check_evaluations() if e.check_name == CHECK_NAME]

        def check() -> tuple[bool, int]:
            result = on_demand.resolve_job_def("verify_users").execute_in_process(instance=instance)
            (evaluation,) = result.get_asset_check_evaluations()
            return evaluation.passed, evaluation.metadata["missing"].value

        assert check() == (True, 0)
        run_sql(target_url, "DELETE FROM dw.users WHERE id IN (3, 4)")
        assert check() == (False, 2)
