"""What `/health` and `/metrics` answer, read in the background so that no read request waits
on Dagster (or on a dependency that hangs).

One task per API process refreshes a snapshot every `refresh_seconds`: the database and
Dagster checks, the daemons' heartbeats, the running CDC sensors, the metrics' counts and
(less often) the replication slots' retention. The same pass closes runs that Dagster ended
without the engine recording their end (`api_shim/reconcile.py`). The routes only read the
latest snapshot, rendered once per refresh.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from importlib.metadata import version
from typing import Any

import psycopg
from anyio import CapacityLimiter, move_on_after, to_thread

from api_shim import models
from api_shim.dagster import DagsterClient
from api_shim.database import Database
from api_shim.errors import ApiError
from api_shim.reconcile import reconcile_runs
from api_shim.serialize import rendered
from api_shim.settings import ApiSettings
from summit_etl.cdc.sources import slot_retention
from summit_etl.store import alerts as alert_store
from summit_etl.store import cdc_watermarks, quality_reports
from summit_etl.store import pipelines as pipeline_store
from summit_etl.store import runs as run_store

log = logging.getLogger("summit_etl.api")

VERSION = version("summit-etl")
# Asking every log_based source costs a connection each: read them less often.
RETENTION_EVERY_SECONDS = 5.0


@dataclass(frozen=True)
class Reading:
    """One refresh: the health answer and the metrics' values, as of `timestamp`."""

    taken: float  # time.monotonic() when the refresh ended
    timestamp: str
    dependencies: dict[str, dict[str, Any]]
    warnings: list[str]
    metrics: dict[str, Any] | None  # None: the database did not answer

    @cached_property
    def health(self) -> tuple[int, bytes]:
        down = [name for name, dep in self.dependencies.items() if dep["status"] != "up"]
        body: dict[str, Any] = {
            "status": "unhealthy" if down else "degraded" if self.warnings else "healthy",
            "timestamp": self.timestamp,
            "version": VERSION,
            "service": "etl-service",
            "dependencies": self.dependencies,
        }
        if down:
            body["error"] = f"dependency down: {', '.join(down)}"
        if self.warnings and not down:
            body["warnings"] = self.warnings
        return (503 if down else 200), rendered(models.Health, body)

    @cached_property
    def metrics_json(self) -> bytes | None:
        return None if self.metrics is None else rendered(models.Metrics, self.metrics)


