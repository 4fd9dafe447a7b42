"""The whole service (`summit-etl serve`) on a throwaway PostgreSQL cluster of its own, so
that a test may stop the database under it (the shared server on 5432 stays untouched),
with a run queue of two slots and one run per pipeline."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
import yaml
from dagster import DagsterInstance
from psycopg import sql

from summit_etl.cli import dagster_storage_url
from summit_etl.settings import PROJECT_ROOT
from summit_etl_tests.api_shim.conftest import BIN, free_port, stop, wait_until
from summit_etl_tests.cdc.cdc_support import LogicalCluster
from summit_etl_tests.support import run_sql

MAX_CONCURRENT_RUNS = 2
DATABASES = ("summit", "summit_dagster", "src", "dst")
# Six seconds of extraction each (one row per batch, a sleep per row), so that queued
# runs visibly wait for each other: runs now reach `running` without importing Great
# Expectations, and shorter ones ended before the next launch on a busy 2-core CI host.
QUEUED = {
    pipeline_id: {
        "source": {
            "url": "${SOURCE_URL}",
            "query": "SELECT g AS id, pg_sleep(0.5) IS NULL AS slept FROM generate_series(1, 12) AS g",
        },
        "extraction": {"strategy": "full", "batchSize": 1},
        "loading": {
            "strategy": "bulk",
            "targetTable": f"dw.{pipeline_id.replace('-', '_')}",
            "targetUrl": "${TARGET_URL}",
            "createTable": True,
        },
    }
    for pipeline_id in ("queue-a", "queue-b", "queue-c")
}
PIPELINES = {
    **QUEUED,
    # Long enough to be in flight when the failover test pulls the database away.
    "slow-load": {
        "source": {
            "url": "${SOURCE_URL}",
            "query": "SELECT g AS id, pg_sleep(0.5) IS NULL AS slept FROM generate_series(1, 60) AS g",
        },
        "extraction": {"strategy": "full", "batchSize": 1},
        "loading": {
            "strategy": "bulk",
            "targetTable": "dw.slow_load",
            "targetUrl": "${TARGET_URL}",
            "createTable": True,
        },
    },
    "users-cdc": {
        "source": {"url": "${SOURCE_URL}", "table": "public.users"},
        "extraction": {"strategy": "cdc"},
        "cdc": {
            "strategy": "timestamp",
            "trackingColumn": "updated_at",
            "primaryKeys": ["id"],
            "pollIntervalSeconds": 2,
        },
        "loading": {
            "strategy": "upsert",
            "targetTable": "dw.users",
            "targetUrl": "${TARGET_URL}",
            "upsertKey": ["id"],
            "createTable": True,
        },
    },
}


def instance_yaml() -> dict:
    """The project's dagster.yaml with the queue of deploy/docker/dagster.yaml (one run per
    pipeline), two slots, and a short dequeue interval for the test's sake."""
    instance = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    deployed = yaml.safe_load((PROJECT_ROOT / "deploy" / "docker" / "dagster.yaml").read_text())
    instance["run_coordinator"] = deployed["run_coordinator"]
    instance["run_coordinator"]["config"]["max_concurrent_runs"] = MAX_CONCURRENT_RUNS
    instance["run_coordinator"]["config"]["dequeue_interval_seconds"] = 1
    return instance


def urls(cluster: LogicalCluster) -> dict[str, str]:
    base = cluster.admin_url.rsplit("/", 1)[0]
    return {name: f"{base}/{name}" for name in DATABASES}


def accepting(cluster: LogicalCluster) -> bool:
    try:
        psycopg.connect(cluster.admin_url, connect_timeout=3).close()
        return True
    except psycopg.OperationalError:
        return False


