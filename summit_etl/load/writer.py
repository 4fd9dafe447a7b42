"""Write a stream of batches into a target table with one of the loading strategies.

Two paths, both one transaction on the target:
- direct: `COPY ... FROM STDIN (FORMAT binary)` into the target itself (appends of a
  full read); a full `bulk` read fills a shadow table swapped in for the target at the
  end (load/shadow.py), or, where a swap would lose something, TRUNCATEs and COPYs in place;
- staged: COPY into a temporary table, then set-based SQL (upsert, scd_type1/2, delta,
  and appends that must skip rows already loaded).

A slice of a partitioned full read (runs/slice.py) loads `within` one key range: what a
full run replaces (the whole table) is then only the target's rows in that range, deleted
in the same transaction, under the range's own lock (load/locks.py).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from itertools import chain
from typing import TYPE_CHECKING

import pgpq
import psycopg
import pyarrow as pa
from psycopg import sql

from summit_etl.config import LoadStrategy
from summit_etl.extract.ranges import ReadRange
from summit_etl.identifiers import TableName, columns_sql
from summit_etl.load import shadow
from summit_etl.load import target as targets
from summit_etl.load.conform import as_travelled, conform, schema_for
from summit_etl.load.ddl import with_lock_retry
from summit_etl.load.locks import target_lock
from summit_etl.load.merge_sql import MergeSql
from summit_etl.load.target import SCD2_COLUMNS, TargetColumn, affected, execute
from summit_etl.schema import contract
from summit_etl.schema.contract import SchemaChange

if TYPE_CHECKING:
    from summit_etl.extract.changed import KeySet

log = logging.getLogger(__name__)

STAGE = sql.Identifier("summit_stage")
_SEQ = sql.Identifier("_summit_seq")
# PostgreSQL prices each index probe as a read from disk, so even a stage a tenth of the
# target's size gets a merge or hash join that reads the whole target (or its key index)
# and sorts or hashes the stage. While the target fits in effective_cache_size, probing
# the key once per staged row is faster: 100k staged rows into a 1M-row target, the
# UPDATE took 1.01-1.12 s probing against 1.22-1.32 s merge-joining, the new keys'
# anti-join 155 ms against 218 ms (docs/benchmarks.md, "Merges").
_PROBE_AT_MOST = 0.1  # staged rows per target row
# Strategies that write only the incoming rows that are new or changed (scd_type2: against
# the open versions), so that a large stage can be narrowed to those first (`_narrowed`).
_NARROWED = (
    LoadStrategy.upsert, LoadStrategy.scd_type1, LoadStrategy.delta, LoadStrategy.scd_type2
)
_DIFFERING = sql.Identifier("summit_differing")


class LoadError(ValueError):
    """The load cannot proceed as configured (missing target, key, or column)."""


@dataclass(frozen=True)
class LoadPlan:
    strategy: LoadStrategy
    key: list[str]
    create_table: bool = False
    replace: bool = False  # a full run of `bulk`: the target's rows are replaced
    skip_existing: bool = False  # appends of re-read rows: keys already loaded are skipped
    delete_missing: bool = False  # delta over a full snapshot: keys gone from it are deleted
    # delta over a snapshot compared by hash (extract/changed.py): the keys gone from it
    delete_keys: KeySet | None = None
    schema_changes: str | None = None  # the contract; None: by who created the target
    within: ReadRange | None = None  # a slice: the one key range this load writes


@dataclass
class LoadResult:
    rows_written: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    ignored_columns: list[str] = field(default_factory=list)
    schema_changes: list[SchemaChange] = field(default_factory=list)


def load(
    target_url: str,
    table: TableName,
    plan: LoadPlan,
    batches: Iterable[pa.Table],
    *,
    before_commit: Callable[[psycopg.Connection], None] | None = None,
) -> LoadResult:
    """Write `batches` into `table` (at `target_url`) in one transaction; `before_commit`
    runs on it once every row is written, and raising there rolls the load back."""
    stream = iter(batches)
    # The target session (and the lock it takes first) opens once there is work for it.
    first = next(stream, None)
    with targets.connect(target_url) as conn:
        return _write(conn, table, plan, first, stream, before_commit)


def _write(
    conn: psycopg.Connection,
    table: TableName,
    plan: LoadPlan,
    first: pa.Table | None,
    stream: Iterator[pa.Table],
    before_commit: Callable[[psycopg.Connection], None] | None,
) -> LoadResult:
    """load() on its connection, `first` the stream's first batch (None: no rows)."""
    scd2 = plan.strategy is LoadStrategy.scd_type2
    # One writer per target: a concurrent load, CDC apply or replay waits here.
    # A slice that may create the target takes all of it: that DDL races with no one.
    execute(conn, target_lock(table, None if plan.create_table else plan.within))
    columns = targets.inspect(conn, table)
    changes: list[SchemaChange] = []
    created = columns is None
    if columns is None:
        if not plan.create_table:
            raise LoadError(
                f"target table {table} does not exist; create it or set "
                "loading.createTable: true"
            )
        if first is None:
            log.info("no rows and no target table yet: nothing to create or load")
            return LoadResult()
        targets.create(conn, table, first.schema, plan.key, scd2)
        columns = targets.inspect(conn, table) or []
    elif first is not None:
        mode = contract.mode_for(plan.schema_changes, conn, table)
        changes = contract.reconcile(conn, table, columns, first.schema, mode, scd2)
        if changes:
            columns = targets.inspect(conn, table) or []
    incoming = first.column_names if first is not None else []
    written = [
        c for c in columns if c.name in incoming and not (scd2 and c.name in SCD2_COLUMNS)
    ]
    written = as_travelled(written, first.schema) if first is not None else written
    result = LoadResult(
        ignored_columns=[n for n in incoming if n not in {c.name for c in columns}],
        schema_changes=changes,
    )
    if result.ignored_columns:
        log.info(
            "columns not in the target are not written",
            extra={"columns": result.ignored_columns},
        )
    _check_key(plan, table, columns, written, first is not None)
    rows = chain([first], stream) if first is not None else iter(())
    if _direct(plan, written):
        if plan.replace and plan.within is None and not created and _swappable(conn, table):
            # The shadow is new in this transaction: its rows can go in frozen.
            result.rows_written = shadow.reload(
                conn, table, lambda into: _copy(conn, into.ident, written, rows, freeze=True)
            )
        else:
            if plan.replace:
                result.deleted = _clear(conn, table, plan)
            result.rows_written = _copy(conn, table.ident, written, rows)
        result.inserted = result.rows_written
    elif first is not None or plan.delete_missing:
        keys = _StagedKeys(plan.key, written)
        _stage(conn, written, rows, result, keys)
        _merge(conn, table, plan, written, result, keys.unique())
    # else: merging no rows changes nothing (an upsert slice whose range is now empty)
    if plan.delete_keys is not None and plan.delete_keys.count:
        result.deleted = affected(
            conn,
            sql.SQL("DELETE FROM {} AS t WHERE {}").format(
                table.ident, plan.delete_keys.predicate("t")
            ),
        )
    if before_commit is not None:
        before_commit(conn)
    conn.commit()
    return result


