"""deploy/k8s: the instance that the Dagster Helm chart renders from values.yaml validates
against Dagster's own schema and builds a real K8sRunLauncher and QueuedRunCoordinator.

Helm is not needed: `chart_instance` renders the three instance sections the way the chart's
templates do (helpers/instance/_run-launcher.tpl, _run-coordinator.tpl, _postgresql.tpl),
for the keys our values set, and refuses any other key so that nothing is left unchecked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._serdes.config_class import ConfigurableClassData
from dagster_k8s import K8sRunLauncher

from summit_etl.orchestration.keys import PIPELINE_TAG
from summit_etl.settings import PROJECT_ROOT

K8S = PROJECT_ROOT / "deploy" / "k8s"
RELEASE_NAMESPACE = "summit-etl"
SERVICE_ACCOUNT = "summit-etl-dagster"
# What the chart renders, per values key of runLauncher.config.k8sRunLauncher.
LAUNCHER_KEYS = {"envSecrets", "resources", "labels", "jobNamespace", "imagePullPolicy"}
COORDINATOR_KEYS = {"maxConcurrentRuns", "tagConcurrencyLimits", "dequeueIntervalSeconds"}


def values() -> dict[str, Any]:
    return yaml.safe_load((K8S / "values.yaml").read_text())


def chart_instance(chart_values: dict[str, Any], kubeconfig: Path) -> dict[str, Any]:
    launcher_values = chart_values["runLauncher"]["config"]["k8sRunLauncher"]
    coordinator = chart_values["dagsterDaemon"]["runCoordinator"]
    queued = coordinator["config"]["queuedRunCoordinator"]
    postgresql = chart_values["postgresql"]
    assert chart_values["runLauncher"]["type"] == "K8sRunLauncher"
    assert coordinator["enabled"] and coordinator["type"] == "QueuedRunCoordinator"
    assert set(launcher_values) <= LAUNCHER_KEYS, set(launcher_values) - LAUNCHER_KEYS
    assert set(queued) <= COORDINATOR_KEYS, set(queued) - COORDINATOR_KEYS
    launcher: dict[str, Any] = {
        # In the cluster the chart keeps the default (load_incluster_config: true); outside
        # one, a kubeconfig file stands in for the service account.
        "load_incluster_config": False,
        "kubeconfig_file": str(kubeconfig),
        "job_namespace": launcher_values.get("jobNamespace") or RELEASE_NAMESPACE,
        "image_pull_policy": launcher_values.get("imagePullPolicy", "Always"),
        "service_account_name": SERVICE_ACCOUNT,
        "dagster_home": {"env": "DAGSTER_HOME"},
        "instance_config_map": {"env": "DAGSTER_K8S_INSTANCE_CONFIG_MAP"},
        "postgres_password_secret": {"env": "DAGSTER_K8S_PG_PASSWORD_SECRET"},
        "env_config_maps": [{"env": "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP"}],
        "env_secrets": [secret["name"] for secret in launcher_values.get("envSecrets", [])],
    }
    for key in ("resources", "labels"):
        if key in launcher_values:
            launcher[key] = launcher_values[key]
    queue_config = {
        name: queued[key]
        for key, name in (
            ("maxConcurrentRuns", "max_concurrent_runs"),
            ("tagConcurrencyLimits", "tag_concurrency_limits"),
            ("dequeueIntervalSeconds", "dequeue_interval_seconds"),
        )
        if key in queued
    }
    return {
        "storage": {
            "postgres": {
                "postgres_db": {
                    "username": postgresql["postgresqlUsername"],
                    "password": {"env": "DAGSTER_PG_PASSWORD"},
                    "hostname": postgresql["postgresqlHost"],
                    "db_name": postgresql["postgresqlDatabase"],
                    "port": postgresql["service"]["port"],
                }
            }
        },
        "run_coordinator": {
            "module": "dagster._core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": queue_config,
        },
        "run_launcher": {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": launcher},
        "telemetry": {"enabled": chart_values.get("telemetry", {}).get("enabled", True)},
    }


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "unused"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return path


def test_chart_instance_validates_and_builds_the_k8s_launcher_and_queue(
    kubeconfig: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The environment the chart gives the daemon's pod.
    for name, value in {
        "DAGSTER_HOME": "/opt/dagster/dagster_home",
        "DAGSTER_K8S_INSTANCE_CONFIG_MAP": "summit-etl-dagster-instance",
        "DAGSTER_K8S_PG_PASSWORD_SECRET": "summit-etl-dagster-pg",
        "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP": "summit-etl-dagster-pipeline-env",
        "DAGSTER_PG_PASSWORD": "unused",
    }.items():
        monkeypatch.setenv(name, value)
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(chart_instance(values(), kubeconfig)))
    # Dagster's own schema over the whole instance document, as the daemon loads it.
    config, _ = dagster_instance_config(str(home))

    launcher = ConfigurableClassData(
        config["run_launcher"]["module"],
        config["run_launcher"]["class"],
        yaml.safe_dump(config["run_launcher"]["config"]),
    ).rehydrate(as_type=K8sRunLauncher)
    assert launcher.job_namespace == RELEASE_NAMESPACE
    assert launcher.env_secrets == ["summit-etl-env"]
    assert launcher.resources["limits"]["memory"] == "4Gi"

    coordinator = ConfigurableClassData(
        config["run_coordinator"]["module"],
        config["run_coordinator"]["class"],
        yaml.safe_dump(config["run_coordinator"]["config"]),
    ).rehydrate(as_type=QueuedRunCoordinator)
    queue = coordinator.get_run_queue_config()
    assert queue.max_concurrent_runs == 10
    assert coordinator.dequeue_interval_seconds == 1  # not Dagster's default of 5 s
    assert {"key": PIPELINE_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in (
        queue.tag_concurrency_limits
    )


def test_code_location_runs_the_summit_definitions_from_the_image() -> None:
    deployment = values()["dagster-user-deployments"]["deployments"][0]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "summit_etl.definitions", "-a", "defs"]
    image_cmd = (K8S / "Dockerfile").read_text()
    assert '"-m", "summit_etl.definitions", "-a", "defs"' in image_cmd
    assert f'"-p", "{deployment["port"]}"' in image_cmd
    # The run workers get the same secret as the code server: DATABASE_URL and the ${VAR}s.
    launcher_secrets = values()["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"]
    assert launcher_secrets == deployment["envSecrets"]
