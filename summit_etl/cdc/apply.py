"""Apply one batch of changes to the target: rows, change log and offset in one transaction.

The batch is copied into a temporary stage, changes already in the change log are
dropped (a replay after a crash between the target commit and the source's release),
and the rest is applied with set-based SQL on the newest change per key. The change
log insert and the offset update commit in the same transaction, so a change is either
applied, logged and covered by the offset, or none of the three.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import psycopg
import pyarrow as pa
from psycopg import sql

from summit_etl.cdc.changes import DELETE, UPSERT, ChangeBatch
from summit_etl.cdc.documents import json_columns, restore_json
from summit_etl.cdc.target import CdcTarget, write_offset
from summit_etl.config import LoadStrategy
from summit_etl.faults import failpoint
from summit_etl.load.locks import target_lock
from summit_etl.load.merge_sql import MergeSql
from summit_etl.load.target import affected

STAGE = sql.Identifier("summit_cdc_stage")
ROWS = sql.Identifier("summit_cdc_rows")
LATEST = sql.Identifier("summit_cdc_latest")
SEQ = sql.Identifier("_summit_seq")
OP = sql.Identifier("_summit_op")
NEW = sql.Identifier("_summit_new")
_SCD2_HISTORY = sql.SQL("- 'effective_from' - 'effective_to' - 'is_current'")


@dataclass(frozen=True)
class RowCheck:
    """Quality rules on the new values of a batch's changes, run inside its transaction
    before anything is applied: raising rolls the whole batch back."""

    fields: list[str]  # the target columns the rules read
    check: Callable[[pa.Table], None]


@dataclass
class Applied:
    changes: int = 0  # new changes applied and logged (replayed ones excluded)
    inserted: int = 0
    updated: int = 0
    deleted: int = 0


def apply_batch(
    conn: psycopg.Connection,
    target: CdcTarget,
    batch: ChangeBatch,
    *,
    pipeline_id: str,
    source_table: str,
    run_id: str,
    row_check: RowCheck | None = None,
) -> Applied:
    """Apply `batch` and commit it with its offset; `conn` must not be in autocommit."""
    applied = Applied()
    with conn.transaction():
        # One writer per target: a concurrent load, CDC apply or replay waits here.
        conn.execute(target_lock(target.table))
        _stage(conn, batch)
        conn.execute(
            sql.SQL(
                "DELETE FROM {} AS s USING {} AS c WHERE c.source_position = s.source_position"
            ).format(STAGE, target.log.ident)
        )
        applied.changes = _count(conn, sql.SQL("SELECT count(*) FROM {}").format(STAGE))
        if applied.changes:
            _apply(conn, target, applied, row_check)
            failpoint("loading")  # applied, not yet logged nor committed
            conn.execute(
                sql.SQL(
                    """
                    INSERT INTO {} (changed_at, operation, primary_key, old_values, new_values,
                                    source_position, run_id)
                    SELECT coalesce(changed_at, now()), operation, primary_key, old_values,
                           new_values, source_position, %s
                      FROM {} ORDER BY seq
                    ON CONFLICT (source_position) DO NOTHING
                    """
                ).format(target.log.ident, STAGE),
                (run_id,),
            )
        write_offset(conn, target, pipeline_id, source_table, batch.offset, run_id)
    return applied


def _stage(conn: psycopg.Connection, batch: ChangeBatch) -> None:
    conn.execute(
        sql.SQL(
            """
            CREATE TEMP TABLE {} (
                seq bigint, source_position text, operation text, changed_at timestamptz,
                primary_key jsonb, old_values jsonb, new_values jsonb
            ) ON COMMIT DROP
            """
        ).format(STAGE)
    )
    with conn.cursor() as cursor, cursor.copy(sql.SQL("COPY {} FROM STDIN").format(STAGE)) as copy:
        for seq, change in enumerate(batch.changes):
            copy.write_row(
                (
                    seq,
                    change.position,
                    change.operation,
                    change.changed_at,
                    change.key,
                    change.old,
                    change.new,
                )
            )


def _count(conn: psycopg.Connection, query: sql.Composed) -> int:
    row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


def _new_values(conn: psycopg.Connection, fields: list[str]) -> pa.Table:
    """The `fields` of every change that is not a delete, typed as the target's columns."""
    cursor = conn.execute(
        sql.SQL(
            "SELECT {} FROM {} AS r JOIN {} AS s ON s.seq = r.{} WHERE s.operation <> {} "
            "ORDER BY r.{}"
        ).format(_columns(fields, "r."), ROWS, STAGE, SEQ, sql.Literal(DELETE), SEQ)
    )
    rows = cursor.fetchall()
    return pa.table({name: pa.array([row[i] for row in rows]) for i, name in enumerate(fields)})