def _swappable(conn: psycopg.Connection, table: TableName) -> bool:
    reasons = shadow.blockers(conn, table)
    if reasons:
        log.warning(
            "full reload truncates the target in place: a shadow table swap would lose %s",
            "; ".join(reasons),
            extra={"stage": "loading", "table": str(table), "reasons": reasons},
        )
    return not reasons


def _truncate(conn: psycopg.Connection, table: TableName) -> None:
    truncate = sql.SQL("TRUNCATE {}").format(table.ident)
    execute(conn, with_lock_retry(truncate, what=f"TRUNCATE {table}"))


def _clear(conn: psycopg.Connection, table: TableName, plan: LoadPlan) -> int:
    """Remove what a replacing load replaces: the whole table, or a slice's range (the
    number of rows deleted; a TRUNCATE does not count them)."""
    if plan.within is None:
        _truncate(conn, table)
        return 0
    delete = sql.SQL("DELETE FROM {} WHERE {}").format(table.ident, plan.within.predicate())
    return affected(conn, delete)


def _check_key(
    plan: LoadPlan,
    table: TableName,
    columns: list[TargetColumn],
    written: list[TargetColumn],
    has_rows: bool,
) -> None:
    names = {c.name for c in columns}
    if plan.strategy is LoadStrategy.scd_type2:
        missing = [c for c in SCD2_COLUMNS if c not in names]
        if missing:
            raise LoadError(f"scd_type2 target {table} lacks the history columns {missing}")
    if plan.within is not None:
        column = plan.within.column
        if column is None:  # a ctid names a place in the source, nothing in the target
            raise LoadError(
                f"a slice of a source without a primary key cannot be loaded into {table}: "
                "its rows have no key to find them by in the target"
            )
        if column not in names or (has_rows and column not in {c.name for c in written}):
            raise LoadError(
                f"the slice's key column {column!r} must be a column of the target {table} "
                "and of the rows loaded into it, to replace that slice's rows there"
            )
    for key in plan.key:
        if key not in names:
            raise LoadError(f"key column {key!r} is not a column of the target {table}")
        if has_rows and key not in {c.name for c in written}:
            raise LoadError(f"key column {key!r} is not in the rows being loaded into {table}")


