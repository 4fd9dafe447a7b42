"""Rows of the summit tables as the JSON objects of SPEC §3, with secrets masked."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from summit_etl.logs import redact_text
from summit_etl.store.pipelines import PipelineRow


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def masked(value: Any) -> Any:
    """The value with passwords in connection strings replaced by ***."""
    if isinstance(value, dict):
        return {k: masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    return redact_text(value) if isinstance(value, str) else value


def pipeline(row: PipelineRow) -> dict[str, Any]:
    return {
        "id": row.pipeline_id,
        "name": row.name,
        "enabled": row.enabled,
        "origin": row.origin,
        "version": row.version,
        "createdAt": _iso(row.created_at),
        "updatedAt": _iso(row.updated_at),
        "config": masked(row.config),
    }


def run(
    row: dict[str, Any], dagster_failures: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    errors = list(row["errors"])
    if dagster_failures and not errors:
        # The engine never recorded an error (the worker died): Dagster's events say why.
        errors = [
            {
                "timestamp": _epoch_iso(event.get("timestamp")),
                "stage": _stage_of(event.get("message", "")),
                "message": (event.get("error") or {}).get("message") or event.get("message", ""),
                "details": {
                    "source": "dagster",
                    "event": event["__typename"],
                    "stepKey": event.get("stepKey"),
                },
            }
            for event in dagster_failures
        ]
    return {
        "id": row["id"],
        "pipelineId": row["pipeline_id"],
        "status": row["status"],
        "trigger": row["trigger"],
        "fullReload": row["full_reload"],
        "createdAt": _iso(row["created_at"]),
        "startTime": _iso(row["start_time"]),
        "endTime": _iso(row["end_time"]),
        "recordsExtracted": row["records_extracted"],
        "recordsTransformed": row["records_transformed"],
        "recordsFiltered": row["records_filtered"],
        "recordsLoaded": row["records_loaded"],
        "recordsFailed": row["records_failed"],
        "recordsQuarantined": row["records_quarantined"],
        "bytesProcessed": row["bytes_processed"],
        "errors": masked(errors),
        "metrics": row["metrics"],
        "qualityScore": row["quality_score"],
        "watermarkFrom": row["watermark_from"],
        "watermarkTo": row["watermark_to"],
        "dagsterRunId": row["id"],
    }


_STAGES = ("extraction", "transformation", "validation", "loading")


def _stage_of(message: str) -> str:
    for stage in _STAGES:
        if f"{stage} failed" in message:
            return stage
    return "loading"


def _epoch_iso(value: Any) -> str | None:
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(float(value) / 1000).astimezone().isoformat()
    except (TypeError, ValueError):
        return str(value)
