"""Per-pipeline advisory locks in the summit database, for steps that must not interleave
across processes (API workers, the daemon's sensor ticks, run workers).

- `LAUNCH`: look up a pipeline's waiting runs and launch one, one request at a time.
- `CAPTURE`: install CDC capture on the source (sensor tick, run start, `cdc/start`)
  versus switch CDC off and remove it (`cdc/stop`, delete). Whoever installs checks,
  holding the lock, that CDC is still wanted, so capture removed is never put back by a
  tick or run that began before the switch.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import psycopg

from summit_etl.store.db import connect

Purpose = Literal["launch", "capture"]
LAUNCH: Purpose = "launch"
CAPTURE: Purpose = "capture"


def lock_pipeline(conn: psycopg.Connection, purpose: Purpose, pipeline_id: str) -> None:
    """Wait for and take the lock; it is released when `conn`'s transaction ends."""
    conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
        (f"summit-{purpose}:{pipeline_id}",),
    )


@contextmanager
def pipeline_lock(summit_url: str, purpose: Purpose, pipeline_id: str) -> Iterator[None]:
    """Hold the lock for the block, on a connection of its own."""
    with connect(summit_url, autocommit=False) as conn, conn.transaction():
        lock_pipeline(conn, purpose, pipeline_id)
        yield
