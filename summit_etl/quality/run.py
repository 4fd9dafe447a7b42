"""Quality inside a run, batch or CDC alike: the gate a pipeline's rules need, the rules
that read the written target, and the report recorded when the run ends."""

from __future__ import annotations

import logging
from typing import Any

from summit_etl.config import LoadStrategy, PipelineConfig
from summit_etl.quality.gate import QualityGate
from summit_etl.quality.report import build_report, sla_penalties
from summit_etl.quality.target import check_target, rules_on_target
from summit_etl.recording import RunOutcome, RunRequest
from summit_etl.store import quality_reports
from summit_etl.store.db import connect
from summit_etl.store.quarantine import QuarantineWriter

log = logging.getLogger("summit_etl.quality")

# Loads after which the target holds one row per merge key (scd_type2 keeps history rows).
KEY_UNIQUE_STRATEGIES = {LoadStrategy.upsert, LoadStrategy.scd_type1, LoadStrategy.delta}


def gate_for(
    config: PipelineConfig, request: RunRequest, summit_url: str, *, changes: bool = False
) -> QualityGate | None:
    """The run's quality gate, or None when the pipeline has no quality rules."""
    quality = config.quality
    if not quality.rules and quality.min_overall_score is None:
        return None
    sink = QuarantineWriter(summit_url, request.run_id, config.id)
    return QualityGate(quality, sink, changes=changes)


def check_written_target(
    gate: QualityGate,
    config: PipelineConfig,
    target_url: str,
    rows_written: int,
    *,
    stream_saw_every_row: bool,
    key: list[str],
) -> None:
    """The rules that read the target, once the run has written it."""
    merge_key = key if config.loading.strategy in KEY_UNIQUE_STRATEGIES else []
    check_target(
        rules_on_target(gate.rules, stream_saw_every_row=stream_saw_every_row, merge_key=merge_key),
        gate.outcomes,
        target_url,
        config.loading.target_name,
        rows_written,
    )


def reportable(outcome: RunOutcome) -> bool:
    """Finished runs have a report; so does a run stopped by its quality rules."""
    if outcome.status in ("success", "partial_success"):
        return True
    return any(error.stage == "validation" for error in outcome.errors)


def record_report(
    config: PipelineConfig, request: RunRequest, summit_url: str, gate: QualityGate, duration: float
) -> dict[str, Any]:
    penalties = sla_penalties(config.sla, duration)
    if penalties:
        log.warning(
            "run exceeded its SLA",
            extra={
                "pipelineId": config.id,
                "runId": request.run_id,
                "durationMs": round(duration * 1000, 3),
                "slaSeconds": config.sla.max_duration_seconds,
            },
        )
    report = build_report(gate, run_id=request.run_id, pipeline_id=config.id, penalties=penalties)
    with connect(summit_url) as conn:
        quality_reports.save(conn, report)
    return report
