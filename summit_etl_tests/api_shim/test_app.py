"""The application's start-up (api_shim/app.py)."""

from __future__ import annotations

import gc
import logging
import time

import pytest
from starlette.testclient import TestClient

from api_shim.app import create_app
from api_shim.dagster import DagsterClient
from api_shim.database import Database
from api_shim.settings import ApiSettings
from api_shim.snapshot import Snapshot

NOWHERE = ApiSettings(database_url="postgresql://127.0.0.1:1/none", dagster_graphql_url="http://127.0.0.1:1/graphql")


def test_start_up_puts_what_it_built_out_of_the_collectors_sight() -> None:
    """A full collection over the modules start-up imported paused a worker for 100-150 ms
    under load; frozen, they are not scanned again."""
    gc.unfreeze()
    try:
        with TestClient(create_app(NOWHERE)):
            assert gc.get_freeze_count() > 50_000  # the imported modules' objects
            started = time.perf_counter()
            gc.collect()
            assert time.perf_counter() - started < 0.05
    finally:
        gc.unfreeze()


def test_a_refresh_that_outlives_the_shutdown_ends_without_a_word(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The lifespan closes the clients while the refresh thread may still be using them
    (cancelling its task does not stop the thread): that failure is expected then."""
    db = Database(NOWHERE.database_url)
    dagster = DagsterClient(NOWHERE.dagster_graphql_url, 1.0)
    snapshot = Snapshot(NOWHERE, db, dagster)
    db.close()
    dagster.close()

    def refresh_logs() -> list[str]:
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="summit_etl.api"):
            snapshot.refresh()
        return [r.getMessage() for r in caplog.records if r.name == "summit_etl.api"]

    assert "the API's status refresh failed" in refresh_logs()  # closed while serving
    snapshot.stop()
    assert refresh_logs() == []  # closed at shutdown
    assert snapshot.reading is None