def _direct(plan: LoadPlan, written: list[TargetColumn]) -> bool:
    return (
        plan.strategy in (LoadStrategy.bulk, LoadStrategy.append_only)
        and not plan.skip_existing
        and all(c.arrow_type is not None for c in written)
    )


# Key types whose values, as COPY sends them, are equal exactly when the staged values
# are (text under the stage's default collation, which is deterministic): keys distinct in
# Arrow are distinct in the stage. Not floats (-0 = 0), numerics, text cast by the server,
# nor a type modifier the server applies on the way in (varchar(n) drops trailing blanks
# past n, timestamp(p) rounds).
_EXACT_KEY_TYPES = frozenset(
    {"int2", "int4", "int8", "text", "varchar", "date", "timestamp", "timestamptz", "bytea"}
)
_KEYS_AT_MOST = 64 << 20  # bytes of key values kept to prove the stage's keys unique


class _StagedKeys:
    """The key values of the rows going into the stage, while they take at most
    `_KEYS_AT_MOST`: when all differ, no staged row supersedes another and the merge skips
    that pass (a sort of the whole stage: 0.95 s of a 1M-row delta, 75 ms of 100k rows)."""

    def __init__(self, key: list[str], written: list[TargetColumn]) -> None:
        by_name = {c.name: c for c in written}
        exact = bool(key) and all(
            k in by_name
            and by_name[k].arrow_type is not None
            and by_name[k].typname in _EXACT_KEY_TYPES
            and "(" not in by_name[k].sql_type
            for k in key
        )
        self._key = key
        self._seen: list[pa.RecordBatch] | None = [] if exact else None
        self._bytes = 0

    def passing(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """`batches`, as COPY sends them, with their keys noted."""
        for batch in batches:
            if self._seen is not None:
                keys = batch.select(self._key)
                self._bytes += keys.nbytes
                if self._bytes > _KEYS_AT_MOST:
                    self._seen = None  # too many to keep: the server sorts them out
                else:
                    self._seen.append(keys)
            yield batch

    def unique(self) -> bool:
        """Whether every staged row has a key of its own (NULL counting as one key)."""
        if self._seen is None:
            return False
        if not self._seen:
            return True
        staged = pa.Table.from_batches(self._seen)
        return staged.group_by(self._key).aggregate([]).num_rows == staged.num_rows


def _copy(
    conn: psycopg.Connection,
    into: sql.Identifier,
    written: list[TargetColumn],
    rows: Iterator[pa.Table],
    *,
    keys: _StagedKeys | None = None,
    freeze: bool = False,
) -> int:
    """COPY BINARY `rows` into the `written` columns of `into`; the rows written. pgpq
    encodes each Arrow batch in Rust, a third of the client's CPU time that the ADBC
    driver's row-by-row writer took (docs/benchmarks.md)."""
    if not written:
        return 0
    batches = conform(rows, written)
    encoder = pgpq.ArrowToPostgresBinaryEncoder(schema_for(written))
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary{})").format(
        into, columns_sql([c.name for c in written]), sql.SQL(", FREEZE" if freeze else "")
    )
    with conn.cursor() as cursor:
        with cursor.copy(statement) as copy:
            copy.write(encoder.write_header())
            try:
                for batch in keys.passing(batches) if keys else batches:
                    copy.write(encoder.write_batch(batch))
            except psycopg.Error:
                raise
            except BaseException:
                # Our side ended the stream (a cancel, a failed check, the source): stop the
                # server now, or ending the COPY waits while it works through every row the
                # socket still holds. A cancel that fails must not hide why we stopped.
                with contextlib.suppress(psycopg.Error):
                    conn.cancel_safe()
                raise
            copy.write(encoder.finish())
        return cursor.rowcount


