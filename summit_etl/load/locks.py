"""One writer per target: the advisory lock every transaction that writes a target takes.

Batch loads, CDC batch applies and quarantine replays of one target serialize on it, even
when they come from different pipelines or processes; readers are never blocked. The lock
is transaction-scoped, so a crash or a rollback releases it.

A second writer waits for the first rather than failing: the session's `lock_timeout`
(the pipeline's `timeouts.lockSeconds`, meant for DDL queued behind readers) is lifted for
this one wait and put back after it; `statement_timeout` still bounds it.
"""

from __future__ import annotations

from psycopg import sql

from summit_etl.identifiers import TableName


def target_lock(table: TableName) -> sql.Composed:
    """`SELECT pg_advisory_xact_lock(...)` keyed on the table's schema-qualified name (an
    unqualified name counts as `public`), to run first in a transaction that writes it."""
    key = f"summit-target:{table.schema or 'public'}.{table.name}"
    # The FROM item runs first: it remembers the lock timeout and lifts it, the lock is
    # taken, then the remembered timeout is restored for the rest of the transaction.
    return sql.SQL(
        "SELECT pg_advisory_xact_lock(hashtextextended({}, 0)), "
        "set_config('lock_timeout', previous, true) "
        "FROM (SELECT current_setting('lock_timeout') AS previous, "
        "set_config('lock_timeout', '0', true)) AS lifted"
    ).format(sql.Literal(key))
