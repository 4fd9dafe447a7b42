"""Run workers forked from a warm process instead of spawned fresh.

Dagster's gRPC code server starts every run in a newly spawned interpreter (its
multiprocessing context is fixed to "spawn"), which imports Dagster, its PostgreSQL storage
and the engine all over again: on a quiet 2-core machine about 2.5 s of the 4.5 s from
execute to `running` (docs/benchmarks.md, "Run start"). In the code server's process, with
`SUMMIT_WARM_RUN_WORKERS=1` (`summit-etl serve` sets it), that context is pointed at a
forkserver that imported those modules once, started in the background as the code server
loads (a pipeline created and run at once would otherwise wait the 1.5-3 s of its start:
docs/benchmarks.md, "Full reload through the service"). Each run still gets a process of its own,
forked from one with no threads and no pipeline loaded: the run worker builds its
definitions from the pipelines of that moment, as a spawned one does.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from multiprocessing import forkserver

log = logging.getLogger(__name__)

ENV = "SUMMIT_WARM_RUN_WORKERS"
# What a run worker imports before its run starts; never summit_etl.definitions, whose
# import loads the pipelines (a forked worker would run a stale list).
PRELOAD = [
    "dagster",
    "dagster._grpc.impl",
    "dagster._core.secrets.env_file",
    "dagster_postgres",
    "psycopg2.extras",
    "upath.core",
    "summit_etl.engine",
    "summit_etl.orchestration.factory",
]


def warm_run_workers() -> bool:
    """Have this process's spawned run workers forked from a warm forkserver; True when
    it applies (the code server's own process, asked for by the environment)."""
    # Run workers import the definitions too; they are children and start no runs.
    if os.environ.get(ENV) != "1" or multiprocessing.parent_process() is not None:
        return False
    spawn, warm = multiprocessing.get_context("spawn"), multiprocessing.get_context("forkserver")
    if spawn.Process is warm.Process:
        return True
    warm.set_forkserver_preload(PRELOAD)
    # The context object Dagster's server holds: its Process now comes from the forkserver.
    setattr(spawn, "Process", warm.Process)  # noqa: B010 (an instance attribute on purpose)
    # Started now, beside the code server's own loading: every pipeline create or delete
    # reloads the code server, and its first run would wait for this start. A reload that
    # no run follows pays a second or two of CPU; an idle forkserver only memory.
    threading.Thread(target=forkserver.ensure_running, name="warm-run-workers", daemon=True).start()
    log.info("run workers fork from a warm process", extra={"preloaded": PRELOAD})
    return True


def forked_warm() -> bool:
    """Whether this run worker was forked from the warm process: its OS parent is then the
    forkserver, not the code server that started it (a spawned worker's parent)."""
    parent = multiprocessing.parent_process()
    return parent is not None and parent.pid != os.getppid()
