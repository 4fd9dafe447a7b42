"""The `pipelines` table: the operators' switchboard (`enabled`) and the API's stored configs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb


@dataclass(frozen=True)
class PipelineRow:
    pipeline_id: str
    name: str
    enabled: bool
    config: dict[str, Any]
    origin: str
    version: int


def list_rows(conn: Connection) -> list[PipelineRow]:
    rows = conn.execute(
        "SELECT pipeline_id, name, enabled, config, origin, version "
        "FROM pipelines ORDER BY pipeline_id"
    ).fetchall()
    return [PipelineRow(*row) for row in rows]


def get_row(conn: Connection, pipeline_id: str) -> PipelineRow | None:
    row = conn.execute(
        "SELECT pipeline_id, name, enabled, config, origin, version FROM pipelines "
        "WHERE pipeline_id = %s",
        (pipeline_id,),
    ).fetchone()
    return PipelineRow(*row) if row else None


def is_enabled(conn: Connection, pipeline_id: str, default: bool) -> bool:
    """The operator's switch for a pipeline; `default` when it has no row yet."""
    row = conn.execute(
        "SELECT enabled FROM pipelines WHERE pipeline_id = %s", (pipeline_id,)
    ).fetchone()
    return bool(row[0]) if row else default


def sync_file_pipeline(conn: Connection, raw: dict[str, Any], enabled: bool) -> None:
    """Record a YAML-defined pipeline; its config follows the file, `enabled` stays the operator's.

    A row first written by the API keeps its origin: the API owns it, and the clash is
    reported by the registry.
    """
    conn.execute(
        """
        INSERT INTO pipelines (pipeline_id, name, enabled, config, origin)
        VALUES (%(id)s, %(name)s, %(enabled)s, %(config)s, 'file')
        ON CONFLICT (pipeline_id) DO UPDATE
           SET config = EXCLUDED.config,
               name = EXCLUDED.name,
               version = pipelines.version + 1,
               updated_at = now()
         WHERE pipelines.origin = 'file' AND pipelines.config IS DISTINCT FROM EXCLUDED.config
        """,
        {
            "id": raw["id"],
            "name": raw.get("name", raw["id"]),
            "enabled": enabled,
            "config": Jsonb(raw),
        },
    )
