"""Run errors in API answers carry the stage and a plain message; the traceback goes to the
debug log with the run id."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from api_shim import serialize
from api_shim.models import CdcSwitch
from api_shim.reconcile import error_of

TRACEBACK = '''Traceback (most recent call last):
  File "/srv/summit_etl/load/bulk.py", line 88, in load
    cursor.execute(statement)
  File "/venv/lib/python3.11/site-packages/psycopg/cursor.py", line 97, in execute
    raise ex.with_traceback(None)
psycopg.errors.StringDataRightTruncation: value too long for type character varying(3)
'''


def _row(errors: list[dict]) -> dict:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    return {
        "id": "run-1", "pipeline_id": "p", "status": "failed", "trigger": "manual", "full_reload": False,
        "created_at": now, "start_time": now, "end_time": None, "records_extracted": 1,
        "records_transformed": 1, "records_filtered": 0, "records_loaded": 0, "records_failed": 1,
        "records_quarantined": 0, "bytes_processed": 10, "errors": errors,
        "metrics": {"totalDurationMs": 12.5}, "quality_score": None, "watermark_from": None, "watermark_to": "5",
    }


@pytest.mark.parametrize(
    ("message", "plain"),
    [
        (TRACEBACK, "psycopg.errors.StringDataRightTruncation: value too long for type character varying(3)"),
        ("loading failed: value too long\n" + TRACEBACK, "loading failed: value too long"),
        ("Execution of step failed.\n\nStack Trace:\n  File \"/srv/x.py\", line 1, in f\n    g()\n", "Execution of step failed."),
        ("the source is down", "the source is down"),
    ],
)
def test_tracebacks_never_reach_the_answer(message: str, plain: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="summit_etl.api"):
        body = serialize.run(_row([{"stage": "loading", "message": message, "timestamp": "t"}]))
    (error,) = body["errors"]
    assert error == {"timestamp": "t", "stage": "loading", "message": plain, "details": {}}
    assert "File \"" not in error["message"]
    if message != plain:
        (record,) = [r for r in caplog.records if r.getMessage() == "run error traceback"]
        assert record.levelno == logging.DEBUG and vars(record)["runId"] == "run-1"
        assert vars(record)["traceback"] == message


def test_dagster_failures_are_plain_too() -> None:
    failure = {"__typename": "ExecutionStepFailureEvent", "message": "transformation failed", "timestamp": "0",
               "stepKey": "p", "error": {"message": TRACEBACK}}
    recorded = error_of(failure)  # what the background reconciliation writes for a crashed run
    assert recorded.details == {"source": "dagster", "event": "ExecutionStepFailureEvent", "stepKey": "p"}
    (error,) = serialize.run(_row([asdict(recorded)]))["errors"]
    assert error["stage"] == "transformation" and error["message"].startswith("psycopg.errors.")


def test_a_run_has_every_field_of_the_spec() -> None:
    body = serialize.run(_row([]))
    assert body["fullReload"] is False and body["watermarkFrom"] is None and body["watermarkTo"] == "5"
    assert body["createdAt"] == "2026-01-02T03:04:05+00:00"
    assert body["metrics"]["totalDurationMs"] == 12.5 and body["dagsterRunId"] == "run-1"


def test_passwords_in_errors_are_masked() -> None:
    (error,) = serialize.run(_row([{"stage": "extraction", "message": "no route to postgresql://u:hunter2@h/db"}]))["errors"]
    assert "hunter2" not in error["message"] and error["stage"] == "extraction"


def test_answers_go_through_their_documented_model() -> None:
    switch = {"message": "CDC for p is running", "pipelineId": "p", "status": "running"}
    assert json.loads(serialize.answer(CdcSwitch, switch).body) == switch
    with pytest.raises(ValidationError, match="undocumented"):
        serialize.answer(CdcSwitch, {**switch, "undocumented": 1})
    with pytest.raises(ValidationError, match="status"):
        serialize.answer(CdcSwitch, {**switch, "status": "paused"})
