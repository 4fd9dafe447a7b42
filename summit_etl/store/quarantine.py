"""`etl_quarantine`: rows held back by `action: quarantine`, kept until replayed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb

from summit_etl.store.db import connect


def _json_safe(row: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(row, default=str))


@dataclass(frozen=True)
class QuarantineWriter:
    """Writes a run's quarantined rows as they are found (a sink for the quality gate)."""

    summit_url: str
    run_id: str
    pipeline_id: str

    def write(self, rows: list[dict[str, Any]], failed_rules: list[list[str]]) -> None:
        with connect(self.summit_url) as conn, conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO etl_quarantine (run_id, pipeline_id, record, failed_rules) "
                "VALUES (%s, %s, %s, %s)",
                [
                    (self.run_id, self.pipeline_id, Jsonb(_json_safe(row)), Jsonb(rules))
                    for row, rules in zip(rows, failed_rules, strict=True)
                ],
            )


def pending(conn: Connection, pipeline_id: str, run_id: str) -> list[tuple[int, dict[str, Any]]]:
    """(id, record) of a run's quarantined rows not replayed yet."""
    rows = conn.execute(
        "SELECT id, record FROM etl_quarantine "
        "WHERE pipeline_id = %s AND run_id = %s AND replayed_at IS NULL ORDER BY id",
        (pipeline_id, run_id),
    ).fetchall()
    return [(int(r[0]), dict(r[1])) for r in rows]


def mark_replayed(conn: Connection, ids: list[int], replay_id: str) -> None:
    conn.execute(
        "UPDATE etl_quarantine SET replayed_at = now(), replay_run_id = %s WHERE id = ANY(%s)",
        (replay_id, ids),
    )
