"""The state a batch run starts from, and when not to trust it.

A watermark describes rows already in the target. When the target is missing or empty
(dropped, truncated, or created afresh for a pipeline that reuses an old id) the watermark
describes nothing: the run reads everything, and says why.
"""

from __future__ import annotations

import logging

import psycopg
from psycopg import sql

from summit_etl.identifiers import TableName
from summit_etl.runs.context import RunContext
from summit_etl.store import watermarks as watermark_store
from summit_etl.store.db import connect

log = logging.getLogger("summit_etl.engine")


def stored_watermark(ctx: RunContext) -> str | None:
    """The watermark to read on from; None (a full read) when none exists or the target
    holds no rows it could describe."""
    config = ctx.config
    with connect(ctx.summit_url) as conn:
        stored = watermark_store.current(conn, config.id, config.source.label)
    if stored is None:
        return None
    table = config.loading.target_name
    state = _target_state(ctx.target_url, table)
    if state is not None:
        log.warning(
            f"target {table} is {state} but a watermark exists: reading every row",
            extra={**ctx.log_context, "stage": "extraction", "ignoredWatermark": stored},
        )
        return None
    return stored


def _target_state(url: str, table: TableName) -> str | None:
    """'missing' or 'empty' when the target holds no rows; None when it holds some."""
    with psycopg.connect(url, autocommit=True) as conn:
        found = conn.execute("SELECT to_regclass(%s)", (table.ident.as_string(conn),)).fetchone()
        if found is None or found[0] is None:
            return "missing"
        row = conn.execute(
            sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(table.ident)
        ).fetchone()
    return None if row and row[0] else "empty"
