"""One writer per target: the advisory lock every transaction that writes a target takes.

Batch loads, CDC batch applies and quarantine replays of one target serialize on it, even
when they come from different pipelines or processes; readers are never blocked. The lock
is transaction-scoped, so a crash or a rollback releases it.
"""

from __future__ import annotations

from psycopg import sql

from summit_etl.identifiers import TableName


def target_lock(table: TableName) -> sql.Composed:
    """`SELECT pg_advisory_xact_lock(...)` keyed on the table's schema-qualified name (an
    unqualified name counts as `public`), to run first in a transaction that writes it."""
    key = f"summit-target:{table.schema or 'public'}.{table.name}"
    return sql.SQL("SELECT pg_advisory_xact_lock(hashtextextended({}, 0))").format(
        sql.Literal(key)
    )
