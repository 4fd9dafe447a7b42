"""`etl_watermarks`: the history of incremental loads; the newest row is the current watermark.

Operators reset a watermark by deleting its rows (runbook "Reset Watermark"), so
"no row" always means "load everything".
"""

from __future__ import annotations

from psycopg import Connection


def current(conn: Connection, pipeline_id: str, source_table: str) -> str | None:
    row = conn.execute(
        """
        SELECT last_loaded_value FROM etl_watermarks
         WHERE pipeline_id = %s AND source_table = %s
         ORDER BY id DESC LIMIT 1
        """,
        (pipeline_id, source_table),
    ).fetchone()
    return row[0] if row else None


def record(
    conn: Connection,
    *,
    pipeline_id: str,
    source_table: str,
    column: str,
    value: str,
    records_loaded: int,
    run_id: str,
) -> None:
    conn.execute(
        """
        INSERT INTO etl_watermarks
            (pipeline_id, source_table, watermark_column, last_loaded_value,
             records_loaded, status, run_id)
        VALUES (%s, %s, %s, %s, %s, 'success', %s)
        """,
        (pipeline_id, source_table, column, value, records_loaded, run_id),
    )
