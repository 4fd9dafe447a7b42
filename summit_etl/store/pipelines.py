"""The `pipelines` table: the operators' switchboard (`enabled`) and the API's stored configs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
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
    created_at: datetime
    updated_at: datetime


def list_rows(conn: Connection) -> list[PipelineRow]:
    rows = conn.execute(
        "SELECT pipeline_id, name, enabled, config, origin, version, created_at, updated_at "
        "FROM pipelines ORDER BY pipeline_id"
    ).fetchall()
    return [PipelineRow(*row) for row in rows]


def get_row(conn: Connection, pipeline_id: str) -> PipelineRow | None:
    row = conn.execute(
        "SELECT pipeline_id, name, enabled, config, origin, version, created_at, updated_at "
        "FROM pipelines "
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


class PipelineExists(ValueError):
    pass


def create(conn: Connection, raw: dict[str, Any], enabled: bool) -> PipelineRow:
    """Store a pipeline sent to the API; PipelineExists when its id is taken."""
    row = conn.execute(
        """
        INSERT INTO pipelines (pipeline_id, name, enabled, config, origin)
        VALUES (%(id)s, %(name)s, %(enabled)s, %(config)s, 'api')
        ON CONFLICT (pipeline_id) DO NOTHING
        RETURNING pipeline_id, name, enabled, config, origin, version, created_at, updated_at
        """,
        {"id": raw["id"], "name": raw["name"], "enabled": enabled, "config": Jsonb(raw)},
    ).fetchone()
    if row is None:
        raise PipelineExists(f"pipeline {raw['id']!r} already exists")
    return PipelineRow(*row)


def replace(conn: Connection, raw: dict[str, Any], enabled: bool) -> PipelineRow | None:
    """New config for an API pipeline, version bumped; None when there is no such row."""
    row = conn.execute(
        """
        UPDATE pipelines
           SET config = %(config)s, name = %(name)s, enabled = %(enabled)s,
               version = version + 1, updated_at = now()
         WHERE pipeline_id = %(id)s
        RETURNING pipeline_id, name, enabled, config, origin, version, created_at, updated_at
        """,
        {"id": raw["id"], "name": raw["name"], "enabled": enabled, "config": Jsonb(raw)},
    ).fetchone()
    return PipelineRow(*row) if row else None


def set_enabled(conn: Connection, pipeline_id: str, enabled: bool) -> None:
    conn.execute(
        "UPDATE pipelines SET enabled = %s, updated_at = now() WHERE pipeline_id = %s",
        (enabled, pipeline_id),
    )


def delete(conn: Connection, pipeline_id: str) -> bool:
    cursor = conn.execute("DELETE FROM pipelines WHERE pipeline_id = %s", (pipeline_id,))
    return cursor.rowcount > 0


def counts(conn: Connection) -> tuple[int, int]:
    """(all pipelines, enabled pipelines)."""
    row = conn.execute("SELECT count(*), count(*) FILTER (WHERE enabled) FROM pipelines").fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)