@dataclass
class Service:
    """`summit-etl serve` against one cluster; `restart` points it at another."""

    home: Path
    cluster: LogicalCluster
    api_url: str = ""
    process: subprocess.Popen | None = None

    @property
    def urls(self) -> dict[str, str]:
        return urls(self.cluster)

    def start(self) -> None:
        api_port, dagster_port = free_port(), free_port()
        env = {
            **os.environ,
            "DATABASE_URL": self.urls["summit"],
            "SOURCE_URL": self.urls["src"],
            "TARGET_URL": self.urls["dst"],
            "DEMO_SOURCE_URL": self.urls["src"],
            "SUMMIT_DAGSTER_STATE": str(self.home / "state"),
            "SUMMIT_PIPELINES_DIR": str(self.home / "pipelines"),
            "SUMMIT_LOG_FILE": str(self.home / "logs" / "etl-service.log"),
            "ETL_SERVICE_PORT": str(api_port),
            "DAGSTER_GRAPHQL_URL": f"http://127.0.0.1:{dagster_port}/graphql",
        }
        for inherited in ("ETL_API_TOKENS", "DAGSTER_HOME", "DAGSTER_PG_URL"):
            env.pop(inherited, None)
        self.api_url = f"http://127.0.0.1:{api_port}"
        self.process = subprocess.Popen(
            [str(BIN / "summit-etl"), "serve", "--dagster-port", str(dagster_port)],
            env=env,
            cwd=PROJECT_ROOT,
        )
        wait_until(lambda: self.health().status_code == 200, 120, "the service")

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            assert self.process.returncode == 0, "serve did not stop cleanly on SIGTERM"
            self.process = None

    def restart(self, cluster: LogicalCluster) -> None:
        """The runbook's failover: new DATABASE_URL, `systemctl restart etl-service`."""
        self.stop()
        self.cluster = cluster
        self.start()

    @contextmanager
    def dagster(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[DagsterInstance]:
        """The service's Dagster instance, as its daemon loads it."""
        monkeypatch.setenv("DAGSTER_PG_URL", dagster_storage_url(self.urls["summit"]))
        monkeypatch.setenv("SUMMIT_DAGSTER_STATE", str(self.home / "state"))
        with DagsterInstance.from_config(str(self.home / "state")) as instance:
            yield instance

    def health(self) -> httpx.Response:
        return httpx.get(f"{self.api_url}/health", timeout=30)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@contextmanager
def promoted_copy(cluster: LogicalCluster) -> Iterator[LogicalCluster]:
    """A new primary holding the old one's data (as a promoted replica would), on a port of
    its own: the old cluster is stopped, its data directory copied, the copy started. On
    leaving, the copy goes and the old cluster starts again (for its own clean-up)."""
    cluster.stop()
    directory = Path(tempfile.mkdtemp(prefix="summit-failover-pg-"))
    try:
        shutil.copytree(cluster.directory / "data", directory / "data", symlinks=True)
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", "postgres:postgres", str(directory)], check=True)
        copy = LogicalCluster(directory, free_port(), cluster.wal_level)
        copy.start()
        try:
            yield copy
        finally:
            copy.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        cluster.start()


@pytest.fixture(scope="session")
def own_cluster() -> Iterator[LogicalCluster]:
    with LogicalCluster.running(wal_level="replica") as cluster:
        for name, url in urls(cluster).items():
            run_sql(
                cluster.admin_url,
                sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)).as_string(None),
            )
            assert run_sql(url, "SELECT 1") == [(1,)]
        yield cluster
        # A test that failed while its database was down leaves it stopped; running()
        # stops it on the way out.
        if not accepting(cluster):
            cluster.start()


@pytest.fixture(scope="session")
def service(
    own_cluster: LogicalCluster,
    promote: Callable[[], LogicalCluster],  # torn down after the service that may run on it
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Service]:
    home = tmp_path_factory.mktemp("own-cluster-service")
    source = urls(own_cluster)["src"]
    run_sql(
        source,
        "CREATE TABLE public.users (id bigint PRIMARY KEY, email text, updated_at timestamptz NOT NULL DEFAULT now())",
    )
    run_sql(
        source,
        "INSERT INTO public.users (id, email) SELECT g, 'u' || g || '@x.org' FROM generate_series(1, 20) g",
    )
    (home / "pipelines").mkdir()
    for pipeline_id, body in PIPELINES.items():
        document = {"id": pipeline_id, "name": pipeline_id.replace("-", " ").title(), **body}
        (home / "pipelines" / f"{pipeline_id}.yaml").write_text(yaml.safe_dump(document))
    # Our own instance file where `serve` would link the project's (it links only when absent).
    (home / "state").mkdir()
    (home / "state" / "dagster.yaml").write_text(yaml.safe_dump(instance_yaml()))
    service = Service(home, own_cluster)
    service.start()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def promote(own_cluster: LogicalCluster) -> Iterator[Callable[[], LogicalCluster]]:
    """Make the new primary of a failover; it lives until the end of the session, so the
    service restarted on it stays usable by later tests."""
    with ExitStack() as stack:
        yield lambda: stack.enter_context(promoted_copy(own_cluster))
