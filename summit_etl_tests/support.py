"""Helpers shared by the tests."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg

from summit_etl.settings import PROJECT_ROOT

ADMIN_URL = os.environ.get("SUMMIT_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def cancel_when(ready: Callable[[], bool], within: float = 30) -> threading.Thread:
    """A started thread that interrupts this process as Dagster cancels a run (SIGINT)
    once `ready()` holds, or after `within` seconds; join it after the run."""

    def cancel() -> None:
        deadline = time.monotonic() + within
        while not ready() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    canceller = threading.Thread(target=cancel)
    canceller.start()
    return canceller


def run_sql(url: str, statement: str, params: Any = None) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


RUNBOOK = PROJECT_ROOT.parent / "shared" / "runbook.md"

# The runbook's statements on the summit tables, as it writes them: `psql -d summit -c`
# statements, then whole SQL blocks. store/test_runbook_sql.py checks they still match.
RUNBOOK_PSQL = {
    "failed runs (morning checklist 3)": """
  SELECT pipeline_id, COUNT(*) as failures
  FROM pipeline_runs
  WHERE status = 'failed'
    AND created_at > NOW() - INTERVAL '24 hours'
  GROUP BY pipeline_id;
""",
    "cdc lag (morning checklist 5)": """
  SELECT
    source_table,
    last_processed_time,
    NOW() - last_processed_time as lag
  FROM etl_cdc_watermarks
  WHERE last_processed_time < NOW() - INTERVAL '1 hour';
""",
    "clean old runs (weekly 1)": """
  DELETE FROM pipeline_runs
  WHERE created_at < NOW() - INTERVAL '30 days';
""",
    "quality trend (weekly 3)": """
  SELECT
    DATE(timestamp) as date,
    AVG(overall_score) as avg_quality_score
  FROM data_quality_reports
  WHERE timestamp > NOW() - INTERVAL '7 days'
  GROUP BY DATE(timestamp)
  ORDER BY date;
""",
}

RUNBOOK_SQL_BLOCKS = {
    "reset watermark": """-- Backup current watermark
CREATE TABLE etl_watermarks_backup AS
SELECT * FROM etl_watermarks WHERE source_table = 'your_table';

-- Reset watermark
DELETE FROM etl_watermarks WHERE source_table = 'your_table';""",
    "pause": """UPDATE pipelines
SET enabled = false
WHERE pipeline_id = 'your-pipeline';""",
    "resume": """UPDATE pipelines
SET enabled = true
WHERE pipeline_id = 'your-pipeline';""",
    "cdc lag alert": """SELECT
  source_table,
  NOW() - last_processed_time as lag,
  last_processed_value
FROM etl_cdc_watermarks
ORDER BY lag DESC;""",
}
