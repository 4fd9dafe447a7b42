"""A live CDC run as the Dagster UI shows it: committed batches as asset observations, and
the run ending once its sensor is stopped.

A live run may commit several batches a second; one observation per batch would make the
event log the bottleneck, so batches are summed into one observation per `every` seconds
(and one for the rest when the run ends); the first batch is reported as soon as it commits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from dagster import AssetExecutionContext, AssetObservation, MetadataValue

from summit_etl.config import PipelineConfig
from summit_etl.orchestration.cdc_sensors import cdc_sensor_stopped
from summit_etl.orchestration.keys import target_key
from summit_etl.runs.context import BatchReport

REPORT_EVERY_SECONDS = 1.0


@dataclass
class _Window:
    batches: int = 0
    changes: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    lag_seconds: float | None = None  # the worst lag of the window's batches
    offset: str | None = None

    def add(self, report: BatchReport) -> None:
        self.batches += 1
        self.changes += report.changes
        self.inserted += report.inserted
        self.updated += report.updated
        self.deleted += report.deleted
        if report.lag_seconds is not None:
            self.lag_seconds = max(self.lag_seconds or 0.0, report.lag_seconds)
        self.offset = report.offset


@dataclass
class CdcProgress:
    context: AssetExecutionContext
    pipeline: PipelineConfig
    every: float = REPORT_EVERY_SECONDS
    _window: _Window = field(default_factory=_Window)
    # The first batch is shown at once; later ones are summed per `every` seconds.
    _last: float = float("-inf")

    def on_batch(self, report: BatchReport) -> None:
        self._window.add(report)
        if time.monotonic() - self._last >= self.every:
            self.flush()

    def flush(self) -> None:
        """Report the batches committed since the last observation, if any."""
        window, self._window, self._last = self._window, _Window(), time.monotonic()
        if not window.batches:
            return
        metadata: dict[str, Any] = {
            "batches": window.batches,
            "changes": window.changes,
            "rows_inserted": window.inserted,
            "rows_updated": window.updated,
            "rows_deleted": window.deleted,
        }
        if window.lag_seconds is not None:
            metadata["lag_seconds"] = MetadataValue.float(round(window.lag_seconds, 3))
        if window.offset is not None:
            metadata["offset"] = window.offset
        self.context.log_event(
            AssetObservation(asset_key=target_key(self.pipeline), metadata=metadata)
        )

    def sensor_not_stopped(self) -> bool:
        return not cdc_sensor_stopped(self.context.instance, self.pipeline.id)
