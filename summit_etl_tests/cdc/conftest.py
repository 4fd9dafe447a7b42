"""CDC fixtures: a throwaway PostgreSQL with wal_level=logical (the shared server on 5432
stays untouched), scratch databases in it, and a Dagster instance for sensors and runs."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from dagster import DagsterInstance
from psycopg import sql

from summit_etl_tests.cdc.cdc_support import LogicalCluster


@pytest.fixture(scope="session")
def logical_cluster() -> Iterator[LogicalCluster]:
    with LogicalCluster.running() as cluster:
        yield cluster


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
def cdc_source(
    strategy: str, make_database: Callable[[str], str], logical_database: Callable[[], str]
) -> str:
    """An empty source database for the test's `strategy`: log_based needs wal_level =
    logical, so its source lives on the throwaway cluster; the others on the shared server."""
    return logical_database() if strategy == "log_based" else make_database("src")


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with DagsterInstance.ephemeral() as dagster_instance:
        yield dagster_instance
