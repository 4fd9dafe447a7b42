"""A code server's view for test_run_workers.py: warm up (or not), start a process as
Dagster's gRPC server does, from the spawn context, and print what that process found
already imported. Run as `python -m summit_etl_tests.orchestration.run_worker_probe`."""

from __future__ import annotations

import json
import multiprocessing
import sys
from multiprocessing.queues import Queue

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


def main() -> None:
    warmed = warm_run_workers()
    spawn = multiprocessing.get_context("spawn")
    queue = spawn.Queue()
    worker = spawn.Process(target=report, args=(queue,))
    worker.start()
    found = queue.get(timeout=120)
    worker.join(60)
    print(json.dumps({"warmed": warmed, "exitcode": worker.exitcode, **found}))


if __name__ == "__main__":
    main()
