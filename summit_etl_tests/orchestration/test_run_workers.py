"""Run workers fork from a warm process in the code server: what they would import is
imported already, the pipelines are not (they load them fresh), and only where asked."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from summit_etl.orchestration.run_workers import ENV


def probe(env_value: str | None) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if env_value is not None:
        env[ENV] = env_value
    result = subprocess.run(
        [sys.executable, "-m", "summit_etl_tests.orchestration.run_worker_probe"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def test_a_worker_forked_from_the_warm_process_has_the_engine_but_no_pipelines() -> None:
    found = probe("1")
    assert found == {
        "warmed": True,
        "started_before_a_run": True,  # the first run after a reload does not wait for it
        "exitcode": 0,
        "engine": True,
        "dagster_postgres": True,
        "definitions": False,  # built by the worker itself, from the pipelines of its time
        "parent": True,
        "forked_warm": True,  # what a run's `run_worker` metadata says
    }


def test_without_the_setting_workers_are_spawned_fresh() -> None:
    found = probe(None)
    assert found["warmed"] is False and found["exitcode"] == 0
    assert found["started_before_a_run"] is False
    assert found["engine"] is False and found["dagster_postgres"] is False
    assert found["forked_warm"] is False
