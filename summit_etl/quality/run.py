"""Quality inside a run, batch or CDC alike: the gate a pipeline's rules need, the blocking
decision taken in the load's transaction before it commits, the rules that read the
written target after it, the quarantine's confirmation, and the report recorded when the
run ends."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

import psycopg

from summit_etl.config import LoadStrategy, PipelineConfig
from summit_etl.faults import failpoint
from summit_etl.load.target import execute
from summit_etl.quality.gate import QualityGate, QualityGateFailure
from summit_etl.quality.report import build_report, sla_penalties
from summit_etl.quality.rules import CompiledRule
from summit_etl.quality.target import check_target, check_target_read_only, rules_on_target
from summit_etl.runs.context import RunOutcome, RunRequest, StageFailure
from summit_etl.store import quality_reports
from summit_etl.store import quarantine as quarantine_store
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
    sink = QuarantineWriter(summit_url, request.run_id, config.id, tuple(config.merge_key))
    return QualityGate(quality, sink, changes=changes)


def _target_rules(
    gate: QualityGate, config: PipelineConfig, *, stream_saw_every_row: bool, key: list[str]
) -> list[CompiledRule]:
    merge_key = key if config.loading.strategy in KEY_UNIQUE_STRATEGIES else []
    return rules_on_target(
        gate.rules, stream_saw_every_row=stream_saw_every_row, merge_key=merge_key
    )


def blocking_check(
    gate: QualityGate | None,
    config: PipelineConfig,
    *,
    stream_saw_every_row: bool,
    key: list[str],
) -> Callable[[psycopg.Connection], None] | None:
    """The load's `before_commit`: table-level `fail` rules (all table-level rules when
    minOverallScore needs them for the score) judged on the load's own transaction, then
    every blocking rule and the minimum score. A failure raises StageFailure(validation)
    and the load rolls back: target, watermark and quarantine stay as they were."""
    if gate is None:
        return None
    scored = gate.quality.min_overall_score is not None
    rules = [
        rule
        for rule in _target_rules(gate, config, stream_saw_every_row=stream_saw_every_row, key=key)
        if scored or rule.rule.action == "fail"
    ]

    def decide(conn: psycopg.Connection) -> None:
        try:
            check_target(
                rules,
                gate.outcomes,
                partial(execute, conn),
                config.loading.target_name,
                gate.delivered,
                savepoints=False,
            )
            gate.decided.update(rule.id for rule in rules)
            gate.enforce()
        except QualityGateFailure as failure:
            raise StageFailure("validation", failure) from failure
        if gate.quarantined:
            failpoint("quarantine")

    return decide


def check_written_target(
    gate: QualityGate,
    config: PipelineConfig,
    target_url: str,
    rows_written: int,
    *,
    stream_saw_every_row: bool,
    key: list[str],
) -> None:
    """The rules that read the target and were not decided before the commit, once the run
    has written it (read-only)."""
    rules = _target_rules(gate, config, stream_saw_every_row=stream_saw_every_row, key=key)
    check_target_read_only(
        [rule for rule in rules if rule.id not in gate.decided],
        gate.outcomes,
        target_url,
        config.loading.target_name,
        rows_written,
    )


def confirm_quarantine(config: PipelineConfig, request: RunRequest, summit_url: str) -> None:
    """The target committed: the run's quarantined rows become replayable. Call it before
    the watermark moves, so that a crash in between makes the next run read them again."""
    with connect(summit_url) as conn:
        quarantine_store.confirm(conn, config.id, request.run_id)


def reportable(outcome: RunOutcome) -> bool:
    """Finished runs have a report; so does a run stopped by its quality rules."""
    if outcome.status in ("success", "partial_success"):
        return True
    return any(error.stage == "validation" for error in outcome.errors)


def finish(
    config: PipelineConfig,
    request: RunRequest,
    summit_url: str,
    gate: QualityGate,
    outcome: RunOutcome,
    duration: float,
) -> dict[str, Any] | None:
    """The end of a run with quality rules: a failed run's pending quarantine is
    discarded; the report is recorded (and returned) when the run has one."""
    if outcome.status not in ("success", "partial_success"):
        with connect(summit_url) as conn:
            quarantine_store.discard(conn, config.id, request.run_id)
    if not reportable(outcome):
        return None
    return record_report(config, request, summit_url, gate, duration)


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
