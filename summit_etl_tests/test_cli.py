"""The service command: URL handling, and the processes `serve` starts and stops."""

from __future__ import annotations

import os
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


def test_stop_children_terminates_then_kills_each_process_group() -> None:
    polite = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    # Exits at SIGTERM but leaves a process of its own behind, as a code server's
    # definitions process can; and one that ignores SIGTERM.
    leaver = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, sys, time; child = subprocess.Popen([sys.executable, '-c', "
         "'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)']); "
         "print(child.pid, flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, start_new_session=True,
    )
    stubborn = subprocess.Popen(
        [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, start_new_session=True,
    )
    assert leaver.stdout is not None and stubborn.stdout is not None
    grandchild = int(leaver.stdout.readline())
    assert stubborn.stdout.readline() == b"ready\n"
    started = time.monotonic()
    stop_children([polite, leaver, stubborn], deadline=time.monotonic() + 2)
    assert polite.returncode == -signal.SIGTERM and leaver.returncode == -signal.SIGTERM
    assert stubborn.returncode == -signal.SIGKILL
    assert time.monotonic() - started < 10
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):  # gone with its group (reaped by init)
        os.kill(grandchild, 0)


def test_a_code_server_that_dies_stops_serve_with_its_exit_code() -> None:
    dead = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    dead.wait()
    with pytest.raises(SystemExit, match="code server exited with 3"):
        wait_for_code_server(dead, "127.0.0.1", free_port("127.0.0.1"))
