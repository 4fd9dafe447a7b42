"""One writer per target: the advisory lock every transaction that writes a target takes.

Batch loads, CDC batch applies and quarantine replays of one target serialize on it, even
when they come from different pipelines or processes; readers are never blocked. The lock
is transaction-scoped, so a crash or a rollback releases it.

A slice of a partitioned full read (orchestration/slices.py) replaces one key range only:
it takes the target's lock shared, so slices of different ranges write at the same time
while every other writer (which takes it exclusively) waits for them and they for it, and
takes its own range's lock exclusively (keyed on the range's bounds), so two loads of one
range still take turns. Slices that hold the target's key at once split the table the same
way (runs/slice.py changes the split only under the exclusive lock), so their ranges are
equal or disjoint.

A second writer waits for the first rather than failing: the session's `lock_timeout`
(the pipeline's `timeouts.lockSeconds`, meant for DDL queued behind readers) is lifted for
this one wait and put back after it; `statement_timeout` still bounds it.
"""

from __future__ import annotations

from psycopg import sql

from summit_etl.extract.ranges import ReadRange
from summit_etl.identifiers import TableName


def target_lock(table: TableName, within: ReadRange | None = None) -> sql.Composed:
    """`SELECT pg_advisory_xact_lock(...)` keyed on the table's schema-qualified name (an
    unqualified name counts as `public`), to run first in a transaction that writes it;
    for a load `within` one range, that key shared and the range's own key exclusively."""
    key = f"summit-target:{table.schema or 'public'}.{table.name}"
    if within is None:
        taken = sql.SQL("pg_advisory_xact_lock(hashtextextended({}, 0))").format(
            sql.Literal(key)
        )
    else:
        # Both in one target list: evaluated left to right, the shared lock first, so every
        # writer takes the target's key before any other and none can deadlock another.
        taken = sql.SQL(
            "pg_advisory_xact_lock_shared(hashtextextended({}, 0)), "
            "pg_advisory_xact_lock(hashtextextended({}, 0))"
        ).format(sql.Literal(key), sql.Literal(f"{key}#{within.predicate().as_string(None)}"))
    # The FROM item runs first: it remembers the lock timeout and lifts it, the lock is
    # taken, then the remembered timeout is restored for the rest of the transaction.
    return sql.SQL(
        "SELECT {}, set_config('lock_timeout', previous, true) "
        "FROM (SELECT current_setting('lock_timeout') AS previous, "
        "set_config('lock_timeout', '0', true)) AS lifted"
    ).format(taken)
