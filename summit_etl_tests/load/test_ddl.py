"""A full reload's swap (or, where a swap would lose something, its TRUNCATE) behind a
long reader: it waits at most `lockSeconds` per attempt, lets the readers queued behind
it through between attempts, and gives up with a clear error."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import psycopg
import pytest

from summit_etl.engine import RunRequest, StageFailure, run_pipeline
from summit_etl.load import ddl
from summit_etl_tests.support import run_sql
from summit_etl_tests.test_engine import SOURCE_DDL, fill, pipeline

TIMEOUTS = {"lockSeconds": 1}


@pytest.fixture
def loaded(source_url: str, target_url: str, summit_url: str) -> Any:
    """A bulk pipeline whose target is already loaded, so the next run replaces it."""
    run_sql(source_url, SOURCE_DDL)
    fill(source_url, 100)
    config = pipeline(source_url, target_url, timeouts=TIMEOUTS)
    run_pipeline(config, RunRequest(run_id=str(uuid.uuid4())), summit_url)
    return config


# A table the target references: dropping the replaced table drops its foreign key, which
# locks this table ACCESS EXCLUSIVE, so a reader of it holds the swap up too; the swap takes
# both locks in one attempt, so between attempts readers of either get through.
REFERENCED = (
    "CREATE TABLE dw.qtys (qty integer PRIMARY KEY);"
    " INSERT INTO dw.qtys SELECT generate_series(0, 6);"
    " ALTER TABLE dw.items ADD CONSTRAINT items_qty_fk FOREIGN KEY (qty) REFERENCES dw.qtys"
)


def replace_waiting(url: str) -> bool:
    """The run's lock-retrying DDL (the swap's rename or a TRUNCATE) waits for its lock."""
    rows = run_sql(
        url,
        "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'DO %%'",
    )
    return bool(rows)


def read_seconds(url: str, table: str) -> float:
    """How long a newcomer's read of `table` takes while the swap is retrying."""
    deadline = time.monotonic() + 10
    while not replace_waiting(url):
        assert time.monotonic() < deadline, "the run never queued its swap"
        time.sleep(0.05)
    started = time.monotonic()
    run_sql(url, f"SELECT count(*) FROM {table}")
    return time.monotonic() - started


@pytest.mark.parametrize(
    "read",
    [
        "dw.items",  # the rename waits for it
        "dw.qtys",  # the drop of the replaced table (its foreign key) waits for it
    ],
)
def test_swap_behind_a_long_reader_retries_and_lets_readers_through(
    read: str, loaded: Any, target_url: str, summit_url: str
) -> None:
    run_sql(target_url, REFERENCED)
    outcome: dict[str, Any] = {}
    with psycopg.connect(target_url) as long_reader:
        long_reader.execute(f"SELECT count(*) FROM {read}").fetchone()
        worker = threading.Thread(
            target=lambda: outcome.update(
                run=run_pipeline(loaded, RunRequest(run_id=str(uuid.uuid4())), summit_url)
            )
        )
        worker.start()
        try:
            # Queued behind the swap, a reader of the target or of the table the long
            # reader holds waits at most one lock timeout (1 s), and one attempt after the
            # other: the second read waits for the second attempt.
            assert read_seconds(target_url, "dw.items") < 1.8
            assert read_seconds(target_url, read) < 1.8
        finally:
            long_reader.commit()
        worker.join(30)
    assert outcome["run"].status == "success"
    assert run_sql(target_url, "SELECT count(*) FROM dw.items") == [(100,)]
    assert run_sql(  # the reloaded table kept the foreign key
        target_url,
        "SELECT count(*) FROM pg_constraint WHERE conname = 'items_qty_fk'"
        " AND conrelid = 'dw.items'::regclass",
    ) == [(1,)]


@pytest.mark.parametrize(
    ("view", "read", "waited_for"),
    [
        (False, "dw.items", "swapping in the reloaded dw.items"),
        (False, "dw.qtys", "swapping in the reloaded dw.items"),
        # A view on the target makes the reload truncate in place (load/shadow.py).
        (True, "dw.items", "TRUNCATE dw.items"),
    ],
)
def test_replace_that_never_gets_its_lock_fails_the_run_at_loading(
    view: bool, read: str, waited_for: str, loaded: Any, target_url: str, summit_url: str
) -> None:
    run_sql(target_url, REFERENCED)
    if view:
        run_sql(target_url, "CREATE VIEW dw.items_view AS SELECT * FROM dw.items")
    with psycopg.connect(target_url) as long_reader:
        long_reader.execute(f"SELECT count(*) FROM {read}").fetchone()
        _fails_at_loading(loaded, waited_for, target_url, summit_url)
        long_reader.rollback()
    assert run_sql(target_url, "SELECT count(*) FROM dw.items") == [(100,)]  # untouched


def _fails_at_loading(loaded: Any, waited_for: str, target_url: str, summit_url: str) -> None:
    started = time.monotonic()
    with pytest.raises(StageFailure) as info:
        run_pipeline(loaded, RunRequest(run_id=str(uuid.uuid4())), summit_url)
    seconds = time.monotonic() - started
    assert info.value.stage == "loading"
    message = str(info.value.cause)
    assert message.startswith("lock timeout after 1 s while loading into dw.items")
    assert (
        f"{waited_for}: lock not granted within lock_timeout (1s) in {ddl.ATTEMPTS} attempts"
        in message
    )
    # Three waits of 1 s and pauses of 0.5 s and 1 s, not an endless queue.
    assert 3 <= seconds < 10
