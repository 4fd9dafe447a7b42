"""CDC fixtures: a throwaway PostgreSQL with wal_level=logical (the shared server on 5432
stays untouched), scratch databases in it, and a Dagster instance for sensors and runs."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from dagster import DagsterInstance
from psycopg import sql


def _pg_bin() -> Path:
    if "SUMMIT_PG_BIN" in os.environ:
        return Path(os.environ["SUMMIT_PG_BIN"])
    pg_config = shutil.which("pg_config")
    if pg_config:
        return Path(subprocess.check_output([pg_config, "--bindir"], text=True).strip())
    return Path("/usr/lib/postgresql/15/bin")


@dataclass
class LogicalCluster:
    """A PostgreSQL server of our own, started with wal_level = logical."""

    directory: Path
    port: int

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        # initdb and postgres refuse to run as root: run them as the postgres user then.
        as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*as_user, *args], check=True, capture_output=True)

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c wal_level=logical "
            f"-c unix_socket_directories={self.directory} -c fsync=off "
            "-c max_replication_slots=20 -c max_wal_senders=20"
        )
        self._ctl(
            str(_pg_bin() / "pg_ctl"), "-D", str(self.directory / "data"), "-o", options,
            "-l", str(self.directory / "server.log"), "-w", "start",
        )

    def stop(self) -> None:
        self._ctl(str(_pg_bin() / "pg_ctl"), "-D", str(self.directory / "data"), "-m", "fast", "-w", "stop")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def logical_cluster() -> Iterator[LogicalCluster]:
    directory = Path(tempfile.mkdtemp(prefix="summit-cdc-pg-"))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    cluster = LogicalCluster(directory, _free_port())
    cluster._ctl(str(_pg_bin() / "initdb"), "-D", str(directory / "data"), "-A", "trust", "-U", "postgres")
    cluster.start()
    try:
        yield cluster
    finally:
        try:
            cluster.stop()
        finally:
            shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def logical_database(logical_cluster: LogicalCluster) -> Iterator[Callable[[], str]]:
    """Scratch databases on the logical cluster, with their slots dropped after the test."""
    created: list[str] = []

    def make() -> str:
        name = f"cdc_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(logical_cluster.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created.append(name)
        return logical_cluster.admin_url.rsplit("/", 1)[0] + "/" + name

    yield make
    with psycopg.connect(logical_cluster.admin_url, autocommit=True) as conn:
        for name in created:
            conn.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = %s",
                (name,),
            )
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with DagsterInstance.ephemeral() as dagster_instance:
        yield dagster_instance
