"""A code server's view for test_run_workers.py: warm up (or not), start a process as
Dagster's gRPC server does, from the spawn context, and print what that process found
already imported. Run as `python -m summit_etl_tests.orchestration.run_worker_probe`."""

from __future__ import annotations

import json
import multiprocessing
import sys
import time
from multiprocessing.queues import Queue

import psutil

from summit_etl.orchestration.run_workers import forked_warm, warm_run_workers


def report(queue: Queue) -> None:
    queue.put(
        {
            "engine": "summit_etl.engine" in sys.modules,
            "dagster_postgres": "dagster_postgres" in sys.modules,
            "definitions": "summit_etl.definitions" in sys.modules,
            "parent": multiprocessing.parent_process() is not None,
            "forked_warm": forked_warm(),
        }
    )


def forkserver_running(within: float) -> bool:
    """Whether a forkserver child of this process appears within `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for child in psutil.Process().children():
            if "multiprocessing.forkserver" in " ".join(child.cmdline()):
                return True
        time.sleep(0.1)
    return False


def main() -> None:
    warmed = warm_run_workers()
    # Before any process is asked for: the warm process starts with the code server.
    started_before_a_run = forkserver_running(within=5.0 if warmed else 1.0)
    spawn = multiprocessing.get_context("spawn")
    queue = spawn.Queue()
    worker = spawn.Process(target=report, args=(queue,))
    worker.start()
    found = queue.get(timeout=120)
    worker.join(60)
    print(
        json.dumps(
            {
                "warmed": warmed,
                "started_before_a_run": started_before_a_run,
                "exitcode": worker.exitcode,
                **found,
            }
        )
    )


if __name__ == "__main__":
    main()
