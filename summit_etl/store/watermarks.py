"""`etl_watermarks`: the history of incremental loads; the newest row is the current watermark.

Operators reset a watermark by deleting its rows (runbook "Reset Watermark"), so
"no row" always means "load everything". Deleting a pipeline retires its rows
(`retired_at`): they stay for audit, and a pipeline created later with the same id
starts from nothing.
"""

from __future__ import annotations

from psycopg import Connection


def current(conn: Connection, pipeline_id: str, source_table: str) -> str | None:
    row = conn.execute(
        """
        SELECT last_loaded_value FROM etl_watermarks
         WHERE pipeline_id = %s AND source_table = %s AND retired_at IS NULL
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


def retire(conn: Connection, pipeline_id: str) -> int:
    """The pipeline is deleted: its history is kept but never read again; rows retired."""
    cursor = conn.execute(
        "UPDATE etl_watermarks SET retired_at = now() "
        "WHERE pipeline_id = %s AND retired_at IS NULL",
        (pipeline_id,),
    )
    return cursor.rowcount
