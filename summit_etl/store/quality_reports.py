"""`data_quality_reports`: one report per run with quality rules (written by the quality stage)."""

from __future__ import annotations

from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb

_REPORT = """
    SELECT pipeline_run_id, pipeline_id, "timestamp", overall_score, dimensions, issues, statistics
      FROM data_quality_reports
"""


def _as_report(row: tuple | None) -> dict[str, Any] | None:
    if row is None:
        return None
    run_id, pipeline_id, timestamp, score, dimensions, issues, statistics = row
    return {
        "pipelineRunId": run_id,
        "pipelineId": pipeline_id,
        "timestamp": timestamp.isoformat(),
        "overallScore": score,
        "dimensions": dimensions,
        "issues": issues,
        "statistics": statistics,
    }


def for_run(conn: Connection, run_id: str) -> dict[str, Any] | None:
    return _as_report(conn.execute(_REPORT + " WHERE pipeline_run_id = %s", (run_id,)).fetchone())


def latest(conn: Connection, pipeline_id: str | None) -> dict[str, Any] | None:
    return _as_report(
        conn.execute(
            _REPORT
            + " WHERE (%(p)s::text IS NULL OR pipeline_id = %(p)s)"
            + ' ORDER BY "timestamp" DESC LIMIT 1',
            {"p": pipeline_id},
        ).fetchone()
    )


def average_score(conn: Connection) -> float | None:
    row = conn.execute("SELECT avg(overall_score) FROM data_quality_reports").fetchone()
    return None if row is None or row[0] is None else round(float(row[0]), 2)


def save(conn: Connection, report: dict[str, Any]) -> None:
    conn.execute(
        """
        INSERT INTO data_quality_reports
            (pipeline_run_id, pipeline_id, overall_score, dimensions, issues, statistics)
        VALUES (%s, %s, %s, %s, %s, %s)
        ON CONFLICT (pipeline_run_id) DO UPDATE
           SET overall_score = EXCLUDED.overall_score, dimensions = EXCLUDED.dimensions,
               issues = EXCLUDED.issues, statistics = EXCLUDED.statistics, "timestamp" = now()
        """,
        (
            report["pipelineRunId"],
            report["pipelineId"],
            report["overallScore"],
            Jsonb(report["dimensions"]),
            Jsonb(report["issues"]),
            Jsonb(report["statistics"]),
        ),
    )
