"""Maintenance (runbook "Maintenance Tasks"), each a function that the Dagster jobs in
orchestration/maintenance.py schedule and that `summit-etl maintenance run NAME` calls:

- `prune_runs`: `pipeline_runs` rows older than the retention (ETL_RUN_RETENTION_DAYS, 30);
- `archive_changes`: `<target>_changes` rows older than ETL_CHANGES_ARCHIVE_DAYS (90) moved
  into `<target>_changes_archive`, per CDC pipeline, in one transaction each;
- `vacuum_watermarks`: VACUUM ANALYZE of etl_watermarks and etl_cdc_watermarks, one
  statement at a time (VACUUM refuses to run inside a transaction block, which is why the
  runbook's single `psql -c` with both fails);
- `quality_trend`: the runbook's weekly average quality score per day.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from summit_etl.cdc.target import CHANGES_SUFFIX
from summit_etl.config import ExtractionStrategy, PipelineConfig
from summit_etl.store.db import connect

log = logging.getLogger("summit_etl.maintenance")

ARCHIVE_SUFFIX = "_archive"


@dataclass
class TaskResult:
    name: str
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MaintenanceSettings:
    run_retention_days: int = 30
    changes_archive_days: int = 90
    trend_days: int = 7

    @classmethod
    def from_env(cls) -> MaintenanceSettings:
        return cls(
            run_retention_days=int(os.environ.get("ETL_RUN_RETENTION_DAYS", "30")),
            changes_archive_days=int(os.environ.get("ETL_CHANGES_ARCHIVE_DAYS", "90")),
        )


Task = Callable[[str, Mapping[str, PipelineConfig], MaintenanceSettings], TaskResult]


def prune_runs(
    summit_url: str, pipelines: Mapping[str, PipelineConfig], settings: MaintenanceSettings
) -> TaskResult:
    with connect(summit_url) as conn:
        deleted = conn.execute(
            "DELETE FROM pipeline_runs WHERE created_at < now() - make_interval(days => %s)",
            (settings.run_retention_days,),
        ).rowcount
    return TaskResult(
        "prune_runs",
        f"deleted {deleted} pipeline_runs rows older than {settings.run_retention_days} days",
        {"deleted": deleted},
    )


def archive_changes(
    summit_url: str, pipelines: Mapping[str, PipelineConfig], settings: MaintenanceSettings
) -> TaskResult:
    moved: dict[str, int] = {}
    for config in pipelines.values():
        if config.extraction.strategy is not ExtractionStrategy.cdc:
            continue
        changes = config.loading.target_name.with_suffix(CHANGES_SUFFIX)
        archive = changes.with_suffix(ARCHIVE_SUFFIX)
        with connect(config.target_url(summit_url), autocommit=False) as conn, conn.transaction():
            exists = conn.execute(
                "SELECT to_regclass(%s)", (changes.ident.as_string(None),)
            ).fetchone()
            if not exists or exists[0] is None:
                continue  # CDC never ran: nothing to archive
            conn.execute(
                sql.SQL("CREATE TABLE IF NOT EXISTS {} (LIKE {})").format(
                    archive.ident, changes.ident
                )
            )
            moved[str(changes)] = conn.execute(
                sql.SQL(
                    "WITH moved AS (DELETE FROM {} WHERE changed_at < now() - "
                    "make_interval(days => %s) RETURNING *) INSERT INTO {} SELECT * FROM moved"
                ).format(changes.ident, archive.ident),
                (settings.changes_archive_days,),
            ).rowcount
    total = sum(moved.values())
    return TaskResult(
        "archive_changes",
        f"archived {total} change-log rows older than {settings.changes_archive_days} days "
        f"from {len(moved)} tables",
        {"archived": moved},
    )


def vacuum_watermarks(
    summit_url: str, pipelines: Mapping[str, PipelineConfig], settings: MaintenanceSettings
) -> TaskResult:
    tables = ["etl_watermarks", "etl_cdc_watermarks"]
    with connect(summit_url) as conn:  # autocommit: VACUUM cannot run in a transaction
        for table in tables:
            conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(table)))
    return TaskResult("vacuum_watermarks", f"vacuumed and analyzed {', '.join(tables)}")


def quality_trend(
    summit_url: str, pipelines: Mapping[str, PipelineConfig], settings: MaintenanceSettings
) -> TaskResult:
    with connect(summit_url) as conn:
        rows = conn.execute(
            """
            SELECT DATE(timestamp) AS date, AVG(overall_score) AS avg_quality_score
              FROM data_quality_reports
             WHERE timestamp > NOW() - make_interval(days => %s)
             GROUP BY DATE(timestamp)
             ORDER BY date
            """,
            (settings.trend_days,),
        ).fetchall()
    trend = [{"date": d.isoformat(), "averageScore": round(float(s), 2)} for d, s in rows]
    return TaskResult(
        "quality_trend",
        f"average quality score on {len(trend)} of the last {settings.trend_days} days",
        {"trend": trend},
    )


TASKS: dict[str, Task] = {
    task.__name__: task for task in (prune_runs, archive_changes, vacuum_watermarks, quality_trend)
}


def run_task(
    name: str, summit_url: str, pipelines: Mapping[str, PipelineConfig]
) -> TaskResult:
    if name not in TASKS:
        raise KeyError(f"unknown maintenance task {name!r}: one of {', '.join(TASKS)}")
    result = TASKS[name](summit_url, pipelines, MaintenanceSettings.from_env())
    log.info("maintenance done", extra={"task": name, "summary": result.summary})
    return result
