"""A run worker stand-in: one pipeline's Dagster job executed in a process of its own.

Dagster's run launcher starts a process per run; here a forkserver (started once, with
Dagster and Summit ETL already imported) forks a clean child per run, which saves each
killed run the seconds of imports on a two-core machine. The child runs the real job
(`execute_in_process` on an ephemeral instance) against the real databases; with a
failpoint set it SIGKILLs itself there.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from typing import Any

from dagster import DagsterInstance

from summit_etl.faults import ENV
from summit_etl.orchestration.factory import build_definitions
from summit_etl.orchestration.keys import job_name
from summit_etl.registry import Registry, sync_files_to_table

_PRELOAD = ["dagster", "summit_etl.orchestration.factory", "summit_etl_tests.faults.worker"]
_context = multiprocessing.get_context("forkserver")
_context.set_forkserver_preload(_PRELOAD)

KILLED = -signal.SIGKILL  # a Process' exitcode when SIGKILL ended it


def run_job(raw: dict[str, Any], summit_url: str) -> bool:
    """Run the pipeline's job once, as the run worker would; True when it succeeded."""
    registry = Registry()
    registry.add(raw, "fault suite", from_file=True)
    assert not registry.errors, registry.errors
    sync_files_to_table(registry, summit_url)
    job = build_definitions(registry, summit_url).resolve_job_def(job_name(raw["id"]))
    with DagsterInstance.ephemeral() as instance:
        return job.execute_in_process(instance=instance, raise_on_error=False).success


def _child(raw: dict[str, Any], summit_url: str, failpoint: str | None) -> None:
    if failpoint is not None:
        os.environ[ENV] = failpoint
    raise SystemExit(0 if run_job(raw, summit_url) else 1)


def run_in_worker(
    raw: dict[str, Any], summit_url: str, failpoint: str | None = None
) -> multiprocessing.process.BaseProcess:
    """Start the run in a worker process and return it (running)."""
    process = _context.Process(target=_child, args=(raw, summit_url, failpoint))
    process.start()
    return process


def worker_exit(
    raw: dict[str, Any], summit_url: str, failpoint: str | None = None, timeout: float = 120
) -> int | None:
    """Run in a worker to its end; its exit code (KILLED when the failpoint fired)."""
    process = run_in_worker(raw, summit_url, failpoint)
    process.join(timeout)
    if process.is_alive():
        process.kill()
        process.join()
        raise AssertionError(f"the worker ran longer than {timeout} s")
    return process.exitcode
