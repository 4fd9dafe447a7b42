"""The `etl_alerts` table: open, keep, resolve and acknowledge alerts; record deliveries."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import Connection
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

SEVERITIES = ("critical", "warning", "info")
STATUSES = ("open", "resolved")
_COLUMNS = """id, rule, severity, pipeline_id, dedup_key, status, message, details, link,
              opened_at, updated_at, resolved_at, acknowledged_at, acknowledged_by, deliveries"""


@dataclass(frozen=True)
class Finding:
    """A rule firing now for one subject (a pipeline, a run, the service)."""

    rule: str
    severity: str
    subject: str
    message: str
    pipeline_id: str | None = None
    details: dict[str, Any] | None = None
    link: str | None = None

    @property
    def dedup_key(self) -> str:
        return f"{self.rule}:{self.subject}"


@dataclass(frozen=True)
class Alert:
    id: int
    rule: str
    severity: str
    pipeline_id: str | None
    dedup_key: str
    status: str
    message: str
    details: dict[str, Any]
    link: str | None
    opened_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    deliveries: list[dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "id": self.id,
            "rule": self.rule,
            "severity": self.severity,
            "pipelineId": self.pipeline_id,
            "status": self.status,
            "message": self.message,
            "details": self.details,
            "link": self.link,
            "openedAt": iso(self.opened_at),
            "updatedAt": iso(self.updated_at),
            "resolvedAt": iso(self.resolved_at),
            "acknowledgedAt": iso(self.acknowledged_at),
            "acknowledgedBy": self.acknowledged_by,
            "deliveries": self.deliveries,
        }


def sync(
    conn: Connection, findings: Iterable[Finding], evaluated_rules: set[str]
) -> tuple[list[Alert], list[Alert]]:
    """Open an alert for each new finding, refresh the open ones that still fire, and resolve
    the open alerts of `evaluated_rules` that no longer do (a rule that could not be
    evaluated this time keeps its alerts as they are). Returns (opened, resolved)."""
    firing = {f.dedup_key: f for f in findings}
    opened: list[Alert] = []
    with conn.transaction(), conn.cursor(row_factory=class_row(Alert)) as cursor:
        cursor.execute(f"SELECT {_COLUMNS} FROM etl_alerts WHERE status = 'open' FOR UPDATE")  # noqa: S608
        still_open = {a.dedup_key: a for a in cursor.fetchall()}
        for key, finding in firing.items():
            if key in still_open:
                cursor.execute(
                    "UPDATE etl_alerts SET message = %s, details = %s, updated_at = now() "
                    "WHERE id = %s",
                    (finding.message, Jsonb(finding.details or {}), still_open[key].id),
                )
                continue
            cursor.execute(
                f"""
                INSERT INTO etl_alerts
                       (rule, severity, pipeline_id, dedup_key, message, details, link)
                VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}
                """,  # noqa: S608
                (
                    finding.rule,
                    finding.severity,
                    finding.pipeline_id,
                    key,
                    finding.message,
                    Jsonb(finding.details or {}),
                    finding.link,
                ),
            )
            opened.append(_one(cursor.fetchone()))
        gone = [
            a.id for k, a in still_open.items() if k not in firing and a.rule in evaluated_rules
        ]
        cursor.execute(
            f"""
            UPDATE etl_alerts SET status = 'resolved', resolved_at = now(), updated_at = now()
             WHERE id = ANY(%s) RETURNING {_COLUMNS}
            """,  # noqa: S608
            (gone,),
        )
        resolved = cursor.fetchall()
    return opened, resolved


def _one(alert: Alert | None) -> Alert:
    if alert is None:  # pragma: no cover - RETURNING of an insert always yields the row
        raise LookupError("the alert row was not returned")
    return alert


def add_delivery(conn: Connection, alert_id: int, record: dict[str, Any]) -> None:
    conn.execute(
        "UPDATE etl_alerts SET deliveries = deliveries || jsonb_build_array(%s::jsonb) "
        "WHERE id = %s",
        (Jsonb(record), alert_id),
    )


def list_alerts(
    conn: Connection, status: str | None = None, severity: str | None = None, limit: int = 100
) -> list[Alert]:
    with conn.cursor(row_factory=class_row(Alert)) as cursor:
        cursor.execute(
            f"""
            SELECT {_COLUMNS} FROM etl_alerts
             WHERE (%(status)s::text IS NULL OR status = %(status)s)
               AND (%(severity)s::text IS NULL OR severity = %(severity)s)
             ORDER BY opened_at DESC, id DESC LIMIT %(limit)s
            """,  # noqa: S608
            {"status": status, "severity": severity, "limit": limit},
        )
        return cursor.fetchall()


def acknowledge(conn: Connection, alert_id: int, by: str) -> Alert | None:
    """Mark the alert seen by `by` (the first acknowledgement is kept); None if unknown."""
    with conn.cursor(row_factory=class_row(Alert)) as cursor:
        cursor.execute(
            f"""
            UPDATE etl_alerts SET acknowledged_at = coalesce(acknowledged_at, now()),
                   acknowledged_by = coalesce(acknowledged_by, %s)
             WHERE id = %s RETURNING {_COLUMNS}
            """,  # noqa: S608
            (by, alert_id),
        )
        return cursor.fetchone()


def open_counts(conn: Connection) -> dict[str, int]:
    rows = conn.execute(
        "SELECT severity, count(*) FROM etl_alerts WHERE status = 'open' GROUP BY severity"
    ).fetchall()
    found: dict[str, int] = {str(severity): int(count) for severity, count in rows}
    return {severity: int(found.get(severity, 0)) for severity in SEVERITIES}