def _apply(
    conn: psycopg.Connection, target: CdcTarget, applied: Applied, row_check: RowCheck | None
) -> None:
    scd2 = target.strategy is LoadStrategy.scd_type2
    key = sql.SQL(", ").join(sql.SQL("r.{}").format(sql.Identifier(k)) for k in target.key)
    # Each change as a row of the target's own type: deletes carry their key (and old
    # values), everything else its new values.
    conn.execute(
        sql.SQL(
            """
            CREATE TEMP TABLE {rows} ON COMMIT DROP AS
            SELECT s.seq AS {seq}, r.*
              FROM {stage} AS s,
                   LATERAL jsonb_populate_record(NULL::{table},
                       CASE WHEN s.operation = {delete}
                            THEN coalesce(s.old_values, '{{}}') || s.primary_key
                            ELSE s.new_values END) AS r
            """
        ).format(
            rows=ROWS, seq=SEQ, stage=STAGE, table=target.table.ident, delete=sql.Literal(DELETE)
        )
    )
    json_text = restore_json(
        ROWS, [c for c in json_columns(conn, target.table) if c in target.columns]
    )
    if json_text is not None:
        conn.execute(json_text)
    # Whole rows (polled, snapshot) insert or update depending on what the target holds.
    rows = _merge_sql(target, sql.SQL("{} AS s").format(ROWS))
    old = sql.SQL("to_jsonb(t) {}").format(_SCD2_HISTORY if scd2 else sql.SQL(""))
    conn.execute(
        sql.SQL(
            """
            UPDATE {stage} AS c
               SET operation = CASE WHEN cur.doc IS NULL THEN 'INSERT' ELSE 'UPDATE' END,
                   old_values = CASE WHEN %s THEN cur.doc END
              FROM {rows} AS s
              LEFT JOIN LATERAL (SELECT {old} AS doc FROM {table} AS t WHERE {match} LIMIT 1)
                   AS cur ON true
             WHERE c.operation = {upsert} AND s.{seq} = c.seq
            """
        ).format(
            stage=STAGE,
            rows=ROWS,
            old=old,
            table=target.table.ident,
            match=rows.match(scd2),
            upsert=sql.Literal(UPSERT),
            seq=SEQ,
        ),
        (target.include_old,),
    )
    if row_check is not None:
        row_check.check(_new_values(conn, row_check.fields))
    if target.strategy in (LoadStrategy.bulk, LoadStrategy.append_only):
        # Append loads keep every version: each non-delete change becomes a row.
        every_change = _merge_sql(
            target, sql.SQL("{} AS s JOIN {} AS c ON c.seq = s.{}").format(ROWS, STAGE, SEQ)
        )
        applied.inserted = affected(
            conn,
            every_change.insert(
                where=sql.SQL("c.operation <> {}").format(sql.Literal(DELETE)),
                order_by=sql.SQL("s.{}").format(SEQ),
            ),
        )
        return
    conn.execute(
        sql.SQL(
            """
            CREATE TEMP TABLE {latest} ON COMMIT DROP AS
            SELECT DISTINCT ON ({key}) s.operation AS {op}, s.new_values AS {new}, r.*
              FROM {rows} AS r JOIN {stage} AS s ON s.seq = r.{seq}
             ORDER BY {key}, r.{seq} DESC
            """
        ).format(latest=LATEST, key=key, op=OP, new=NEW, rows=ROWS, stage=STAGE, seq=SEQ)
    )
    # scd_type2 compares and opens whole versions; a merge keeps what a change lacks.
    latest = _merge_sql(target, sql.SQL("{} AS s").format(LATEST), present=None if scd2 else NEW)
    deletes = sql.SQL("s.{} = {}").format(OP, sql.Literal(DELETE))
    changes = sql.SQL("s.{} <> {}").format(OP, sql.Literal(DELETE))
    if scd2:
        if latest.tracked:  # values a change lacks (unchanged TOAST) keep the current ones
            filled = _merge_sql(target, sql.SQL("{} AS s").format(LATEST), present=NEW)
            conn.execute(filled.fill_from_current())
        # Close the current version on a delete or a real change; open one for new values.
        applied.deleted = affected(conn, latest.close_current(where=deletes))
        applied.updated = affected(conn, latest.close_current(where=changes, changed_only=True))
        opened = affected(conn, latest.insert(where=changes, missing_only=True, history=True))
        applied.inserted = opened - applied.updated
        return
    applied.deleted = affected(conn, latest.delete_matched(where=deletes))
    if latest.tracked:
        applied.updated = affected(conn, latest.update_changed(where=changes))
    applied.inserted = affected(conn, latest.insert(where=changes, missing_only=True))


def _merge_sql(
    target: CdcTarget, source: sql.Composable, present: sql.Identifier | None = None
) -> MergeSql:
    # Changes compare by text: the captured values carry no type that must have equality.
    return MergeSql(
        target=target.table,
        columns=target.columns,
        key=target.key,
        source=source,
        present=present,
        by_text=frozenset(target.columns),
    )


def _columns(names: list[str], prefix: str = "") -> sql.Composable:
    return sql.SQL(", ").join(sql.SQL(prefix + "{}").format(sql.Identifier(n)) for n in names)
