"""Launching runs and backfills with a bounded queue.

Dagster runs one run per pipeline at a time (dagster.yaml: a concurrency limit on the
pipeline tag); the rest wait in its queue. A pipeline never has more than one waiting run
of a kind: an execute while one waits returns that run (a waiting full reload serves a
plain execute too), a backfill while one waits returns that backfill (a partitioned one
a partitioned one). A transaction-level advisory lock in the summit database makes
look-up and launch one step across API workers.

A partitioned backfill runs every partition of the pipeline's slices job
(orchestration/slices.py); its runs carry the slice tag, not the pipeline tag, so Dagster
starts them together, and they wait for a running run of the pipeline on the target's lock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from psycopg import Connection

from api_shim.dagster import DagsterClient
from summit_etl.orchestration.keys import (
    BACKFILL_TAG,
    FULL_RELOAD_TAG,
    PIPELINE_TAG,
    SLICE_TAG,
    TRIGGER_TAG,
    job_name,
    run_trigger,
    slices_job_name,
)
from summit_etl.store import runs as run_store
from summit_etl.store.locks import LAUNCH, lock_pipeline

QUEUED = ["QUEUED", "NOT_STARTED"]
ACTIVE = ["STARTING", "STARTED", "CANCELING"]
# How long a CDC switch-off waits for a live run beyond the run's own check interval:
# the batch in hand is applied and confirmed first.
LIVE_RUN_GRACE_SECONDS = 30.0


@dataclass(frozen=True)
class Launch:
    """What a launch request got: its run (or backfill), whether it was already waiting,
    and the run it waits behind, if any."""

    id: str
    reused: bool
    behind: str | None

    def note(self, what: str) -> dict[str, Any]:
        """The answer's fields that say how the request was queued."""
        if self.reused:
            message = f"{what} {self.id} was already queued for this pipeline; returned it"
        elif self.behind:
            message = f"queued: it starts when run {self.behind} of this pipeline ends"
        else:
            return {}
        return {"queued": True, "queuedBehind": self.behind, "message": message}


def _tags(run: dict[str, Any]) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["tags"]}


def _is_full(tags: dict[str, str]) -> bool:
    return tags.get(FULL_RELOAD_TAG) == "true" or BACKFILL_TAG in tags


def _ahead(runs: list[dict[str, Any]], run_id: str | None) -> str | None:
    """The run a new or waiting run waits for: the active one, else the oldest waiting."""
    active = [r["runId"] for r in runs if r["status"] in ACTIVE]
    waiting = [r["runId"] for r in reversed(runs) if r["status"] in QUEUED and r["runId"] != run_id]
    return next(iter(active + waiting), None)


def launch_run(
    conn: Connection, dagster: DagsterClient, pipeline_id: str, full_reload: bool
) -> Launch:
    """Launch an execute (recorded `pending`), or return the waiting run that serves it."""
    with conn.transaction():
        lock_pipeline(conn, LAUNCH, pipeline_id)
        runs = dagster.runs(tags={PIPELINE_TAG: pipeline_id}, statuses=QUEUED + ACTIVE)
        for run in reversed(runs):  # oldest first: the one that starts next
            tags = _tags(run)
            if run["status"] in QUEUED and (_is_full(tags) or not full_reload):
                run_store.record_pending(
                    conn, run["runId"], pipeline_id, run_trigger(tags), _is_full(tags)
                )
                return Launch(run["runId"], True, _ahead(runs, run["runId"]))
        tags = {TRIGGER_TAG: "manual", FULL_RELOAD_TAG: "true" if full_reload else "false"}
        run_id = dagster.launch_run(job_name(pipeline_id), tags)
        run_store.record_pending(conn, run_id, pipeline_id, "manual", full_reload)
        return Launch(run_id, False, _ahead(runs, None))


def launch_backfill(
    conn: Connection,
    dagster: DagsterClient,
    pipeline_id: str,
    asset_path: list[str],
    *,
    partitioned: bool = False,
) -> Launch:
    """Launch a full-reload backfill (`partitioned`: of every slice), or return the
    pipeline's backfill of that kind still waiting."""
    kind = SLICE_TAG if partitioned else PIPELINE_TAG
    with conn.transaction():
        lock_pipeline(conn, LAUNCH, pipeline_id)
        for backfill in dagster.backfills("REQUESTED"):
            # No run yet, or only waiting ones: the backfill has not started loading.
            waiting = all(r["status"] in QUEUED for r in backfill["runs"])
            if _tags(backfill).get(kind) == pipeline_id and waiting:
                return Launch(backfill["id"], True, None)
        runs = dagster.runs(tags={PIPELINE_TAG: pipeline_id}, statuses=QUEUED + ACTIVE)
        if partitioned:
            backfill_id = dagster.launch_job_backfill(
                slices_job_name(pipeline_id), {SLICE_TAG: pipeline_id, TRIGGER_TAG: "backfill"}
            )
        else:
            backfill_id = dagster.launch_asset_backfill(
                asset_path,
                {PIPELINE_TAG: pipeline_id, TRIGGER_TAG: "backfill", FULL_RELOAD_TAG: "true"},
            )
        return Launch(backfill_id, False, _ahead(runs, None))


def wait_for_live_cdc_runs(dagster: DagsterClient, pipeline_id: str, check_every: float) -> bool:
    """Wait until no run of the pipeline is active; False when one still is after the grace.

    A live CDC run notices that CDC was switched off (sensor stopped, pipeline deleted)
    within `check_every` seconds (cdc.pollIntervalSeconds) and ends after the batch in
    hand; until then it holds the replication slot, which cannot be dropped under it."""
    deadline = time.monotonic() + check_every + LIVE_RUN_GRACE_SECONDS
    while dagster.runs(tags={PIPELINE_TAG: pipeline_id}, statuses=ACTIVE):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)
    return True
