"""`etl_cdc_watermarks`: one current row per CDC pipeline and source table.

It mirrors the offset that CDC runs commit in the target database (the offset of record,
see `summit_etl.cdc.target`), so operators can read lag and position with psql;
`last_processed_time` is when the target was last known to be caught up with the source.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg import Connection


@dataclass(frozen=True)
class CdcWatermark:
    last_processed_value: str | None
    last_processed_lsn: str | None
    last_processed_time: datetime


def current(conn: Connection, pipeline_id: str, source_table: str) -> CdcWatermark | None:
    row = conn.execute(
        """
        SELECT last_processed_value, last_processed_lsn, last_processed_time
          FROM etl_cdc_watermarks WHERE pipeline_id = %s AND source_table = %s
        """,
        (pipeline_id, source_table),
    ).fetchone()
    return CdcWatermark(*row) if row else None


def record(
    conn: Connection,
    *,
    pipeline_id: str,
    source_table: str,
    value: str | None,
    lsn: str | None,
    caught_up_at: datetime | None,
    stored: bool,
) -> None:
    """The target committed up to `value`; `caught_up_at` when that was all there was.
    `stored` (an API pipeline): nothing is written once its row is gone, so a run ending
    after DELETE retired the pipeline does not bring its watermark back."""
    conn.execute(
        """
        INSERT INTO etl_cdc_watermarks
            (pipeline_id, source_table, last_processed_value, last_processed_lsn,
             last_processed_time)
        SELECT %(p)s, %(t)s, %(v)s, %(l)s, coalesce(%(at)s, now())
         WHERE NOT %(stored)s OR EXISTS (SELECT 1 FROM pipelines WHERE pipeline_id = %(p)s)
        ON CONFLICT (pipeline_id, source_table) DO UPDATE
           SET last_processed_value = EXCLUDED.last_processed_value,
               last_processed_lsn = EXCLUDED.last_processed_lsn,
               last_processed_time = coalesce(
                   greatest(etl_cdc_watermarks.last_processed_time, %(at)s),
                   etl_cdc_watermarks.last_processed_time),
               updated_at = now()
        """,
        {
            "p": pipeline_id,
            "t": source_table,
            "v": value,
            "l": lsn,
            "at": caught_up_at,
            "stored": stored,
        },
    )


def mark_caught_up(conn: Connection, pipeline_id: str, source_table: str, at: datetime) -> None:
    """A probe found nothing past the watermark at `at`: the target was caught up then."""
    conn.execute(
        """
        UPDATE etl_cdc_watermarks
           SET last_processed_time = greatest(last_processed_time, %s), updated_at = now()
         WHERE pipeline_id = %s AND source_table = %s
        """,
        (at, pipeline_id, source_table),
    )


def forget(conn: Connection, pipeline_id: str) -> int:
    """The pipeline is deleted: its rows would otherwise show as lag forever."""
    return conn.execute(
        "DELETE FROM etl_cdc_watermarks WHERE pipeline_id = %s", (pipeline_id,)
    ).rowcount


def max_lag_seconds(conn: Connection) -> float | None:
    """How far the most lagging CDC pipeline is behind (`NOW() - last_processed_time`)."""
    row = conn.execute(
        "SELECT max(extract(epoch FROM now() - last_processed_time)) FROM etl_cdc_watermarks"
    ).fetchone()
    return None if row is None or row[0] is None else round(float(row[0]), 3)
