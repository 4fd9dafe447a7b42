"""Fixtures: real PostgreSQL databases made for a test and dropped after it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg import sql

from summit_etl.store import db
from summit_etl_tests.support import ADMIN_URL


def _drop(name: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _create(prefix: str) -> tuple[str, str]:
    """A new scratch database: (name, URL)."""
    name = f"summit_test_{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name, ADMIN_URL.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def make_database() -> Iterator[Callable[[str], str]]:
    """Create a scratch database (dropped after the test) and return its URL."""
    created: list[str] = []

    def make(prefix: str = "t") -> str:
        name, url = _create(prefix)
        created.append(name)
        return url

    yield make
    for name in created:
        _drop(name)


@pytest.fixture(scope="module")
def module_database() -> Iterator[str]:
    """One scratch database for a whole module, for many small tests that each drop what
    they made (creating and dropping a database costs more than most such tests)."""
    name, url = _create("mod")
    yield url
    _drop(name)


@pytest.fixture
def summit_url(make_database: Callable[[str], str]) -> str:
    """A migrated summit database."""
    url = make_database("summit")
    db.migrate(url)
    return url


@pytest.fixture
def source_url(make_database: Callable[[str], str]) -> str:
    return make_database("src")


@pytest.fixture
def target_url(make_database: Callable[[str], str]) -> str:
    return make_database("dst")
