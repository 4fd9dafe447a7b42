"""`etl_watermarks`: the newest live row is current; retired rows stay but are never read."""

from __future__ import annotations

from psycopg import Connection

from summit_etl.store import watermarks
from summit_etl.store.db import connect
from summit_etl_tests.support import run_sql


def _record(conn: Connection, value: str) -> None:
    watermarks.record(conn, pipeline_id="p", source_table="public.t", column="seq",
                      value=value, records_loaded=1, run_id="r")


def test_retired_history_is_kept_but_not_current_and_deleting_rows_still_resets(summit_url: str) -> None:
    with connect(summit_url) as conn:
        _record(conn, "10")
        assert watermarks.current(conn, "p", "public.t") == "10"
        assert watermarks.retire(conn, "p") == 1
        assert watermarks.current(conn, "p", "public.t") is None
        assert watermarks.retire(conn, "p") == 0  # already retired
        _record(conn, "3")  # the pipeline created again starts its own history
        assert watermarks.current(conn, "p", "public.t") == "3"
    assert run_sql(summit_url, "SELECT last_loaded_value, retired_at IS NOT NULL FROM etl_watermarks ORDER BY id") == [
        ("10", True), ("3", False)
    ]
    # The runbook's reset deletes by source_table: no row left, so the next run reads all.
    run_sql(summit_url, "DELETE FROM etl_watermarks WHERE source_table = 'public.t'")
    with connect(summit_url) as conn:
        assert watermarks.current(conn, "p", "public.t") is None
