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
from summit_etl.cdc.target import CdcTarget, write_offset
from summit_etl.config import LoadStrategy
from summit_etl.faults import failpoint

STAGE = sql.Identifier("summit_cdc_stage")
ROWS = sql.Identifier("summit_cdc_rows")
LATEST = sql.Identifier("summit_cdc_latest")
SEQ = sql.Identifier("_summit_seq")
OP = sql.Identifier("_summit_op")
NEW = sql.Identifier("_summit_new")
# `t` (target) matches `r` (change) on the key; True: only the current scd_type2 version.
Match = Callable[..., sql.Composable]
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
        _stage(conn, batch)
        conn.execute(
            sql.SQL(
                "DELETE FROM {} AS s USING {} AS c WHERE c.source_position = s.source_position"
            ).format(STAGE, target.log.ident)
        )
        applied.changes = _count(conn, sql.SQL("SELECT count(*) FROM {}").format(STAGE))
        if applied.changes:
            _apply(conn, target, applied, row_check)
            failpoint("loading")
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


def _done(conn: psycopg.Connection, statement: sql.Composed) -> int:
    return _count(
        conn, sql.SQL("WITH done AS ({} RETURNING 1) SELECT count(*) FROM done").format(statement)
    )


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

    def match(current_only: bool = False) -> sql.Composable:
        keys = sql.SQL(" AND ").join(
            sql.SQL("t.{k} = r.{k}").format(k=sql.Identifier(k)) for k in target.key
        )
        return sql.SQL("{}{}").format(keys, sql.SQL(" AND t.is_current" if current_only else ""))

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
    # Whole rows (polled, snapshot) insert or update depending on what the target holds.
    old = sql.SQL("to_jsonb(t) {}").format(_SCD2_HISTORY if scd2 else sql.SQL(""))
    conn.execute(
        sql.SQL(
            """
            UPDATE {stage} AS s
               SET operation = CASE WHEN cur.doc IS NULL THEN 'INSERT' ELSE 'UPDATE' END,
                   old_values = CASE WHEN %s THEN cur.doc END
              FROM {rows} AS r
              LEFT JOIN LATERAL (SELECT {old} AS doc FROM {table} AS t WHERE {match} LIMIT 1)
                   AS cur ON true
             WHERE s.operation = {upsert} AND r.{seq} = s.seq
            """
        ).format(
            stage=STAGE,
            rows=ROWS,
            old=old,
            table=target.table.ident,
            match=match(scd2),
            upsert=sql.Literal(UPSERT),
            seq=SEQ,
        ),
        (target.include_old,),
    )
    if row_check is not None:
        row_check.check(_new_values(conn, row_check.fields))
    if target.strategy in (LoadStrategy.bulk, LoadStrategy.append_only):
        _append(conn, target, applied)
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
    if scd2:
        _scd2(conn, target, applied, match)
    else:
        _merge(conn, target, applied, match)


def _columns(names: list[str], prefix: str = "") -> sql.Composable:
    return sql.SQL(", ").join(sql.SQL(prefix + "{}").format(sql.Identifier(n)) for n in names)


def _append(conn: psycopg.Connection, target: CdcTarget, applied: Applied) -> None:
    """Append loads keep every version: each non-delete change becomes a row."""
    applied.inserted = _done(
        conn,
        sql.SQL(
            "INSERT INTO {} ({}) SELECT {} FROM {} AS r JOIN {} AS s ON s.seq = r.{} "
            "WHERE s.operation <> {} ORDER BY r.{}"
        ).format(
            target.table.ident,
            _columns(target.columns),
            _columns(target.columns, "r."),
            ROWS,
            STAGE,
            SEQ,
            sql.Literal(DELETE),
            SEQ,
        ),
    )


