"""The quality report of a run (SPEC §3), built from the gate's outcomes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from summit_etl.config.pipeline import SlaConfig
from summit_etl.quality.gate import QualityGate
from summit_etl.quality.scoring import issues


def sla_penalties(sla: SlaConfig, duration_seconds: float) -> dict[str, float]:
    """Timeliness capped in proportion when the run took longer than its SLA allows."""
    limit = sla.max_duration_seconds
    if limit is None or duration_seconds <= limit:
        return {}
    return {"timeliness": round(100.0 * limit / duration_seconds, 2)}


def build_report(
    gate: QualityGate, *, run_id: str, pipeline_id: str, penalties: dict[str, float]
) -> dict[str, Any]:
    dimensions, overall = gate.scores(penalties)
    outcomes = list(gate.outcomes.values())
    found = issues(outcomes)
    if "timeliness" in penalties:
        found.append(
            {
                "severity": "medium",
                "type": "sla",
                "ruleId": "sla.maxDurationSeconds",
                "field": None,
                "message": "the run took longer than sla.maxDurationSeconds",
                "affectedRecords": 0,
                "examples": [],
                "dimension": "timeliness",
                "passed": False,
            }
        )
    return {
        "pipelineRunId": run_id,
        "pipelineId": pipeline_id,
        "timestamp": datetime.now(UTC).isoformat(),
        "overallScore": overall,
        "dimensions": dimensions,
        "issues": found,
        "statistics": gate.statistics.as_dict(),
        "rules": [
            {
                "ruleId": o.rule.id,
                "dimension": o.rule.dimension.value,
                "severity": o.rule.severity,
                "action": o.rule.action,
                "passed": o.passed,
                "passRate": round(o.pass_rate, 2),
                "evaluated": o.evaluated,
                "failed": o.failed,
                "examples": o.examples,
            }
            for o in outcomes
        ],
    }
