"""CDC test helpers: a PostgreSQL of our own with wal_level = logical, a source table,
pipeline configs, and a sensor + runs loop as the Dagster daemon would drive it (ticks
evaluated on a real instance, runs in process). bench/cdc_lag.py uses them too."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagster import DagsterInstance, Definitions, build_sensor_context
from dagster._core.definitions.sensor_definition import SensorExecutionData

from summit_etl.config import PipelineConfig
from summit_etl.orchestration.factory import build_definitions
from summit_etl.orchestration.keys import cdc_sensor_name, job_name
from summit_etl.registry import Registry, sync_files_to_table
from summit_etl.store import pipelines as pipeline_store
from summit_etl.store.db import connect
from summit_etl_tests.support import run_sql


def _pg_bin() -> Path:
    if "SUMMIT_PG_BIN" in os.environ:
        return Path(os.environ["SUMMIT_PG_BIN"])
    pg_config = shutil.which("pg_config")
    if pg_config:
        return Path(subprocess.check_output([pg_config, "--bindir"], text=True).strip())
    return Path("/usr/lib/postgresql/15/bin")


@dataclass
class LogicalCluster:
    """A PostgreSQL server of our own, started with wal_level = logical (or another level,
    to test what a source without logical decoding does)."""

    directory: Path
    port: int
    wal_level: str = "logical"

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        # initdb and postgres refuse to run as root: run them as the postgres user then.
        as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*as_user, *args], check=True, capture_output=True)

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c wal_level={self.wal_level} "
            f"-c unix_socket_directories={self.directory} -c fsync=off "
            "-c max_replication_slots=20 -c max_wal_senders=20"
        )
        self._ctl(
            str(_pg_bin() / "pg_ctl"),
            "-D",
            str(self.directory / "data"),
            "-o",
            options,
            "-l",
            str(self.directory / "server.log"),
            "-w",
            "start",
        )

    @classmethod
    @contextmanager
    def running(cls, wal_level: str = "logical") -> Iterator[LogicalCluster]:
        """A fresh cluster in a temporary directory, removed again afterwards."""
        directory = Path(tempfile.mkdtemp(prefix="summit-cdc-pg-"))
        if os.geteuid() == 0:
            shutil.chown(directory, "postgres", "postgres")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        cluster = cls(directory, port, wal_level)
        try:
            cluster._ctl(
                str(_pg_bin() / "initdb"),
                "-D",
                str(directory / "data"),
                "-A",
                "trust",
                "-U",
                "postgres",
            )
            cluster.start()
            try:
                yield cluster
            finally:
                cluster.stop()
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def stop(self) -> None:
        self._ctl(
            str(_pg_bin() / "pg_ctl"),
            "-D",
            str(self.directory / "data"),
            "-m",
            "fast",
            "-w",
            "stop",
        )


# "trigger_statement": the trigger strategy with cdc.triggerLevel statement.
STRATEGIES = ["timestamp", "version", "trigger", "trigger_statement", "log_based"]
CAPTURES_DELETES = {"trigger", "trigger_statement", "log_based"}


def cdc_block(strategy: str) -> dict[str, Any]:
    """The `cdc` keys that name a test strategy (tracking column, trigger level)."""
    if strategy == "trigger_statement":
        return {"strategy": "trigger", "triggerLevel": "statement"}
    tracking = {"timestamp": "updated_at", "version": "version"}
    return {"strategy": strategy, **({"trackingColumn": tracking[strategy]} if strategy in tracking else {})}

# updated_at defaults to now(): rows written by one transaction share their timestamp.
SOURCE_DDL = """
CREATE SEQUENCE public.users_version;
CREATE TABLE public.users (
    id bigint PRIMARY KEY,
    email text,
    score numeric(12,2),
    doc jsonb,
    updated_at timestamptz NOT NULL DEFAULT now(),
    version bigint NOT NULL DEFAULT nextval('public.users_version')
);
CREATE FUNCTION public.touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := now();
  NEW.version := nextval('public.users_version');
  RETURN NEW;
