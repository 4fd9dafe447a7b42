"""`etl_cdc_watermarks`: one current row per CDC pipeline and source table."""

from __future__ import annotations

from psycopg import Connection


def max_lag_seconds(conn: Connection) -> float | None:
    """How far the most lagging CDC pipeline is behind (`NOW() - last_processed_time`)."""
    row = conn.execute(
        "SELECT max(extract(epoch FROM now() - last_processed_time)) FROM etl_cdc_watermarks"
    ).fetchone()
    return None if row is None or row[0] is None else round(float(row[0]), 3)
