"""Fault-suite fixtures, shared per module to keep the suite fast: throwaway PostgreSQL
clusters of the suite's own (the shared server on 5432 is never stopped), scratch
databases in them (gone with the cluster), and one summit database (each case has its
own pipeline id, hence its own watermarks and run records)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from summit_etl.store import db
from summit_etl_tests.cdc.cdc_support import LogicalCluster
from summit_etl_tests.faults.fault_support import MakeDatabase
from summit_etl_tests.support import ADMIN_URL


@pytest.fixture(scope="module")
def cluster() -> Iterator[LogicalCluster]:
    """A cluster with wal_level = logical, so log_based capture runs on it too."""
    with LogicalCluster.running() as running:
        yield running


def _create(admin_url: str, prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return admin_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def cluster_database() -> MakeDatabase:
    """A scratch database on a throwaway cluster (removed with the cluster)."""
    return lambda on: _create(on.admin_url, "fault")


@pytest.fixture(scope="module")
def summit() -> Iterator[str]:
    """A migrated summit database on the shared server for the module's cases."""
    url = _create(ADMIN_URL, "summit_test_faults")
    db.migrate(url)
    yield url
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(url.rsplit("/", 1)[1])
            )
        )
