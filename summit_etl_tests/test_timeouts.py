"""Connect, statement and lock timeouts: a source that stops answering fails the run with
its stage and a message naming the timeout, instead of hanging it."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import adbc_driver_postgresql.dbapi as adbc
import psycopg
import pytest

from summit_etl.config import TimeoutsConfig
from summit_etl.engine import RunRequest, StageFailure, run_pipeline
from summit_etl.registry import parse_pipeline
from summit_etl.timeouts import timed_url
from summit_etl_tests.cdc.cdc_support import create_source as create_cdc_source
from summit_etl_tests.cdc.cdc_support import raw_pipeline
from summit_etl_tests.support import run_sql
from summit_etl_tests.test_engine import pipeline

FAST = {"connectSeconds": 2, "statementSeconds": 1, "lockSeconds": 5}


def settings(url: str) -> tuple[str, str]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT current_setting('statement_timeout'), current_setting('lock_timeout')"
        ).fetchone()
    assert row is not None
    return row[0], row[1]


def test_the_timeouts_reach_psycopg_and_adbc_sessions(source_url: str) -> None:
    url = timed_url(source_url, TimeoutsConfig(statement_seconds=42, lock_seconds=1.5))
    assert settings(url) == ("42s", "1500ms")
    with adbc.connect(url) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT current_setting('lock_timeout')")
        assert cursor.fetchall() == [("1500ms",)]
    keywords = psycopg.conninfo.make_conninfo(source_url)  # the key=value form
    assert settings(timed_url(keywords, TimeoutsConfig(statement_seconds=7))) == ("7s", "10s")


def test_a_setting_already_in_the_url_wins(source_url: str) -> None:
    own = source_url + "?options=-c%20lock_timeout%3D3s&connect_timeout=5"
    url = timed_url(own, TimeoutsConfig())
    assert "connect_timeout=5" in url and "connect_timeout=10" not in url
    assert settings(url) == ("1h", "3s")


def failed_run(raw_config: Any, summit_url: str) -> tuple[StageFailure, float, list[dict]]:
    run_id = str(uuid.uuid4())
    started = time.monotonic()
    with pytest.raises(StageFailure) as info:
        run_pipeline(raw_config, RunRequest(run_id=run_id), summit_url)
    seconds = time.monotonic() - started
    status, errors = run_sql(
        summit_url, "SELECT status, errors FROM pipeline_runs WHERE id = %s", (run_id,)
    )[0]
    assert status == "failed"
    return info.value, seconds, errors


@pytest.fixture
def source(source_url: str) -> str:
    run_sql(source_url, "CREATE TABLE public.items (id bigint PRIMARY KEY, name text)")
    run_sql(source_url, "INSERT INTO public.items SELECT g, 'n' || g FROM generate_series(1, 50) g")
    return source_url


@pytest.fixture
def locked_source(source: str) -> Iterator[str]:
    """The source table locked by another session's open transaction."""
    with psycopg.connect(source) as holder:
        holder.execute("LOCK TABLE public.items IN ACCESS EXCLUSIVE MODE")
        yield source


def test_a_locked_source_fails_the_run_with_a_lock_timeout(
    locked_source: str, target_url: str, summit_url: str
) -> None:
    config = pipeline(locked_source, target_url, timeouts={"statementSeconds": 5, "lockSeconds": 1})
    failure, seconds, errors = failed_run(config, summit_url)
    assert failure.stage == "extraction"
    expected = "lock timeout after 1 s while extracting from public.items"
    assert str(failure.cause).startswith(expected)
    assert errors[0]["stage"] == "extraction" and errors[0]["message"].startswith(expected)
    assert seconds < 15


def test_a_source_query_that_never_ends_fails_with_a_statement_timeout(
    source: str, target_url: str, summit_url: str
) -> None:
    slow = {"url": source, "query": "SELECT i.* FROM public.items i, pg_sleep(30)"}
    config = pipeline(source, target_url, source=slow, timeouts=FAST)
    failure, seconds, errors = failed_run(config, summit_url)
    expected = "statement timeout after 1 s while extracting from query"
    assert failure.stage == "extraction" and str(failure.cause).startswith(expected)
    assert errors[0]["message"].startswith(expected)
    assert seconds < 15


def test_a_server_that_accepts_but_never_answers_fails_with_a_connect_timeout(
    target_url: str, summit_url: str
) -> None:
    with socket.socket() as silent:  # the kernel completes the handshake; nobody answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        url = f"postgresql://postgres@127.0.0.1:{port}/nowhere"
        config = pipeline(url, target_url, timeouts=FAST)
        failure, seconds, errors = failed_run(config, summit_url)
    expected = "connect timeout after 2 s while extracting from public.items"
    assert failure.stage == "extraction" and str(failure.cause).startswith(expected)
    assert errors[0]["message"].startswith(expected)
    assert seconds < 15


def test_timeouts_are_validated_with_the_field_named() -> None:
    with pytest.raises(ValueError, match="timeouts.lockSeconds"):
        pipeline("postgresql://x/y", "postgresql://x/z", timeouts={"lockSeconds": 0})
    with pytest.raises(ValueError, match="timeouts.statementSecond"):
        pipeline("postgresql://x/y", "postgresql://x/z", timeouts={"statementSecond": 5})


def test_a_cdc_run_on_a_locked_source_fails_with_a_lock_timeout(
    source_url: str, target_url: str, summit_url: str
) -> None:
    create_cdc_source(source_url, rows=3)
    raw = raw_pipeline("trigger", source_url, target_url)
    config = parse_pipeline({**raw, "timeouts": {"lockSeconds": 1}}, "test")
    with psycopg.connect(source_url) as holder:  # installing the trigger needs a lock
        holder.execute("LOCK TABLE public.users IN ACCESS EXCLUSIVE MODE")
        failure, seconds, errors = failed_run(config, summit_url)
    expected = "lock timeout after 1 s while extracting from public.users"
    assert failure.stage == "extraction" and str(failure.cause).startswith(expected)
    assert errors[0]["message"].startswith(expected)
    assert seconds < 15
