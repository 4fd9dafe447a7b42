"""Rows of the summit tables as the JSON objects of SPEC §3, built through the response
models (api_shim/models.py), with secrets masked and tracebacks kept out."""

from __future__ import annotations

import logging
import re
from typing import Any

from starlette.responses import JSONResponse

from api_shim import models
from summit_etl.logs import redact_text
from summit_etl.store.alerts import Alert
from summit_etl.store.pipelines import PipelineRow

log = logging.getLogger("summit_etl.api")

# Where a Python or Dagster traceback starts inside an error message.
_TRACEBACK = re.compile(
    r"^\s*(Traceback \(most recent call last\)|Stack Trace:|File \"[^\"]*\", line \d+"
    r"|The above exception)",
    re.MULTILINE,
)


def masked(value: Any) -> Any:
    """The value with passwords in connection strings replaced by ***."""
    if isinstance(value, dict):
        return {k: masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    return redact_text(value) if isinstance(value, str) else value


def plain_message(message: str, run_id: str) -> str:
    """The message without any traceback (file paths, code lines of the service); the whole
    text goes to the log at debug level with the run id."""
    cut = _TRACEBACK.search(message)
    if cut is None:
        return message.strip()
    log.debug("run error traceback", extra={"runId": run_id, "traceback": message})
    head = message[: cut.start()].strip()
    if head:
        return head
    # Only a traceback: its last line names the exception and says what went wrong.
    lines = [line.strip() for line in message[cut.start() :].splitlines() if line.strip()]
    last = next((line for line in reversed(lines) if not _TRACEBACK.match(line)), "")
    return last if last and not last.startswith(("File ", "^")) else "the run failed"


def pipeline(row: PipelineRow) -> dict[str, Any]:
    return _dump(
        models.Pipeline(
            id=row.pipeline_id,
            name=row.name,
            enabled=row.enabled,
            origin=row.origin,  # type: ignore[arg-type]  # the column's CHECK holds these two
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
            config=masked(row.config),
        )
    )


def run(row: dict[str, Any]) -> dict[str, Any]:
    return _dump(
        models.Run(
            id=row["id"],
            pipeline_id=row["pipeline_id"],
            status=row["status"],
            trigger=row["trigger"],
            full_reload=row["full_reload"],
            created_at=row["created_at"],
            start_time=row["start_time"],
            end_time=row["end_time"],
            records_extracted=row["records_extracted"],
            records_transformed=row["records_transformed"],
            records_filtered=row["records_filtered"],
            records_loaded=row["records_loaded"],
            records_failed=row["records_failed"],
            records_quarantined=row["records_quarantined"],
            bytes_processed=row["bytes_processed"],
            errors=[_run_error(e, row["id"]) for e in masked(row["errors"])],
            metrics=models.RunMetrics.model_validate(row["metrics"]),
            quality_score=row["quality_score"],
            watermark_from=row["watermark_from"],
            watermark_to=row["watermark_to"],
            slice=row.get("slice"),
            dagster_run_id=row["id"],
        )
    )


def _run_error(error: dict[str, Any], run_id: str) -> models.RunError:
    stage = str(error.get("stage"))
    return models.RunError(
        timestamp=error.get("timestamp"),
        stage=models.Stage(stage) if stage in models.Stage.__members__ else models.Stage.loading,
        message=plain_message(str(error.get("message", "")), run_id),
        details=error.get("details") or {},
    )


def alert(found: Alert) -> dict[str, Any]:
    return _dump(models.Alert.model_validate(found.as_json()))


def _dump(model: models.Body) -> dict[str, Any]:
    return model.model_dump(by_alias=True, mode="json")


def answer(model: type[models.Body], data: dict[str, Any], status_code: int = 200) -> JSONResponse:
    """`data` through the response model that /openapi.json documents it with, so a route
    cannot answer what the document does not say (an unknown key is a bug, found in tests)."""
    body = model.model_validate(data).model_dump(by_alias=True, mode="json", exclude_unset=True)
    return JSONResponse(body, status_code=status_code)


def rendered(model: type[models.Body], data: dict[str, Any]) -> bytes:
    """The bytes `answer` would send, for an answer rendered once and sent many times."""
    return bytes(answer(model, data).body)
