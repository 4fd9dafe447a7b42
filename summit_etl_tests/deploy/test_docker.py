"""deploy/docker: the DockerRunLauncher instance loads as Dagster loads it, on real
PostgreSQL storage; the compose file is well-formed; the image builds where Docker runs."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
import yaml
from dagster import DagsterInstance
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster_docker import DockerRunLauncher

from summit_etl.orchestration.keys import PIPELINE_TAG
from summit_etl.settings import PROJECT_ROOT

DOCKER = PROJECT_ROOT / "deploy" / "docker"
DOCKERFILE = PROJECT_ROOT / "deploy" / "k8s" / "Dockerfile"


def docker_daemon() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "info"], capture_output=True, timeout=30)
    return probe.returncode == 0


def test_docker_instance_loads_with_the_docker_launcher_and_the_queue(
    make_database: Callable[[str], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = psycopg.conninfo.conninfo_to_dict(make_database("dagster"))
    for name, value in {
        "DAGSTER_PG_HOST": str(url.get("host", "127.0.0.1")),
        "DAGSTER_PG_USER": str(url.get("user", "postgres")),
        "DAGSTER_PG_PASSWORD": str(url.get("password", "unused-with-trust-auth")),
        "DAGSTER_PG_DB": str(url["dbname"]),
    }.items():
        monkeypatch.setenv(name, value)
    shutil.copy(DOCKER / "dagster.yaml", tmp_path / "dagster.yaml")
    # Dagster's own loader: schema validation, then each configured class built from its config.
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, DockerRunLauncher)
        assert launcher.networks == ["summit-etl"]
        assert "DATABASE_URL" in launcher.env_vars
        coordinator = instance.run_coordinator
        assert isinstance(coordinator, QueuedRunCoordinator)
        assert coordinator.dequeue_interval_seconds == 0.5  # checked twice a second
        limits = coordinator.get_run_queue_config().tag_concurrency_limits
        assert {
            "key": PIPELINE_TAG,
            "value": {"applyLimitPerUniqueValue": True},
            "limit": 1,
        } in limits
        # The storage is real: the instance wrote Dagster's tables in the scratch database.
        assert instance.get_runs_count() == 0


def test_compose_services_share_one_image_and_the_instance_files() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "migrate", "code", "webserver", "daemon", "api"} <= set(services)
    images = {services[name]["image"] for name in ("migrate", "code", "webserver", "daemon", "api")}
    assert images == {"summit-etl:latest"}
    # The daemon launches run containers on the network the launcher names.
    launcher = yaml.safe_load((DOCKER / "dagster.yaml").read_text())["run_launcher"]["config"]
    assert launcher["network"] in compose["networks"]
    assert compose["networks"][launcher["network"]]["name"] == launcher["network"]
    mounts = services["daemon"]["volumes"]
    assert "./dagster.yaml:/opt/dagster/home/dagster.yaml:ro" in mounts
    assert any(mount.startswith("/var/run/docker.sock:") for mount in mounts)
    workspace = yaml.safe_load((DOCKER / "workspace.yaml").read_text())
    server = workspace["load_from"][0]["grpc_server"]
    assert server["host"] == "code"
    # ... on the port the image's code server listens on.
    listens = re.search(r'"-p", "(\d+)"', DOCKERFILE.read_text())
    assert listens and int(listens[1]) == server["port"]


@pytest.mark.slow
@pytest.mark.skipif(not docker_daemon(), reason="no Docker daemon to build with")
def test_code_location_image_builds_and_loads_the_definitions() -> None:
    tag = "summit-etl:test"
    subprocess.run(
        ["docker", "build", "-f", str(DOCKERFILE), "-t", tag, str(PROJECT_ROOT)],
        check=True,
        timeout=900,
    )
    probe = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            tag,
            "python",
            "-c",
            "import dagster_k8s, dagster_docker, summit_etl.orchestration.factory, api_shim.app",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert probe.returncode == 0, probe.stderr
