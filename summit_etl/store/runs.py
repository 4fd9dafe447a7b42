"""The `pipeline_runs` table: one row per run, written at start, at the end and on crashes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from psycopg import Connection
from psycopg.types.json import Jsonb

TERMINAL_STATUSES = ("success", "partial_success", "failed", "cancelled")
_STAGES = ("extraction", "transformation", "validation", "loading")


@dataclass
class RunError:
    stage: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    timestamp: str = field(default_factory=lambda: datetime.now(UTC).isoformat())


def dagster_failure(
    message: str, cause: str | None, event: str, step_key: str | None, timestamp: str | None = None
) -> RunError:
    """A failure Dagster recorded for a run that did not record its own end, as its error
    entry (`details.source: dagster`). The daemon's failure sensor and the API's refresh
    both close such runs; either way the entry reads the same.

    `message` is Dagster's event message; `cause` what the engine raised, where known.
    """
    said = cause or message or "the run failed"
    return RunError(
        # The engine's StageFailure says "<stage> failed: ..."
        stage=next((s for s in _STAGES if f"{s} failed" in f"{message} {said}"), "loading"),
        message=said,
        details={"source": "dagster", "event": event, "stepKey": step_key},
        timestamp=timestamp or datetime.now(UTC).isoformat(),
    )


@dataclass
class RunCounts:
    records_extracted: int = 0
    records_transformed: int = 0
    records_filtered: int = 0
    records_loaded: int = 0
    records_failed: int = 0
    records_quarantined: int = 0
    bytes_processed: int = 0


def start_run(
    conn: Connection, run_id: str, pipeline_id: str, trigger: str, full_reload: bool
) -> None:
    conn.execute(
        """
        INSERT INTO pipeline_runs (id, pipeline_id, status, trigger, full_reload, start_time)
        VALUES (%s, %s, 'running', %s, %s, now())
        ON CONFLICT (id) DO UPDATE
           SET status = 'running', start_time = now(), end_time = NULL,
               trigger = EXCLUDED.trigger, full_reload = EXCLUDED.full_reload
        """,
        (run_id, pipeline_id, trigger, full_reload),
    )


def finish_run(
    conn: Connection,
    run_id: str,
    *,
    status: str,
    counts: RunCounts,
    metrics: dict[str, Any],
    errors: list[RunError],
    watermark_from: str | None = None,
    watermark_to: str | None = None,
    quality_score: float | None = None,
) -> None:
    """The run's own end record. It replaces a `cancelled` the API wrote when it asked
    Dagster to stop the run: only the run knows whether its work committed first."""
    assignments = asdict(counts)
    conn.execute(
        """
        UPDATE pipeline_runs
           SET status = %(status)s, end_time = now(),
               records_extracted = %(records_extracted)s,
               records_transformed = %(records_transformed)s,
               records_filtered = %(records_filtered)s,
               records_loaded = %(records_loaded)s,
               records_failed = %(records_failed)s,
               records_quarantined = %(records_quarantined)s,
               bytes_processed = %(bytes_processed)s,
               metrics = %(metrics)s, errors = %(errors)s,
               watermark_from = %(watermark_from)s, watermark_to = %(watermark_to)s,
               quality_score = %(quality_score)s
         WHERE id = %(run_id)s
        """,
        {
            **assignments,
            "status": status,
            "metrics": Jsonb(metrics),
            "errors": Jsonb([asdict(e) for e in errors]),
            "watermark_from": watermark_from,
            "watermark_to": watermark_to,
            "quality_score": quality_score,
            "run_id": run_id,
        },
    )


def mark_ended_abnormally(
    conn: Connection, run_id: str, pipeline_id: str, status: str, error: RunError | None
) -> bool:
    """Record a run that ended without writing its own result (crash, kill, cancel).

    Returns True when the row changed; a run that already recorded its end is left as is.
    """
    errors = Jsonb([asdict(error)] if error else [])
    cursor = conn.execute(
        """
        INSERT INTO pipeline_runs (id, pipeline_id, status, end_time, errors)
        VALUES (%(id)s, %(pipeline_id)s, %(status)s, now(), %(errors)s)
        ON CONFLICT (id) DO UPDATE
           SET status = EXCLUDED.status, end_time = now(),
               errors = pipeline_runs.errors || EXCLUDED.errors
         WHERE pipeline_runs.status NOT IN ('success', 'partial_success', 'failed', 'cancelled')
        """,
        {"id": run_id, "pipeline_id": pipeline_id, "status": status, "errors": errors},
    )
    return cursor.rowcount > 0


def unfinished(conn: Connection) -> list[tuple[str, str]]:
    """(run id, pipeline id) of the runs not yet ended, oldest first."""
    rows = conn.execute(
        "SELECT id, pipeline_id FROM pipeline_runs WHERE status IN ('pending', 'running') "
        "ORDER BY created_at"
    ).fetchall()
    return [(str(run_id), str(pipeline_id)) for run_id, pipeline_id in rows]


def get_run(conn: Connection, run_id: str) -> dict[str, Any] | None:
    cursor = conn.execute("SELECT * FROM pipeline_runs WHERE id = %s", (run_id,))
    row = cursor.fetchone()
    if row is None:
        return None
    return dict(zip([c.name for c in cursor.description or []], row, strict=True))


def record_pending(
    conn: Connection, run_id: str, pipeline_id: str, trigger: str, full_reload: bool
) -> None:
    """A run just launched through Dagster; the engine turns it `running` when it starts."""
    conn.execute(
        """
        INSERT INTO pipeline_runs (id, pipeline_id, status, trigger, full_reload)
        VALUES (%s, %s, 'pending', %s, %s)
        ON CONFLICT (id) DO NOTHING
        """,
        (run_id, pipeline_id, trigger, full_reload),
    )


def list_runs(
    conn: Connection, pipeline_id: str, *, limit: int, status: str | None = None
) -> list[dict[str, Any]]:
    """A pipeline's runs, newest first."""
    cursor = conn.execute(
        """
        SELECT * FROM pipeline_runs
         WHERE pipeline_id = %(pipeline_id)s AND (%(status)s::text IS NULL OR status = %(status)s)
         ORDER BY created_at DESC, id
         LIMIT %(limit)s
        """,
        {"pipeline_id": pipeline_id, "status": status, "limit": limit},
    )
    names = [c.name for c in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def totals(conn: Connection) -> dict[str, int]:
    row = conn.execute(
        """
        SELECT count(*),
               count(*) FILTER (WHERE status IN ('success', 'partial_success')),
               count(*) FILTER (WHERE status = 'failed'),
               count(*) FILTER (WHERE status IN ('pending', 'running')),
               coalesce(sum(records_loaded), 0)
          FROM pipeline_runs
        """
    ).fetchone()
    keys = ("totalRuns", "successfulRuns", "failedRuns", "runningRuns", "totalRecordsProcessed")
    return dict(zip(keys, (int(v) for v in row or (0,) * 5), strict=True))
