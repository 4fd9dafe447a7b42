"""The whole service for real: `summit-etl serve` (Dagster webserver + daemon + API) on
free ports, against scratch databases; extra API processes where a test needs its own."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml
from dagster import DagsterInstance
from psycopg import sql

from summit_etl.settings import PROJECT_ROOT
from summit_etl_tests.support import ADMIN_URL, run_sql

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{what} did not come up within {timeout:.0f} s")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Stack:
    env: dict[str, str]
    api_url: str
    graphql_url: str
    summit_url: str
    source_url: str
    target_url: str
    log_file: Path
    processes: list[subprocess.Popen] = field(default_factory=list)

    @contextmanager
    def dagster(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[DagsterInstance]:
        """The service's Dagster instance, as its daemon loads it."""
        for name in ("DAGSTER_PG_URL", "SUMMIT_DAGSTER_STATE"):
            monkeypatch.setenv(name, self.env[name])
        with DagsterInstance.from_config(self.env["SUMMIT_DAGSTER_STATE"]) as instance:
            yield instance

    @contextmanager
    def api(self, **env: str) -> Iterator[str]:
        """Another API process on the same stack (own port, own environment changes)."""
        port = free_port()
        process = subprocess.Popen(
            [str(BIN / "python"), "-m", "api_shim"],
            env={**self.env, "ETL_SERVICE_PORT": str(port), **env}, cwd=PROJECT_ROOT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            # Importing the app alone takes 15 s on a loaded 2-core machine.
            wait_until(lambda: httpx.get(f"{url}/openapi.json").status_code == 200, 90, "API")
            yield url
        finally:
            stop(process)


PIPELINES = {
    "users-sync": {
        "source": {"url": "${SOURCE_URL}", "table": "public.users"},
        "loading": {"strategy": "upsert", "targetTable": "dw.users", "targetUrl": "${TARGET_URL}",
                    "upsertKey": ["id"], "createTable": True},
        "schedule": {"cron": "0 0 1 1 *"},
    },
    "slow-sync": {
        "source": {"url": "${SOURCE_URL}",
                   "query": "SELECT g AS id, pg_sleep(1) IS NULL AS slept FROM generate_series(1, 120) AS g"},
        "extraction": {"strategy": "full", "batchSize": 1},
        "loading": {"strategy": "bulk", "targetTable": "dw.slow", "targetUrl": "${TARGET_URL}", "createTable": True},
    },
    "users-sliced": {
        "source": {"url": "${SOURCE_URL}", "table": "public.users"},
        "extraction": {"strategy": "full", "parallelism": 2},
        "loading": {"strategy": "bulk", "targetTable": "dw.users_sliced", "targetUrl": "${TARGET_URL}",
                    "createTable": True},
    },
    "broken-load": {
        "source": {"url": "${SOURCE_URL}", "table": "public.users"},
        "loading": {"strategy": "bulk", "targetTable": "dw.narrow", "targetUrl": "${TARGET_URL}"},
    },
    "users-quality": {
        "source": {"url": "${SOURCE_URL}", "table": "public.users"},
        "quality": {"rules": [
            {"id": "email-present", "dimension": "completeness", "severity": "critical",
             "rule": {"type": "not_null", "config": {"field": "email"}}},
            {"id": "low-ids", "dimension": "accuracy", "severity": "critical", "action": "quarantine",
             "threshold": 90, "rule": {"type": "range", "config": {"field": "id", "max": 150}}},
        ]},
        "loading": {"strategy": "upsert", "targetTable": "dw.users_quality", "targetUrl": "${TARGET_URL}",
                    "upsertKey": ["id"], "createTable": True},
    },
    "users-cdc": {
        "source": {"url": "${SOURCE_URL}", "table": "public.users"},
        "extraction": {"strategy": "cdc"},
        "cdc": {"strategy": "timestamp", "trackingColumn": "updated_at", "primaryKeys": ["id"],
                "idleWindowSeconds": 2},  # live runs, ended soon enough for the tests that wait
        "loading": {"strategy": "upsert", "targetTable": "dw.users_cdc", "targetUrl": "${TARGET_URL}",
                    "upsertKey": ["id"], "createTable": True},
    },
}


def _database(prefix: str) -> str:
    name = f"summit_test_{prefix}_{uuid.uuid4().hex[:8]}"
    run_sql(ADMIN_URL, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)).as_string(None))
    return name


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("service")
    base = ADMIN_URL.rsplit("/", 1)[0]
    names = {k: _database(k) for k in ("summit", "src", "dst", "dagster")}
    urls = {k: f"{base}/{v}" for k, v in names.items()}
    run_sql(urls["src"], "CREATE TABLE public.users (id bigint PRIMARY KEY, email text, updated_at timestamptz DEFAULT now())")
    run_sql(urls["src"], "INSERT INTO public.users (id, email) SELECT g, 'u' || g || '@x.org' FROM generate_series(1, 200) g")
    run_sql(urls["dst"], "CREATE SCHEMA dw; CREATE TABLE dw.narrow (id bigint PRIMARY KEY, email varchar(3))")
    pipelines_dir = home / "pipelines"
    pipelines_dir.mkdir()
    for pipeline_id, body in PIPELINES.items():
        document = {"id": pipeline_id, "name": pipeline_id.replace("-", " ").title(), **body}
        (pipelines_dir / f"{pipeline_id}.yaml").write_text(yaml.safe_dump(document))
    api_port, dagster_port = free_port(), free_port()
    log_file = home / "cwd" / "logs" / "etl-service.log"
    env = {
        **os.environ,
        "DATABASE_URL": urls["summit"],
        "DAGSTER_PG_URL": urls["dagster"].replace("postgresql://", "postgresql+psycopg2://"),
        "DEMO_SOURCE_URL": urls["src"],
        "SOURCE_URL": urls["src"],
        "TARGET_URL": urls["dst"],
        "SUMMIT_DAGSTER_STATE": str(home / "state"),  # also DAGSTER_HOME, as `serve` makes it
        "SUMMIT_PIPELINES_DIR": str(pipelines_dir),
        "SUMMIT_LOG_FILE": str(log_file),
        "ETL_SERVICE_PORT": str(api_port),
        "DAGSTER_GRAPHQL_URL": f"http://127.0.0.1:{dagster_port}/graphql",
    }
    for inherited in ("ETL_API_TOKENS", "DAGSTER_HOME"):
        env.pop(inherited, None)
    serve = subprocess.Popen(
        [str(BIN / "summit-etl"), "serve", "--dagster-port", str(dagster_port)],
        env=env, cwd=PROJECT_ROOT,
    )
    stack = Stack(env, f"http://127.0.0.1:{api_port}", env["DAGSTER_GRAPHQL_URL"], urls["summit"],
                  urls["src"], urls["dst"], log_file, [serve])
    try:
        wait_until(lambda: httpx.get(f"{stack.api_url}/health").status_code == 200, 120, "the service")
        yield stack
    finally:
        stop(serve)
        for name in names.values():
            run_sql(ADMIN_URL, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)).as_string(None))
    # SIGTERM stops all three processes cleanly: exit 0, and nothing listens any more.
    assert serve.returncode == 0
    for port in (api_port, dagster_port):
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still answers"


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.api_url, timeout=120) as client:
        yield client
