"""The application's start-up (api_shim/app.py)."""

from __future__ import annotations

import gc
import time

from starlette.testclient import TestClient

from api_shim.app import create_app
from api_shim.settings import ApiSettings

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