def _merge(conn: psycopg.Connection, target: CdcTarget, applied: Applied, match: Match) -> None:
    tracked = [c for c in target.columns if c not in target.key]
    # A column missing from the new values (an unchanged TOASTed value in the WAL)
    # keeps what the target has. Rows compare by text: see `_scd2`.
    incoming = [
        sql.SQL("CASE WHEN r.{new} ? {name} THEN r.{col} ELSE t.{col} END").format(
            new=NEW, name=sql.Literal(c), col=sql.Identifier(c)
        )
        for c in tracked
    ]
    applied.deleted = _done(
        conn,
        sql.SQL("DELETE FROM {} AS t USING {} AS r WHERE r.{} = {} AND {}").format(
            target.table.ident, LATEST, OP, sql.Literal(DELETE), match()
        ),
    )
    if tracked:
        applied.updated = _done(
            conn,
            sql.SQL(
                "UPDATE {} AS t SET ({}) = ROW({}) FROM {} AS r "
                "WHERE r.{} <> {} AND {} AND ROW({})::text IS DISTINCT FROM ROW({})::text"
            ).format(
                target.table.ident,
                _columns(tracked),
                sql.SQL(", ").join(incoming),
                LATEST,
                OP,
                sql.Literal(DELETE),
                match(),
                _columns(tracked, "t."),
                sql.SQL(", ").join(incoming),
            ),
        )
    applied.inserted = _insert_missing(conn, target, match(), history=False)


def _insert_missing(
    conn: psycopg.Connection, target: CdcTarget, match: sql.Composable, history: bool
) -> int:
    """Insert the changed rows (not deletes) that have no (current) row in the target; with
    `history`, as newly opened scd_type2 versions."""
    versions = sql.SQL(", effective_from, effective_to, is_current" if history else "")
    opened = sql.SQL(", now(), NULL, true" if history else "")
    return _done(
        conn,
        sql.SQL(
            "INSERT INTO {} ({}{}) SELECT {}{} FROM {} AS r "
            "WHERE r.{} <> {} AND NOT EXISTS (SELECT 1 FROM {} AS t WHERE {})"
        ).format(
            target.table.ident,
            _columns(target.columns),
            versions,
            _columns(target.columns, "r."),
            opened,
            LATEST,
            OP,
            sql.Literal(DELETE),
            target.table.ident,
            match,
        ),
    )


def _scd2(conn: psycopg.Connection, target: CdcTarget, applied: Applied, match: Match) -> None:
    """Close the current version on a delete or a real change; open one for new values."""
    tracked = [c for c in target.columns if c not in target.key]
    if tracked:  # an unchanged TOASTed value left out of an update keeps the current one
        conn.execute(
            sql.SQL(
                "UPDATE {} AS r SET ({}) = ROW({}) FROM {} AS t "
                "WHERE {} AND r.{} = 'UPDATE' AND NOT r.{} ?& {}"
            ).format(
                LATEST,
                _columns(tracked),
                sql.SQL(", ").join(
                    sql.SQL("CASE WHEN r.{} ? {} THEN r.{} ELSE t.{} END").format(
                        NEW, sql.Literal(c), sql.Identifier(c), sql.Identifier(c)
                    )
                    for c in tracked
                ),
                target.table.ident,
                match(True),
                OP,
                NEW,
                sql.Literal(tracked),
            )
        )
    # By text: some types have no equality (xml, json, point), and equal values print alike.
    changed = (
        sql.SQL("ROW({})::text IS DISTINCT FROM ROW({})::text").format(
            _columns(tracked, "t."), _columns(tracked, "r.")
        )
        if tracked
        else sql.SQL("false")
    )
    applied.deleted = _done(
        conn,
        sql.SQL(
            "UPDATE {} AS t SET effective_to = now(), is_current = false FROM {} AS r "
            "WHERE {} AND r.{} = {}"
        ).format(target.table.ident, LATEST, match(True), OP, sql.Literal(DELETE)),
    )
    applied.updated = _done(
        conn,
        sql.SQL(
            "UPDATE {} AS t SET effective_to = now(), is_current = false FROM {} AS r "
            "WHERE {} AND r.{} <> {} AND {}"
        ).format(target.table.ident, LATEST, match(True), OP, sql.Literal(DELETE), changed),
    )
    opened = _insert_missing(conn, target, match(True), history=True)
    applied.inserted = opened - applied.updated
