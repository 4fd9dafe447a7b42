"""The `pipelines` table: the operators' switchboard (`enabled`) and the API's stored configs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from summit_etl.store.db import connect


@dataclass(frozen=True)
class PipelineRow:
    pipeline_id: str
    name: str
    enabled: bool
    config: dict[str, Any]
    origin: str
    version: int


def list_rows(url: str) -> list[PipelineRow]:
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT pipeline_id, name, enabled, config, origin, version "
            "FROM pipelines ORDER BY pipeline_id"
        ).fetchall()
    return [PipelineRow(*row) for row in rows]


def get_row(url: str, pipeline_id: str) -> PipelineRow | None:
    with connect(url) as conn:
        row = conn.execute(
            "SELECT pipeline_id, name, enabled, config, origin, version FROM pipelines "
            "WHERE pipeline_id = %s",
            (pipeline_id,),
        ).fetchone()
    return PipelineRow(*row) if row else None


def is_enabled(url: str, pipeline_id: str, default: bool) -> bool:
    """The operator's switch for a pipeline; `default` when it has no row yet."""
    with connect(url) as conn:
        row = conn.execute(
            "SELECT enabled FROM pipelines WHERE pipeline_id = %s", (pipeline_id,)
        ).fetchone()
    return bool(row[0]) if row else default


def sync_file_pipeline(url: str, raw: dict[str, Any], enabled: bool) -> None:
    """Record a YAML-defined pipeline; its config follows the file, `enabled` stays the operator's.

    A row first written by the API keeps its origin: the API owns it, and the clash is
    reported by the registry.
    """
    with connect(url) as conn:
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
