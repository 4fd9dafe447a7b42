"""The answer store (api_shim/answers.py): a stored answer is served only while the summit
database's server has committed nothing since it was read, whoever writes."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import httpx
import psycopg
import pytest

from api_shim.answers import HIT, Answers
from summit_etl_tests.api_shim.conftest import Stack
from summit_etl_tests.support import run_sql


class CountedAnswers(Answers):
    """The real store, counting the snapshot readings it sends to the server."""

    queries = 0

    async def _read(self) -> str:
        self.queries += 1
        return await super()._read()


def test_requests_that_arrive_together_share_a_reading_taken_after_they_arrived(summit_url: str) -> None:
    async def scenario() -> None:
        answers = CountedAnswers(summit_url, budget_bytes=1 << 20)
        try:
            readings = await asyncio.gather(*(answers.reading() for _ in range(50)))
            assert len(set(readings)) == 1 and readings[0] is not None
            assert answers.queries <= 2  # the one under way, then the one they all share
            # A write committed after a reading: the next reading differs, and what was
            # stored under the old one is not served under the new one.
            stored_under = readings[0]
            assert answers.put(stored_under, "/alerts?", b"[]")
            assert answers.get(stored_under, "/alerts?") == b"[]"
            run_sql(summit_url, "CREATE TEMP TABLE answers_probe (x int); INSERT INTO answers_probe VALUES (1)")
            after = await answers.reading()
            assert after != stored_under
            assert answers.get(after, "/alerts?") is None
            assert not answers.put(stored_under, "/alerts?", b"[]"), "stored under a superseded reading"
        finally:
            await answers.close()

    asyncio.run(scenario())


def test_a_writer_in_progress_at_the_reading_invalidates_it_when_it_commits(summit_url: str) -> None:
    async def scenario() -> None:
        answers = Answers(summit_url, budget_bytes=1 << 20)
        try:
            with psycopg.connect(summit_url) as writer:
                writer.execute("CREATE TEMP TABLE answers_probe (x int)")
                writer.execute("INSERT INTO answers_probe VALUES (1)")  # holds an xid, uncommitted
                during = await answers.reading()
                assert answers.put(during, "/pipelines?", b"old")
                assert await answers.reading() == during  # nothing committed yet
                writer.commit()
            assert await answers.reading() != during
        finally:
            await answers.close()

    asyncio.run(scenario())


def test_the_store_keeps_to_its_budget_and_refuses_large_answers(summit_url: str) -> None:
    async def scenario() -> None:
        answers = Answers(summit_url, budget_bytes=1000)
        try:
            reading = await answers.reading()
            for n in range(5):
                assert answers.put(reading, f"/k{n}", b"x" * 240)
            assert answers.get(reading, "/k0") is None  # the oldest went first
            assert all(answers.get(reading, f"/k{n}") for n in range(1, 5))
            assert not answers.put(reading, "/big", b"x" * 251)  # over a quarter of the budget
        finally:
            await answers.close()

    asyncio.run(scenario())


def test_without_a_reachable_server_requests_go_uncached_and_fast(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        answers = Answers("postgresql://postgres@127.0.0.1:1/summit", budget_bytes=1 << 20)
        try:
            started = time.monotonic()
            assert await answers.reading() is None
            assert await answers.reading() is None  # within the retry pause: no new attempt
            assert time.monotonic() - started < 3
            assert answers.get(None, "/alerts?") is None and not answers.put(None, "/alerts?", b"[]")
            await asyncio.sleep(1.1)
            assert await answers.reading() is None  # tried again, failed again
        finally:
            await answers.close()

    with caplog.at_level(logging.INFO, logger="summit_etl.api"):
        asyncio.run(scenario())
    failures = [r for r in caplog.records if "no snapshot reading" in r.getMessage()]
    assert len(failures) == 1, "one warning per outage, not one per attempt"


def test_a_zero_budget_turns_the_store_off(summit_url: str) -> None:
    async def scenario() -> None:
        answers = Answers(summit_url, budget_bytes=0)
        assert await answers.reading() is None
        await answers.close()

    asyncio.run(scenario())


@pytest.fixture
def seeded_run(stack: Stack) -> str:
    run_id = f"answers-{uuid.uuid4().hex[:8]}"
    run_sql(stack.summit_url, "INSERT INTO pipeline_runs (id, pipeline_id, status, trigger, records_loaded) VALUES (%s, 'users-sync', 'success', 'manual', 0)", (run_id,))
    return run_id


def test_every_read_after_a_psql_write_sees_it_through_both_api_workers(api: httpx.Client, stack: Stack, seeded_run: str) -> None:
    path = f"/pipelines/users-sync/runs/{seeded_run}"
    try:
        # Until each worker has stored the answer and served it again.
        hits = 0
        for _ in range(40):
            response = api.get(path)
            assert response.status_code == 200
            hits += response.headers["cache-status"] == HIT
        assert hits > 0, "the run's answer was never served from the store"
        # Each write committed by psql is seen by the very next read, stored or not, on
        # whichever worker answers: 30 writes, each followed by 3 reads.
        for loaded in range(1, 31):
            run_sql(stack.summit_url, "UPDATE pipeline_runs SET records_loaded = %s WHERE id = %s", (loaded, seeded_run))
            for _ in range(3):
                assert api.get(path).json()["recordsLoaded"] == loaded
        # A write still in progress is not visible; its commit is, at once.
        with psycopg.connect(stack.summit_url) as writer:
            writer.execute("UPDATE pipeline_runs SET records_loaded = 999 WHERE id = %s", (seeded_run,))
            assert api.get(path).json()["recordsLoaded"] == 30
            writer.commit()
            assert api.get(path).json()["recordsLoaded"] == 999
    finally:
        run_sql(stack.summit_url, "DELETE FROM pipeline_runs WHERE id = %s", (seeded_run,))
    assert api.get(path).status_code == 404  # the delete, too; errors are never stored


def test_a_write_through_one_worker_is_read_back_through_the_other(api: httpx.Client, stack: Stack) -> None:
    """Acknowledging an alert, then reading the alerts: the two requests may meet different
    workers, and the read must show the acknowledgement."""
    keys = [f"answers-{uuid.uuid4().hex[:8]}" for _ in range(10)]
    try:
        for key in keys:
            (alert_id,) = run_sql(stack.summit_url, "INSERT INTO etl_alerts (rule, severity, pipeline_id, dedup_key, message) VALUES ('failure_rate', 'warning', 'users-sync', %s, 'answer store') RETURNING id", (key,))[0]
            before = {a["id"]: a for a in api.get("/alerts", params={"limit": 1000}).json()}
            assert before[alert_id]["acknowledgedBy"] is None
            assert api.post(f"/alerts/{alert_id}/ack").status_code == 200
            after = {a["id"]: a for a in api.get("/alerts", params={"limit": 1000}).json()}
            assert after[alert_id]["acknowledgedBy"] == "api"
    finally:
        for key in keys:
            run_sql(stack.summit_url, "DELETE FROM etl_alerts WHERE dedup_key = %s", (key,))
