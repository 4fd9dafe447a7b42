"""Replay of quarantined rows on real PostgreSQL: NaN and infinities come back exactly, and
two replays of one run racing for the target's lock load the rows once, whether the
target is the summit database (marked in the load's transaction) or another (claimed)."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import psycopg
import pytest

from summit_etl.engine import RunRequest, run_pipeline
from summit_etl.identifiers import TableName
from summit_etl.load.locks import target_lock
from summit_etl.quality.replay import ReplayConflict, replay_quarantine
from summit_etl.registry import parse_pipeline
from summit_etl_tests.support import run_sql

VALUES = [(1, "1.5"), (2, "NaN"), (3, "Infinity"), (4, "-Infinity"), (5, "0.1")]


def readings(source: str, target: str | None, *, held: bool) -> Any:
    rules = [{"id": "checked", "dimension": "validity", "action": "quarantine",
              "rule": {"type": "accepted_values", "config": {"field": "ok", "values": [True]}}}]
    loading = {"strategy": "upsert", "targetTable": "dw.readings", "upsertKey": ["id"], "createTable": True}
    return parse_pipeline({
        "id": "readings", "name": "Readings", "source": {"url": source, "table": "public.readings"},
        "quality": {"rules": rules if held else []},
        "loading": {**loading, **({"targetUrl": target} if target else {})},
    }, "test")


def waiting_for_lock(url: str) -> int:
    return int(run_sql(url, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")[0][0])


@pytest.mark.parametrize("where", ["summit", "elsewhere"])
def test_replay_restores_non_finite_floats_and_a_double_replay_loads_once(
        source_url: str, target_url: str, summit_url: str, where: str) -> None:
    run_sql(source_url, "CREATE TABLE public.readings (id bigint PRIMARY KEY, score double precision, ok boolean)")
    run_sql(source_url, "INSERT INTO public.readings SELECT v.id, v.score::float8, v.id = 1 FROM (VALUES "
                        + ", ".join(f"({i}, '{s}')" for i, s in VALUES) + ") AS v(id, score)")
    target = summit_url if where == "summit" else target_url
    run_id = str(uuid.uuid4())
    outcome = run_pipeline(readings(source_url, None if where == "summit" else target, held=True),
                           RunRequest(run_id=run_id), summit_url)
    assert (outcome.counts.records_loaded, outcome.counts.records_quarantined) == (1, 4)
    stored = run_sql(summit_url, "SELECT record->>'score', jsonb_typeof(record->'score') FROM etl_quarantine ORDER BY id")
    assert stored == [("NaN", "string"), ("Infinity", "string"), ("-Infinity", "string"), ("0.1", "number")]

    # Two replays race: the target's lock is held until both are on their way.
    fixed = readings(source_url, None if where == "summit" else target, held=False)
    results: list[Any] = []

    def replay() -> None:
        try:
            results.append(replay_quarantine(fixed, run_id, summit_url).replayed)
        except ReplayConflict as conflict:
            results.append(conflict)

    with psycopg.connect(target) as lock:
        lock.execute(target_lock(TableName.parse("dw.readings")))
        threads = [threading.Thread(target=replay) for _ in range(2)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while waiting_for_lock(target) + len(results) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    for thread in threads:
        thread.join(60)

    if where == "summit":  # both loaded; the later one found its rows taken and rolled back
        assert sorted(results, key=str)[0] == 4 and isinstance(sorted(results, key=str)[1], ReplayConflict)
    else:  # the later one found nothing left to claim
        assert sorted(results) == [0, 4]
    assert run_sql(target, "SELECT id, score::text FROM dw.readings ORDER BY id") == VALUES
    assert run_sql(target, "SELECT count(*) FROM dw.readings WHERE score = 0.1::float8") == [(1,)]
    assert run_sql(summit_url, "SELECT DISTINCT status, replayed_at IS NOT NULL FROM etl_quarantine") == [("replayed", True)]
