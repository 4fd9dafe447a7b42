"""`etl_schema_changes`: the source schema changes each run detected and what it did."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from summit_etl.schema.contract import SchemaChange
from summit_etl.store.db import connect

log = logging.getLogger("summit_etl.schema")


def record(
    summit_url: str, pipeline_id: str, run_id: str, target: str, changes: Sequence[SchemaChange]
) -> None:
    """Store the changes and give each a line in the run's log."""
    if not changes:
        return
    with connect(summit_url) as conn:
        for change in changes:
            conn.execute(
                """
                INSERT INTO etl_schema_changes (pipeline_id, run_id, target_table, column_name,
                                                change, source_type, target_type, action)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
                """,
                (
                    pipeline_id,
                    run_id,
                    target,
                    change.column,
                    change.change,
                    change.source_type,
                    change.target_type,
                    change.action,
                ),
            )
            log.warning(
                f"source schema change: column {change.column!r} {change.change} "
                f"({change.source_type or '-'} / target {change.target_type or '-'}): "
                f"{change.action}",
                extra={"pipelineId": pipeline_id, "runId": run_id, "stage": "loading"},
            )
