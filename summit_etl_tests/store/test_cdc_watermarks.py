"""`etl_cdc_watermarks`: a run mirroring its offset after its API pipeline was deleted
writes nothing back; a YAML pipeline (no row needed) is mirrored as before."""

from __future__ import annotations

from psycopg import Connection

from summit_etl.store import cdc_watermarks
from summit_etl.store.db import connect
from summit_etl_tests.support import run_sql


def _record(conn: Connection, pipeline_id: str, value: str, *, stored: bool) -> None:
    cdc_watermarks.record(conn, pipeline_id=pipeline_id, source_table="public.t", value=value,
                          lsn=None, caught_up_at=None, stored=stored)


def test_a_deleted_api_pipeline_gets_no_watermark_back(summit_url: str) -> None:
    run_sql(summit_url, "INSERT INTO pipelines (pipeline_id, name, config, origin) "
                        "VALUES ('kept', 'Kept', '{}', 'api')")
    with connect(summit_url) as conn:
        _record(conn, "kept", "5", stored=True)  # its row exists: mirrored
        _record(conn, "gone", "7", stored=True)  # deleted (no row): nothing written
        _record(conn, "from-file", "9", stored=False)  # a YAML pipeline: mirrored
        _record(conn, "kept", "6", stored=True)  # and updated in place
    rows = "SELECT pipeline_id, last_processed_value FROM etl_cdc_watermarks ORDER BY 1"
    assert run_sql(summit_url, rows) == [("from-file", "9"), ("kept", "6")]
