"""Fixtures: real PostgreSQL databases made for a test and dropped after it."""

from __future__ import annotations

import contextlib
import queue
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

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


def _drop_quietly(name: str) -> None:
    # On failure the database stays; the server's log says why.
    with contextlib.suppress(psycopg.Error):
        _drop(name)


def _create(prefix: str, template: str | None = None) -> tuple[str, str]:
    """A new scratch database: (name, URL)."""
    name = f"summit_test_{prefix}_{uuid.uuid4().hex[:10]}"
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(statement)
    return name, ADMIN_URL.rsplit("/", 1)[0] + "/" + name


DROP_THREADS = 4


class ScratchDatabases:
    """Creating a database takes ~0.3 s and a migrated summit database ~0.55 s, up to three
    per test for most of the suite: one background thread keeps one of each kind ready and
    drops used ones while the tests run (a test waits only when it takes a second database
    of a kind). Summit databases are copies of one migrated template.

    Each DROP DATABASE waits for a checkpoint (~0.1 s idle, more while tests write): one
    at a time they fell hundreds behind, which the session's end then waited for (~40 s).
    A few at once share checkpoints and keep up."""

    def __init__(self) -> None:
        self._ready: dict[str, queue.SimpleQueue[tuple[str, str]]] = {}
        self._work: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._template: str | None = None
        self._thread = threading.Thread(target=self._serve, name="scratch-databases", daemon=True)
        self._thread.start()
        self._drops = ThreadPoolExecutor(DROP_THREADS, thread_name_prefix="scratch-drop")

    def take(self, prefix: str) -> tuple[str, str]:
        with self._lock:
            ready = self._ready.setdefault(prefix, queue.SimpleQueue())
        try:
            made = ready.get_nowait()
        except queue.Empty:
            made = self._make(prefix)
        self._work.put(lambda: ready.put(self._make(prefix)))  # one more for the next test
        return made

    def drop_later(self, name: str) -> None:
        self._drops.submit(_drop_quietly, name)

    def close(self) -> None:
        """Drop what is left ready, after the queued work."""
        self._work.put(None)
        self._thread.join()
        for ready in self._ready.values():
            while not ready.empty():
                self._drops.submit(_drop_quietly, ready.get_nowait()[0])
        self._drops.shutdown(wait=True)
        if self._template is not None:
            _drop(self._template)

    def _make(self, prefix: str) -> tuple[str, str]:
        if prefix != "summit":
            return _create(prefix)
        with self._lock:
            if self._template is None:
                name, url = _create("summit_template")
                db.migrate(url)
                self._template = name
        return _create(prefix, self._template)

    def _serve(self) -> None:
        while (work := self._work.get()) is not None:
            # On failure a test makes its own database, and the server says why there.
            with contextlib.suppress(psycopg.Error):
                work()


@pytest.fixture(scope="session")
def scratch_databases() -> Iterator[ScratchDatabases]:
    databases = ScratchDatabases()
    yield databases
    databases.close()


@pytest.fixture
def make_database(scratch_databases: ScratchDatabases) -> Iterator[Callable[[str], str]]:
    """Create a scratch database (dropped after the test) and return its URL; "summit"
    makes a migrated summit database."""
    created: list[str] = []

    def make(prefix: str = "t") -> str:
        name, url = scratch_databases.take(prefix)
        created.append(name)
        return url

    yield make
    for name in created:
        scratch_databases.drop_later(name)


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
    return make_database("summit")


@pytest.fixture
def source_url(make_database: Callable[[str], str]) -> str:
    return make_database("src")


@pytest.fixture
def target_url(make_database: Callable[[str], str]) -> str:
    return make_database("dst")
