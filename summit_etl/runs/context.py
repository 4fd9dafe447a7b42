"""What one run carries from start to end: the pipeline, the request, where to record it,
its counts, clock and outcome. Drivers receive this object instead of ten loose values."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from summit_etl.config import PipelineConfig
from summit_etl.load.writer import LoadResult
from summit_etl.quality.gate import QualityGate
from summit_etl.runs.clock import StageClock
from summit_etl.runs.interrupts import InterruptHold, redeliver_interrupt
from summit_etl.runs.stages import Stage, StageFailure
from summit_etl.store.runs import RunCounts, RunError
from summit_etl.timeouts import timed_url

log = logging.getLogger("summit_etl.engine")

__all__ = [
    "BatchReport",
    "RunContext",
    "RunHooks",
    "RunOutcome",
    "RunRequest",
    "RunStatus",
    "Stage",
    "StageFailure",
]


class RunStatus(StrEnum):
    pending = "pending"
    running = "running"
    success = "success"
    partial_success = "partial_success"
    failed = "failed"
    cancelled = "cancelled"


@dataclass(frozen=True)
class RunRequest:
    run_id: str
    trigger: str = "manual"
    full_reload: bool = False
    # The pipeline lives only in the pipelines table (created through the API): a row gone
    # means it was deleted. A YAML pipeline may have no row where nothing synced it.
    stored: bool = False


@dataclass
class RunOutcome:
    status: RunStatus
    counts: RunCounts
    metrics: dict[str, float]
    errors: list[RunError] = field(default_factory=list)
    watermark_from: str | None = None
    watermark_to: str | None = None
    load: LoadResult | None = None
    quality_report: dict[str, Any] | None = None


@dataclass(frozen=True)
class BatchReport:
    """One committed CDC batch, as the orchestrator shows a live run's progress."""

    changes: int  # new changes applied (replays excluded)
    inserted: int
    updated: int
    deleted: int
    lag_seconds: float | None  # commit of its oldest change until applied (None: snapshot)
    offset: str | None


@dataclass(frozen=True)
class RunHooks:
    """What the orchestrator that launched a run lends it: where to report each committed
    batch, whether a live CDC run is still wanted (its sensor may have been stopped), and
    whether the run was asked to cancel (a backstop for an interrupt a driver swallowed)."""

    on_batch: Callable[[BatchReport], None] | None = None
    still_wanted: Callable[[], bool] | None = None
    cancel_requested: Callable[[], bool] | None = None


@dataclass
class RunContext:
    config: PipelineConfig
    request: RunRequest
    summit_url: str
    outcome: RunOutcome = field(
        default_factory=lambda: RunOutcome(RunStatus.running, RunCounts(), {})
    )
    clock: StageClock = field(default_factory=StageClock)
    gate: QualityGate | None = None
    # Held from just before a target commit to the end of its bookkeeping.
    interrupts: InterruptHold = field(default_factory=InterruptHold)
    hooks: RunHooks = field(default_factory=RunHooks)

    @property
    def counts(self) -> RunCounts:
        return self.outcome.counts

    def cancel_requested(self) -> bool:
        """The orchestrator was asked to cancel this run, whether or not its interrupt came."""
        return self.hooks.cancel_requested is not None and self.hooks.cancel_requested()

    def interrupt_if_cancelled(self) -> None:
        """Between batches: deliver a cancel whose interrupt never reached the run (a driver
        in a blocking call can swallow the SIGINT, runs/interrupts.py). Not while a commit
        holds interrupts back: that run records what it committed."""
        if not self.interrupts.holding and self.cancel_requested():
            log.warning(
                "cancel requested but its interrupt never arrived: cancelling now",
                extra=self.log_context,
            )
            redeliver_interrupt()

    @property
    def target_url(self) -> str:
        """The target's URL with the pipeline's timeouts."""
        return timed_url(self.config.target_url(self.summit_url), self.config.timeouts)

    @property
    def log_context(self) -> dict[str, str]:
        """The fields every log line of this run carries."""
        return {"pipelineId": self.config.id, "runId": self.request.run_id}
