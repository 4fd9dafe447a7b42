"""The life of a run in `pipeline_runs`, shared by batch runs and CDC runs: recorded at
the start, recorded at the end whatever happens (success, a stage failure with the
database's message, or a cancellation), and logged both times."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from summit_etl.config import PipelineConfig
from summit_etl.quality.run import finish
from summit_etl.runs.context import RunContext, RunOutcome, RunStatus, Stage, StageFailure
from summit_etl.store import runs as run_store
from summit_etl.store.db import connect
from summit_etl.store.runs import RunError
from summit_etl.timeouts import expired

log = logging.getLogger("summit_etl.engine")


def recorded_run(ctx: RunContext, execute: Callable[[RunContext], None]) -> RunOutcome:
    """Run `execute(ctx)` and record it; raises StageFailure after recording a failure,
    and lets a cancellation through after recording it."""
    config, request, outcome = ctx.config, ctx.request, ctx.outcome
    with connect(ctx.summit_url) as conn:
        run_store.start_run(conn, request.run_id, config.id, request.trigger, request.full_reload)
    log.info(
        "run started",
        extra={
            **ctx.log_context,
            "trigger": request.trigger,
            "fullReload": request.full_reload,
            "extraction": config.extraction.strategy.value,
        },
    )
    started = time.perf_counter()
    try:
        execute(ctx)
        outcome.status = (
            RunStatus.partial_success if outcome.counts.records_quarantined else RunStatus.success
        )
    except Exception as exc:
        failure = exc if isinstance(exc, StageFailure) else StageFailure(Stage.loading, exc)
        subject = _subject(config, failure.stage)
        if timeout := expired(failure.cause, failure.stage.value, subject, config.timeouts):
            failure = StageFailure(failure.stage, timeout)
        outcome.status = RunStatus.failed
        outcome.errors.append(
            RunError(
                stage=failure.stage.value,
                message=str(failure.cause),
                details={"type": type(failure.cause).__name__},
            )
        )
        log.error(
            "run failed",
            extra={**ctx.log_context, "stage": failure.stage.value, "error": str(failure.cause)},
        )
        raise failure from exc
    except BaseException:
        # Dagster interrupts a terminated run with a BaseException outside a commit's hold:
        # the work in hand rolled back, so the run was cancelled.
        outcome.status = RunStatus.cancelled
        log.warning("run cancelled", extra=ctx.log_context)
        raise
    finally:
        _record_end(ctx, time.perf_counter() - started)
        if ctx.interrupts.release() is not None:
            log.warning(
                "cancel arrived after the target committed: the run recorded its real outcome",
                extra={**ctx.log_context, "status": outcome.status.value},
            )
    log.debug("stage timings", extra={**ctx.log_context, **outcome.metrics})
    log.info(
        "run finished",
        extra={
            **ctx.log_context,
            "status": outcome.status.value,
            "recordsLoaded": outcome.counts.records_loaded,
            "durationMs": outcome.metrics["totalDurationMs"],
        },
    )
    return outcome


def _record_end(ctx: RunContext, duration: float) -> None:
    outcome = ctx.outcome
    outcome.metrics = ctx.clock.metrics(duration, outcome.counts.records_loaded)
    if ctx.gate is not None:
        outcome.quality_report = finish(
            ctx.config, ctx.request, ctx.summit_url, ctx.gate, outcome, duration
        )
    with connect(ctx.summit_url) as conn:
        run_store.finish_run(
            conn,
            ctx.request.run_id,
            status=outcome.status.value,
            counts=outcome.counts,
            metrics=outcome.metrics,
            errors=outcome.errors,
            watermark_from=outcome.watermark_from,
            watermark_to=outcome.watermark_to,
            quality_score=outcome.quality_report["overallScore"]
            if outcome.quality_report
            else None,
        )


def _subject(config: PipelineConfig, stage: Stage) -> str:
    """What a stage works on, for messages: the source before loading, then the target."""
    if stage in (Stage.extraction, Stage.transformation):
        return config.source.label
    return config.loading.target_table
