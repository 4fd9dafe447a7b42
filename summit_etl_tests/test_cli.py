"""The service command: URL handling, and the processes `serve` starts and stops."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from summit_etl.cli import (
    dagster_storage_url,
    free_port,
    stop_children,
    wait_for_code_server,
    with_database,
)


def test_with_database_keeps_server_credentials_and_options() -> None:
    url = "postgresql://etl:s3cret@db.example:6543/summit?sslmode=require"
    assert with_database(url, "summit_demo") == "postgresql://etl:s3cret@db.example:6543/summit_demo?sslmode=require"


def test_dagster_storage_gets_its_own_database_on_psycopg2() -> None:
    assert dagster_storage_url("postgresql://localhost:5432/summit") == (
        "postgresql+psycopg2://localhost:5432/summit_dagster"
    )


def test_stop_children_terminates_and_kills_what_ignores_sigterm() -> None:
    polite = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    stubborn = subprocess.Popen(
        [sys.executable, "-c", "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
    )
    assert stubborn.stdout is not None and stubborn.stdout.readline() == b"ready\n"
    started = time.monotonic()
    stop_children([polite, stubborn], deadline=time.monotonic() + 2)
    assert polite.returncode == -signal.SIGTERM and stubborn.returncode == -signal.SIGKILL
    assert time.monotonic() - started < 10


def test_a_code_server_that_dies_stops_serve_with_its_exit_code() -> None:
    dead = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    dead.wait()
    with pytest.raises(SystemExit, match="code server exited with 3"):
        wait_for_code_server(dead, "127.0.0.1", free_port("127.0.0.1"))
