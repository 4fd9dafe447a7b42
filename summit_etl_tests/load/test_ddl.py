"""A full reload's swap (or, where a swap would lose something, its TRUNCATE) behind a
long transaction: it waits at most `lockSeconds` per attempt, lets the sessions queued
behind it through between attempts, and gives up with a clear error."""

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
# both locks in one attempt, so between attempts readers of either get through. Adding the
# key to the shadow locks it against writers (SHARE ROW EXCLUSIVE), so a writer of it holds
# that up, and that gives way to writers in the same way.
REFERENCED = (
    "CREATE TABLE dw.qtys (qty integer PRIMARY KEY);"
    " INSERT INTO dw.qtys SELECT generate_series(0, 6);"
    " ALTER TABLE dw.items ADD CONSTRAINT items_qty_fk FOREIGN KEY (qty) REFERENCES dw.qtys"
)
READ_ITEMS = "SELECT count(*) FROM dw.items"
READ_QTYS = "SELECT count(*) FROM dw.qtys"
WRITE_QTYS = "INSERT INTO dw.qtys VALUES (7)"
SWAP = "swapping in the reloaded dw.items"


def replace_waiting(url: str) -> bool:
    """The run's lock-retrying DDL (the swap's rename or a TRUNCATE) waits for its lock."""
    rows = run_sql(
        url,
        "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'DO %%'",
    )
    return bool(rows)


def newcomer_seconds(url: str, statement: str) -> float:
    """How long a newcomer's `statement` takes while the run's DDL is retrying."""
    deadline = time.monotonic() + 10
    while not replace_waiting(url):
        assert time.monotonic() < deadline, "the run never queued its DDL"
        time.sleep(0.05)
    started = time.monotonic()
    run_sql(url, statement)
    return time.monotonic() - started


@pytest.mark.parametrize(
    ("hold", "newcomer"),
    [
        (READ_ITEMS, READ_ITEMS),  # the rename waits for it
        (READ_QTYS, READ_QTYS),  # the drop of the replaced table (its foreign key) waits for it
        # Adding the foreign key to the shadow waits for it (another key: no row lock).
        (WRITE_QTYS, "INSERT INTO dw.qtys VALUES (8)"),
    ],
)
def test_swap_behind_a_long_transaction_retries_and_lets_newcomers_through(
    hold: str, newcomer: str, loaded: Any, target_url: str, summit_url: str
) -> None:
    run_sql(target_url, REFERENCED)
    outcome: dict[str, Any] = {}
    with psycopg.connect(target_url) as long_transaction:
        long_transaction.execute(hold)
        worker = threading.Thread(
            target=lambda: outcome.update(
                run=run_pipeline(loaded, RunRequest(run_id=str(uuid.uuid4())), summit_url)
            )
        )
        worker.start()
        try:
            # Queued behind the run's DDL, a reader of the target, or a newcomer doing what
            # the long transaction does, waits at most one lock timeout (1 s), and one
            # attempt after the other: the second waits for the second attempt.
            assert newcomer_seconds(target_url, READ_ITEMS) < 1.8
            assert newcomer_seconds(target_url, newcomer) < 1.8
        finally:
            long_transaction.commit()
        worker.join(30)
    assert outcome["run"].status == "success"
    assert run_sql(target_url, "SELECT count(*) FROM dw.items") == [(100,)]
    assert run_sql(  # the reloaded table kept the foreign key, validated
        target_url,
        "SELECT convalidated FROM pg_constraint WHERE conname = 'items_qty_fk'"
        " AND conrelid = 'dw.items'::regclass",
    ) == [(True,)]


@pytest.mark.parametrize(
    ("view", "hold", "waited_for"),
    [
        (False, READ_ITEMS, SWAP),
        (False, READ_QTYS, SWAP),
        (False, WRITE_QTYS, "adding the foreign keys of the reloaded dw.items"),
        # A view on the target makes the reload truncate in place (load/shadow.py).
        (True, READ_ITEMS, "TRUNCATE dw.items"),
    ],
)
def test_replace_that_never_gets_its_lock_fails_the_run_at_loading(
    view: bool, hold: str, waited_for: str, loaded: Any, target_url: str, summit_url: str
) -> None:
    run_sql(target_url, REFERENCED)
    if view:
        run_sql(target_url, "CREATE VIEW dw.items_view AS SELECT * FROM dw.items")
    with psycopg.connect(target_url) as long_transaction:
        long_transaction.execute(hold)
        _fails_at_loading(loaded, waited_for, target_url, summit_url)
        long_transaction.rollback()
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
