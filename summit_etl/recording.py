"""The life of a run in `pipeline_runs`, shared by batch runs and CDC runs: recorded at
the start, recorded at the end whatever happens (success, a stage failure with the
database's message, or a cancellation), and logged both times."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from summit_etl.config import PipelineConfig
from summit_etl.load.writer import LoadResult
from summit_etl.store import runs as run_store
from summit_etl.store.db import connect
from summit_etl.store.runs import RunCounts, RunError
from summit_etl.timeouts import expired

log = logging.getLogger("summit_etl.engine")


class StageFailure(RuntimeError):
    """A run failed in `stage`; the message is the underlying error's, secrets excluded."""

    def __init__(self, stage: str, cause: BaseException) -> None:
        super().__init__(f"{stage} failed: {cause}")
        self.stage = stage
        self.cause = cause


@dataclass(frozen=True)
class RunRequest:
    run_id: str
    trigger: str = "manual"
    full_reload: bool = False


@dataclass
class RunOutcome:
    status: str
    counts: RunCounts
    metrics: dict[str, float]
    errors: list[RunError] = field(default_factory=list)
    watermark_from: str | None = None
    watermark_to: str | None = None
    load: LoadResult | None = None
    quality_report: dict[str, Any] | None = None


def recorded_run(
    config: PipelineConfig,
    request: RunRequest,
    summit_url: str,
    execute: Callable[[RunOutcome], None],
    finalize: Callable[[RunOutcome, float], None],
) -> RunOutcome:
    """Run `execute` and record it; `finalize(outcome, seconds)` fills in the metrics (and
    anything else the record needs) before the end is written. Raises StageFailure after
    recording a failure."""
    context = {"pipelineId": config.id, "runId": request.run_id}
    with connect(summit_url) as conn:
        run_store.start_run(conn, request.run_id, config.id, request.trigger, request.full_reload)
    log.info(
        "run started",
        extra={
            **context,
            "trigger": request.trigger,
            "fullReload": request.full_reload,
            "extraction": config.extraction.strategy.value,
        },
    )
    outcome = RunOutcome(status="running", counts=RunCounts(), metrics={})
    started = time.perf_counter()
    try:
        execute(outcome)
        outcome.status = "partial_success" if outcome.counts.records_quarantined else "success"
    except Exception as exc:
        failure = exc if isinstance(exc, StageFailure) else StageFailure("loading", exc)
        subject = _subject(config, failure.stage)
        if timeout := expired(failure.cause, failure.stage, subject, config.timeouts):
            failure = StageFailure(failure.stage, timeout)
        outcome.status = "failed"
        outcome.errors.append(
            RunError(
                stage=failure.stage,
                message=str(failure.cause),
                details={"type": type(failure.cause).__name__},
            )
        )
        log.error(
            "run failed", extra={**context, "stage": failure.stage, "error": str(failure.cause)}
        )
        raise failure from exc
    except BaseException:
        # Dagster interrupts a terminated run with a BaseException: the run was cancelled.
        outcome.status = "cancelled"
        raise
    finally:
        finalize(outcome, time.perf_counter() - started)
        with connect(summit_url) as conn:
            run_store.finish_run(
                conn,
                request.run_id,
                status=outcome.status,
                counts=outcome.counts,
                metrics=outcome.metrics,
                errors=outcome.errors,
                watermark_from=outcome.watermark_from,
                watermark_to=outcome.watermark_to,
                quality_score=outcome.quality_report["overallScore"]
                if outcome.quality_report
                else None,
            )
    log.debug("stage timings", extra={**context, **outcome.metrics})
    log.info(
        "run finished",
        extra={
            **context,
            "status": outcome.status,
            "recordsLoaded": outcome.counts.records_loaded,
            "durationMs": outcome.metrics["totalDurationMs"],
        },
    )
    return outcome


def _subject(config: PipelineConfig, stage: str) -> str:
    """What a stage works on, for messages: the source before loading, then the target."""
    if stage in ("extraction", "transformation"):
        return config.source.label
    return config.loading.target_table