END $$;
CREATE TRIGGER touch BEFORE UPDATE ON public.users FOR EACH ROW EXECUTE FUNCTION public.touch();
"""
COLUMNS = "id, email, score, doc"


def create_source(url: str, rows: int = 0) -> None:
    run_sql(url, SOURCE_DDL)
    if rows:
        insert(url, 1, rows)


def insert(url: str, first: int, last: int) -> None:
    run_sql(
        url,
        "INSERT INTO public.users (id, email, score, doc) "
        "SELECT g, 'u' || g || '@x.org', g * 1.25, jsonb_build_object('n', g) "
        "FROM generate_series(%s::int, %s::int) g",
        (first, last),
    )


def raw_pipeline(
    strategy: str,
    source_url: str,
    target_url: str,
    pipeline_id: str = "users-cdc",
    loading: dict[str, Any] | None = None,
    cdc_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    cdc: dict[str, Any] = {
        **cdc_block(strategy),
        "primaryKeys": ["id"],
        "pollIntervalSeconds": 2,
        "batchSize": 100,
        # One pass per run, so a test's cycle() returns once the source is drained; the
        # live runs of summit_etl_tests/cdc/test_cdc_live.py set their own window.
        "idleWindowSeconds": 0,
        **(cdc_options or {}),
    }
    return {
        "id": pipeline_id,
        "name": "Users CDC",
        "source": {"url": source_url, "table": "public.users"},
        "extraction": {"strategy": "cdc"},
        "cdc": cdc,
        "loading": {
            "strategy": "upsert",
            "targetTable": "dw.users",
            "targetUrl": target_url,
            "createTable": True,
            **(loading or {}),
        },
    }


@dataclass
class Harness:
    """One CDC pipeline on a real Dagster instance: tick its sensor, run what it requests."""

    raw: dict[str, Any]
    summit_url: str
    instance: DagsterInstance
    cursor: str | None = None
    # True: created as through the API (only in the pipelines table), else a YAML pipeline.
    stored: bool = False
    defs: Definitions = field(init=False)
    config: PipelineConfig = field(init=False)

    def __post_init__(self) -> None:
        registry = Registry()
        registry.add(self.raw, "test", from_file=not self.stored)
        assert not registry.errors, registry.errors
        sync_files_to_table(registry, self.summit_url)
        if self.stored:
            with connect(self.summit_url) as conn:
                pipeline_store.create(conn, self.raw, enabled=True)
        self.config = registry.pipelines[self.raw["id"]]
        self.defs = build_definitions(registry, self.summit_url)

    @property
    def sensor_name(self) -> str:
        return cdc_sensor_name(self.config.id)

    def tick(self) -> SensorExecutionData:
        sensor = self.defs.resolve_sensor_def(self.sensor_name)
        context = build_sensor_context(
            instance=self.instance, cursor=self.cursor, sensor_name=self.sensor_name
        )
        result = sensor.evaluate_tick(context)
        self.cursor = result.cursor
        return result

    def run(self, tags: dict[str, str] | None = None) -> Any:
        job = self.defs.resolve_job_def(job_name(self.config.id))
        return job.execute_in_process(
            instance=self.instance,
            tags={**(tags or {}), "dagster/sensor_name": self.sensor_name},
            raise_on_error=False,
        )

    def cycle(self) -> list[Any]:
        """One tick and the runs it asked for, as the daemon would launch them."""
        return [
            self.run({**request.tags, "dagster/run_key": request.run_key or ""})
            for request in self.tick().run_requests
        ]

    def watermark(self) -> tuple | None:
        rows = run_sql(
            self.summit_url,
            "SELECT last_processed_value, last_processed_lsn, last_processed_time "
            "FROM etl_cdc_watermarks WHERE pipeline_id = %s",
            (self.config.id,),
        )
        return rows[0] if rows else None


def source_rows(url: str) -> list[tuple]:
    return run_sql(url, f"SELECT {COLUMNS} FROM public.users ORDER BY id")


def target_rows(url: str) -> list[tuple]:
    return run_sql(url, f"SELECT {COLUMNS} FROM dw.users ORDER BY id")


def change_log(url: str) -> list[tuple]:
    return run_sql(
        url,
        "SELECT operation, primary_key ->> 'id', old_values, new_values, source_position, run_id "
        "FROM dw.users_changes ORDER BY id",
    )
