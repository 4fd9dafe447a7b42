"""Runs that Dagster ended without the engine recording their end (the run worker died, or
was killed): closed in `pipeline_runs` from Dagster's status and failure events.

The daemon's run-status sensors do the same every 10 s or so; the API's background refresh
(`api_shim/snapshot.py`) does it every pass, so `?wait=true` and the run routes see a
crashed run end within a second, without asking Dagster on the request path.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from api_shim.dagster import RUN_STATUS, DagsterClient
from api_shim.database import Database
from summit_etl.store import runs as run_store
from summit_etl.store.runs import RunError, dagster_failure


def reconcile_runs(db: Database, dagster: DagsterClient, timeout: float) -> list[str]:
    """Close the unfinished runs Dagster says have failed or were cancelled; their ids.

    No race with the engine: Dagster fails a run only after its worker has recorded (or
    failed to record) the result, `mark_ended_abnormally` leaves an ended run as is, and
    the engine's own end record replaces a `cancelled` written while it was still going.
    """
    with db.connection(timeout=timeout) as conn:
        unfinished = dict(run_store.unfinished(conn))
    if not unfinished:
        return []
    ended = [
        (run["runId"], RUN_STATUS[run["status"]])
        for run in dagster.runs(run_ids=list(unfinished), timeout=timeout)
        if RUN_STATUS.get(run["status"]) in ("failed", "cancelled")
    ]
    closed = []
    for run_id, status in ended:
        found = dagster.run(run_id, timeout=timeout) if status == "failed" else None
        failure = next(iter(found["failures"] if found else []), None)
        with db.connection(timeout=timeout) as conn:
            if run_store.mark_ended_abnormally(
                conn, run_id, unfinished[run_id], status, error_of(failure) if failure else None
            ):
                closed.append(run_id)
    return closed


def error_of(event: dict[str, Any]) -> RunError:
    """A Dagster failure event as the run's error entry (`details.source: dagster`)."""
    error = event.get("error") or {}
    # A step's error is Dagster's wrapper ("Error occurred while executing op"); its cause
    # is what the engine raised.
    return dagster_failure(
        event.get("message", ""),
        (error.get("cause") or error).get("message"),
        event["__typename"],
        event.get("stepKey"),
        _epoch_iso(event.get("timestamp")),
    )


def _epoch_iso(value: Any) -> str | None:
    """Dagster's event timestamps are epoch milliseconds, as text."""
    try:
        return datetime.fromtimestamp(float(value) / 1000).astimezone().isoformat()
    except (TypeError, ValueError):
        return None