def _stage(
    conn: psycopg.Connection,
    written: list[TargetColumn],
    rows: Iterator[pa.Table],
    result: LoadResult,
    keys: _StagedKeys,
) -> None:
    """COPY the rows into a temporary table without indexes (merges drop superseded rows there)."""
    staged_columns = [
        sql.SQL("{} {}").format(
            sql.Identifier(c.name), sql.SQL(c.sql_type if c.arrow_type is not None else "text")
        )
        for c in written
    ]
    execute(
        conn,
        sql.SQL(
            "CREATE TEMP TABLE {} ({}, {} bigint GENERATED ALWAYS AS IDENTITY) ON COMMIT DROP"
        ).format(STAGE, sql.SQL(", ").join(staged_columns), _SEQ),
    )
    result.rows_written = _copy(conn, STAGE, written, rows, keys=keys)


def _merge(
    conn: psycopg.Connection,
    table: TableName,
    plan: LoadPlan,
    written: list[TargetColumn],
    result: LoadResult,
    unique: bool,
) -> None:
    """Merge the stage into `table`; `unique`: no two staged rows share a key."""
    if plan.key:
        if not unique:
            execute(conn, _drop_superseded(plan.key))
        # The key's statistics are all the planner needs to size the joins with the target.
        execute(conn, sql.SQL("ANALYZE {} ({})").format(STAGE, columns_sql(plan.key)))
    staged = _staged_merge(table, plan, written)
    incoming, rows = staged, result.rows_written
    scd2 = plan.strategy is LoadStrategy.scd_type2
    size = _target_size(conn, table, plan.key, scd2) if plan.key else None
    if size is not None and plan.strategy in _NARROWED and size.narrowing_pays(rows):
        incoming, rows = _narrowed(conn, staged, scd2)
    probe = size is not None and size.probing_pays(rows)
    if probe:
        for join in ("enable_mergejoin", "enable_hashjoin"):
            execute(conn, sql.SQL("SET LOCAL {} = off").format(sql.SQL(join)))
    _merge_statements(conn, plan, incoming, result)
    if probe:  # what runs after this (before_commit too) plans as it would have
        for join in ("enable_mergejoin", "enable_hashjoin"):
            execute(conn, sql.SQL("RESET {}").format(sql.SQL(join)))
    if plan.strategy is LoadStrategy.delta and plan.delete_missing:
        # Every staged key, joined whole with the target: probing the target once per
        # target row for a stage without an index would compare every pair.
        result.deleted = affected(conn, staged.delete_unmatched())


# The target's estimated rows; whether it fits in effective_cache_size; whether a plain
# btree index leads with the key's columns (in any order), so that a probe is a descent.
# An scd_type2 merge only looks for current versions: their partial index serves it.
_SIZE_FACTS = """
SELECT c.reltuples,
       pg_total_relation_size(c.oid) <= pg_size_bytes(current_setting('effective_cache_size')),
       EXISTS (SELECT FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
                 JOIN pg_am m ON m.oid = i.relam
                WHERE x.indrelid = c.oid AND x.indisvalid
                  AND (x.indpred IS NULL
                       OR {current_only} AND pg_get_expr(x.indpred, x.indrelid) = 'is_current')
                  AND m.amname = 'btree'
                  AND (SELECT count(*) FROM unnest(x.indkey) WITH ORDINALITY k(attnum, ord)
                         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
                        WHERE k.ord <= {n} AND a.attname = ANY({key})) = {n})
  FROM pg_class c WHERE c.oid = to_regclass({target})
"""


@dataclass(frozen=True)
class _TargetSize:
    """What decides how a stage is joined with the target."""

    rows: float  # reltuples: -1 (or 0) before the target's first VACUUM or ANALYZE
    cached: bool  # the target fits in effective_cache_size
    indexed: bool  # a plain btree index leads with the key

    def probing_pays(self, staged: int) -> bool:
        """Join by probing the target's key index (see `_PROBE_AT_MOST`): few rows against
        a target the server can keep in memory."""
        return (
            self.cached and self.indexed and self.rows > 0 and staged <= _PROBE_AT_MOST * self.rows
        )

    def narrowing_pays(self, staged: int) -> bool:
        """Keep only the stage's new and changed rows before writing (see `_narrowed`):
        a stage too large to probe with, against a target of known size."""
        return self.rows > 0 and staged > _PROBE_AT_MOST * self.rows