class Snapshot:
    def __init__(self, settings: ApiSettings, db: Database, dagster: DagsterClient) -> None:
        self.settings = settings
        self.db = db
        self.dagster = dagster
        self.reading: Reading | None = None
        self._retention: dict[str, int | None] = {}
        self._retention_read = -RETENTION_EVERY_SECONDS
        # Its own thread: never waiting behind requests that hold anyio's default threads.
        self._thread = CapacityLimiter(1)
        self._first = asyncio.Event()  # set once the first refresh has ended
        self._stopped = False

    @property
    def stale_after(self) -> float:
        """A reading older than this means the refresh is stuck: three missed intervals
        beyond the longest a refresh may take (its checks are bounded by the health timeout)."""
        return 3 * self.settings.refresh_seconds + 3 * self.settings.health_timeout_seconds

    async def current(self) -> Reading:
        """The latest reading, or one that says the refresh is stuck (no dependency known).
        Right after start-up, waits (bounded) for the first one."""
        if self.reading is None:
            with move_on_after(self.stale_after):
                await self._first.wait()
        reading = self.reading
        age = time.monotonic() - reading.taken if reading else None
        if reading is not None and age is not None and age <= self.stale_after:
            return reading
        why = (
            f"the API's status refresh has not completed for {age:.0f} s"
            if age is not None
            else "the API's status refresh has not completed yet"
        )
        unknown = {"status": "unknown", "error": why}
        return Reading(
            time.monotonic(),
            datetime.now(UTC).isoformat(),
            {"database": unknown, "dagster": unknown, "daemon": unknown},
            [],
            None,
        )

    async def run(self) -> None:
        """Refresh for ever (until cancelled at shutdown), one refresh at a time."""
        while True:
            await to_thread.run_sync(self.refresh, limiter=self._thread)
            self._first.set()
            await asyncio.sleep(self.settings.refresh_seconds)

    def stop(self) -> None:
        """At shutdown, before the clients close. A refresh may still be running on its
        thread (cancelling the task does not stop it, and waiting for it would hold up the
        shutdown by a refresh); it then fails on the closed clients, and ends without a word."""
        self._stopped = True

    def refresh(self) -> None:
        try:
            reading = self._read()
        except Exception:  # a bug must not end the refreshing: the next pass tries again
            if not self._stopped:
                log.exception("the API's status refresh failed")
            return
        if not self._stopped:
            self.reading = reading

    def _read(self) -> Reading:
        timeout = self.settings.health_timeout_seconds
        database = self._check_database(timeout)
        dagster, daemon = self._check_dagster(timeout)
        database_up, dagster_up = database["status"] == "up", dagster["status"] == "up"
        if database_up and time.monotonic() - self._retention_read >= RETENTION_EVERY_SECONDS:
            self._retention = self._slot_retention(timeout)
            self._retention_read = time.monotonic()
        if database_up and dagster_up:
            try:
                reconcile_runs(self.db, self.dagster, timeout)
            except (ApiError, psycopg.Error) as exc:  # the next pass tries again
                log.warning("could not reconcile runs with Dagster", extra={"error": str(exc)})
        active_cdc = self._active_cdc_engines(timeout) if dagster_up else None
        timestamp = datetime.now(UTC).isoformat()
        metrics = self._metrics(active_cdc, timestamp) if database_up else None
        return Reading(
            time.monotonic(),
            timestamp,
            {"database": database, "dagster": dagster, "daemon": daemon},
            self._oversized_slots() if database_up else [],
            metrics,
        )

    def _check_database(self, timeout: float) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            with self.db.connection(timeout=timeout) as conn:
                conn.execute("SELECT 1")
        except ApiError as exc:
            return {"status": "down", "error": exc.detail}
        return {"status": "up", "latencyMs": round((time.perf_counter() - started) * 1000, 2)}

    def _check_dagster(self, timeout: float) -> tuple[dict[str, Any], dict[str, Any]]:
        started = time.perf_counter()
        try:
            _, daemons_healthy, statuses = self.dagster.health(timeout)
        except ApiError as exc:
            down = {"status": "down", "error": exc.detail}
            return down, {"status": "unknown", "error": "the Dagster webserver did not answer"}
        webserver = {"status": "up", "latencyMs": round((time.perf_counter() - started) * 1000, 2)}
        unhealthy = [s["daemonType"] for s in statuses if s["required"] and not s["healthy"]]
        daemon: dict[str, Any] = {"status": "up" if daemons_healthy else "down"}
        if unhealthy:
            daemon["error"] = f"no recent heartbeat from: {', '.join(unhealthy)}"
        return webserver, daemon

    def _active_cdc_engines(self, timeout: float) -> int | None:
        try:
            _, sensors = self.dagster.instigators(timeout=timeout)
        except ApiError:
            return None
        return sum(1 for s in sensors if s.name.endswith("_cdc") and s.status == "RUNNING")

    def _slot_retention(self, timeout: float) -> dict[str, int | None]:
        try:
            with self.db.connection(timeout=timeout) as conn:
                raws = [row.config for row in pipeline_store.list_rows(conn)]
        except (ApiError, psycopg.Error):
            return self._retention
        return slot_retention(raws, timeout)

    def _oversized_slots(self) -> list[str]:
        """Why health is degraded: slots retaining more WAL than the configured limit."""
        limit = self.settings.cdc_slot_degraded_bytes
        return [
            f"the replication slot of pipeline {pipeline_id} retains {size} bytes of WAL "
            f"(more than ETL_CDC_SLOT_DEGRADED_BYTES = {limit}): start its CDC or delete it"
            for pipeline_id, size in sorted(self._retention.items())
            if size is not None and size > limit
        ]

    def _metrics(self, active_cdc: int | None, timestamp: str) -> dict[str, Any] | None:
        try:
            with self.db.connection(timeout=self.settings.health_timeout_seconds) as conn:
                total, enabled = pipeline_store.counts(conn)
                values: dict[str, Any] = {"totalPipelines": total, "enabledPipelines": enabled}
                values["activeCDCEngines"] = active_cdc
                values.update(run_store.totals(conn))
                values["averageQualityScore"] = quality_reports.average_score(conn)
                values["maxCdcLagSeconds"] = cdc_watermarks.max_lag_seconds(conn)
                values["openAlerts"] = alert_store.open_counts(conn)
        except ApiError:
            return None
        except psycopg.Error as exc:  # e.g. a summit database not migrated yet
            log.warning("could not read the metrics", extra={"error": str(exc)})
            return None
        values["cdcSlotRetainedBytes"] = dict(self._retention)
        values["timestamp"] = timestamp
        return values
