"""`etl_admin_stops`: what an operator's stop-all stopped, until resume-all restarts it."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import Connection


@dataclass(frozen=True)
class Stopped:
    kind: str  # schedule | sensor | run
    name: str
    pipeline_id: str | None


def record_stops(conn: Connection, stopped: list[Stopped]) -> None:
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO etl_admin_stops (kind, name, pipeline_id) VALUES (%s, %s, %s)",
            [(s.kind, s.name, s.pipeline_id) for s in stopped],
        )


def open_stops(conn: Connection) -> list[Stopped]:
    """Schedules and sensors stopped by stop-all and not resumed yet (runs are not restarted)."""
    rows = conn.execute(
        "SELECT DISTINCT kind, name, pipeline_id FROM etl_admin_stops "
        "WHERE resumed_at IS NULL AND kind <> 'run' ORDER BY kind, name"
    ).fetchall()
    return [Stopped(*row) for row in rows]


def mark_resumed(conn: Connection, resumed: list[Stopped]) -> None:
    with conn.cursor() as cursor:
        cursor.executemany(
            "UPDATE etl_admin_stops SET resumed_at = now() "
            "WHERE resumed_at IS NULL AND kind = %s AND name = %s",
            [(s.kind, s.name) for s in resumed],
        )
        cursor.execute(
            "UPDATE etl_admin_stops SET resumed_at = now() "
            "WHERE resumed_at IS NULL AND kind = 'run'"
        )