def _target_size(
    conn: psycopg.Connection, table: TableName, key: list[str], current_only: bool = False
) -> _TargetSize | None:
    rows = execute(
        conn,
        sql.SQL(_SIZE_FACTS).format(
            current_only=sql.Literal(current_only),
            n=sql.Literal(len(key)),
            key=sql.Literal(key),
            target=sql.Literal(table.ident.as_string(None)),
        ),
    )
    if not rows:
        return None
    target_rows, cached, indexed = rows[0]
    return _TargetSize(float(target_rows), bool(cached), bool(indexed))


def _narrowed(
    conn: psycopg.Connection, staged: MergeSql, current_only: bool
) -> tuple[MergeSql, int]:
    """The stage's rows that are new to the target or differ from its row of their key
    (`current_only`: its open scd_type2 version), in a temporary table, and how many. A
    stage this large is mostly a full snapshot or a long lookback, most of whose rows the
    target already holds: one anti-join with the whole target finds the few to write, which
    the insert and update then probe for, instead of each joining the whole stage with the
    whole target (a 1M-row delta snapshot with 100k changes: 3.7 s of merge statements
    instead of 5.3 s, docs/benchmarks.md "Merges", tenth pass). A stage whose rows all
    changed pays that anti-join and a copy of its rows (10% more for 1M rows)."""
    rows = affected(
        conn,
        sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS {}").format(
            _DIFFERING, staged.differing(current_only)
        ),
    )
    execute(conn, sql.SQL("ANALYZE {} ({})").format(_DIFFERING, columns_sql(staged.key)))
    log.info(
        "merging only the staged rows that are new or changed",
        extra={"stage": "loading", "differing": rows},
    )
    return replace(staged, source=sql.SQL("{} AS s").format(_DIFFERING)), rows


def _staged_merge(table: TableName, plan: LoadPlan, written: list[TargetColumn]) -> MergeSql:
    """The merge statements reading the stage, its text-staged columns cast by the server."""
    typed = sql.SQL(", ").join(
        sql.SQL("{}::{} AS {}").format(
            sql.Identifier(c.name), sql.SQL(c.sql_type), sql.Identifier(c.name)
        )
        if c.arrow_type is None
        else sql.Identifier(c.name)
        for c in written
    )
    return MergeSql(
        target=table,
        columns=[c.name for c in written],
        key=plan.key,
        # A plain subquery: the planner pulls it up, so the casts cost nothing extra.
        source=sql.SQL("(SELECT {} FROM {}) AS s").format(typed, STAGE),
        by_text=frozenset(c.name for c in written if not c.comparable),
    )


def _merge_statements(
    conn: psycopg.Connection, plan: LoadPlan, incoming: MergeSql, result: LoadResult
) -> None:
    """Insert and update from `incoming` (the stage, or its new and changed rows)."""
    strategy = plan.strategy
    if strategy in (LoadStrategy.bulk, LoadStrategy.append_only):
        if plan.replace:
            result.deleted = _clear(conn, incoming.target, plan)
        result.inserted = affected(
            conn, incoming.insert(missing_only=plan.skip_existing and bool(plan.key))
        )
        return
    # Inserting the new keys first looks them up while the target is still all-visible
    # (index-only probes); the rows it adds equal their incoming rows and are not updated.
    if strategy is LoadStrategy.scd_type2:
        result.inserted = affected(conn, incoming.insert(missing_only=True, history=True))
        if incoming.tracked:
            result.updated = int(execute(conn, incoming.reopen_changed())[0][0])
            result.inserted += result.updated
        return
    result.inserted = affected(conn, incoming.insert(missing_only=True))
    if incoming.tracked:
        result.updated = affected(conn, incoming.update_changed())


def _drop_superseded(key: list[str]) -> sql.Composed:
    """DELETE the staged rows a later row of the same key supersedes (NULL keys count as
    one key, as DISTINCT ON counts them): in place, sorting only the key and sequence."""
    return sql.SQL(
        "DELETE FROM {stage} WHERE {seq} IN (SELECT {seq} FROM (SELECT {seq}, row_number() "
        "OVER (PARTITION BY {k} ORDER BY {seq} DESC) AS n FROM {stage}) AS ranked WHERE n > 1)"
    ).format(stage=STAGE, seq=_SEQ, k=columns_sql(key))
