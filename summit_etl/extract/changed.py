"""A full read narrowed, before it travels, to the rows the target lacks or holds otherwise
(`extraction.compareHashes`).

A merge of a full snapshot into a target that already holds most of it moves every row
only to find the few that changed (load/writer.py `_narrowed`). Comparing a 64-bit hash
of each row moves a key and 8 bytes a row instead:

1. the source hashes its rows in a REPEATABLE READ snapshot that this module exports and
   holds (`source_snapshot`), while the target hashes its own (scd_type2: its open
   versions), both servers at once;
2. the two lists of key and hash are matched here, in Arrow (`pyarrow.compute.index_in`):
   the keys whose rows are new to the target or differ from its row, and (delta) the
   target keys the source lacks;
3. the run reads only those keys' rows, in the same snapshot, and merges them as usual;
   delta deletes the lacking keys by name (`KeySet`).

The lists take 16 bytes a row each here (an integer key; a text key: its length more), and
matching them some more: with 1M rows and an integer key, the run's peak RSS grew by 178 MB
(108 MB of it Arrow's, the rest the driver's buffers), docs/benchmarks.md "Twelfth pass".
A table of more than `_PASS_ROWS` rows (by its statistics) is therefore compared range by
range of its leading primary-key column, where that column is part of the merge key: only
the keys found new, changed or gone are kept from one range to the next.

Both sides hash the same columns of the same types with `hash_record_extended`, which
hashes each value by its type's hash function: two values its type calls equal hash
alike, as the merge's own change test (`IS DISTINCT FROM`) calls them equal. Types without
a hash function are hashed by their text, under the same output settings on both sides.
Two different rows hash alike with a chance of 2^-64. Keys are matched here by value: an
integer key as such, the other key types by their text, only where equal values print
alike (`_KEYS_BY_TEXT`).

Where the comparison could not be exact, `find_changes` says why and the run reads every
row as before: no target yet; a column missing from the target, typed otherwise there, or
held there but not read (schema changes the full read applies or reports); a key of
another type or of a nondeterministic collation; a NULL key, or target rows sharing a key
(the merge never matches the one, and updates every row of the other); a server older
than PostgreSQL 14. Where more than 70% of the rows are new or changed, it reads every row
too: reading by the list of their keys would take longer.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from summit_etl.extract.columns import SourceColumn
from summit_etl.extract.postgres import Cancellable, Connector
from summit_etl.extract.ranges import ReadRange, split_read
from summit_etl.extract.readers import exported_snapshot, import_snapshot
from summit_etl.identifiers import TableName
from summit_etl.load import target as targets
from summit_etl.load.target import SCD2_COLUMNS, TargetColumn

log = logging.getLogger(__name__)

_FIRST_WITH_RECORD_HASH = 140000  # hash_record_extended came with PostgreSQL 14
_INTEGER_KEYS = frozenset({"int2", "int4", "int8"})  # matched as Arrow integers
# Key types whose equal values print alike (text: under a deterministic collation), so
# that their text finds them on the other side.
_KEYS_BY_TEXT = frozenset(
    {"text", "varchar", "date", "timestamp", "timestamptz", "uuid", "bool", "bytea"}
)
# The same text on both servers: for key values and for the columns hashed by their text.
_OUTPUT_SETTINGS = (
    "SET LOCAL extra_float_digits = 3",
    "SET LOCAL DateStyle = 'ISO, YMD'",
    "SET LOCAL IntervalStyle = 'postgres'",
    "SET LOCAL TimeZone = 'UTC'",
    "SET LOCAL bytea_output = 'hex'",
)
_OURS, _THEIRS = "summit_source_hash", "summit_target_hash"
# Past this share of the source's rows, reading by a list of keys costs more than reading
# every row (which the merge then narrows itself): of a 1M-row table, 500k keys were read
# in 1.06 s, 700k in 1.38 s, 1M in 1.96 s, every row without a list in 1.40-1.51 s.
_LIST_AT_MOST = 0.7
# Source rows compared in one pass: the two lists and their matching took 165-178 MB for
# 1M rows in one pass, 83 MB in four passes of 250k, in the same 1.5-1.8 s; a larger table
# is compared range by range, in at most `_PASSES_AT_MOST` ranges.
_PASS_ROWS = 1_000_000
_PASSES_AT_MOST = 64


@dataclass(frozen=True)
class KeySet:
    """Keys of the source's table, one array literal per key column."""

    columns: list[str]
    types: list[str]  # format_type() of each key column
    arrays: list[str]  # e.g. '{1,7,9}', '{"a","b"}'
    count: int

    def predicate(self, alias: str | None = None) -> sql.Composable:
        """`alias.k = ANY('{..}'::t[])` (the server hashes a long list), or for several
        key columns `(alias.k1, ...) IN (SELECT * FROM unnest('{..}'::t1[], ...))`: 100k
        keys of one column were read in 0.31 s the first way, 0.46 s the second."""
        prefix = f"{alias}." if alias else ""
        keys = [sql.SQL(prefix + "{}").format(sql.Identifier(c)) for c in self.columns]
        arrays = [
            sql.SQL("{}::{}[]").format(sql.Literal(a), sql.SQL(t))
            for a, t in zip(self.arrays, self.types, strict=True)
        ]
        if len(keys) == 1:
            return sql.SQL("{} = ANY({})").format(keys[0], arrays[0])
        return sql.SQL("({}) IN (SELECT * FROM unnest({}))").format(
            sql.SQL(", ").join(keys), sql.SQL(", ").join(arrays)
        )


@dataclass(frozen=True)
class Changes:
    compared: int  # source rows hashed
    differing: KeySet  # keys of rows new to the target or differing from its row
    gone: KeySet | None  # target keys the source lacks (asked for by delta only)


@dataclass(frozen=True)
class SourceSnapshot:
    url: str
    id: str  # for SET TRANSACTION SNAPSHOT, while the block of `source_snapshot` runs
    conn: psycopg.Connection  # the exporter's session, in that snapshot: catalog reads


@contextmanager
def source_snapshot(url: str) -> Iterator[SourceSnapshot]:
    """A read-only REPEATABLE READ transaction on the source, exported, held until the
    block ends: the hashes and the rows read later see the same source."""
    with exported_snapshot(url) as (conn, exported):
        yield SourceSnapshot(url, exported, conn)


def find_changes(
    source: SourceSnapshot,
    relation: sql.Composable,
    source_table: TableName | None,
    columns: list[SourceColumn],
    target_url: str,
    table: TableName,
    key: list[str],
    *,
    current_only: bool = False,
    gone: bool = False,
) -> Changes | None:
    """Compare the hashes of `relation`'s rows (its `columns`, as read; `source_table`:
    the table it is, if it is one) with `table`'s rows of the same `key` (`current_only`:
    its open scd_type2 versions); `gone`: list the target keys the source lacks too.
    None: the rows cannot be compared exactly (logged)."""
    with targets.connect(target_url) as target:
        held_columns = targets.inspect(target, table)
        reason = (
            _why_not(source.conn, target, table, held_columns, columns, key)
            if held_columns is not None
            else f"the target {table} does not exist yet"
        )
        by_text = _hashed_by_text(target, table) if reason is None else set()
    if reason is not None:
        # A first run has nothing to compare with: expected, not a warning.
        first_run = held_columns is None
        _reading_every_row(table, reason, logging.INFO if first_run else logging.WARNING)
        return None
    by_name = {c.name: c for c in columns}
    pass_ = _Pass(
        source,
        relation,
        target_url,
        sql.SQL("(SELECT * FROM {} WHERE is_current) AS t").format(table.ident)
        if current_only
        else table.ident,
        key,
        by_name,
        [c.name for c in columns if c.name not in key],
        by_text,
    )
    compared, differing, lacking = 0, [], []
    parts = _parts(source, source_table, key)
    for part in parts:
        found = pass_.compare(part)
        if isinstance(found, str):
            _reading_every_row(table, found)
            return None
        compared += found[0]
        differing.append(found[1])
        lacking.append(found[2])
    new_or_changed = sum(t.num_rows for t in differing)
    if new_or_changed > _LIST_AT_MOST * compared:
        log.info(
            "extraction.compareHashes: reading every row, %s of the %s source rows are new "
            "or changed",
            new_or_changed,
            compared,
            extra={"stage": "extraction", "table": str(table)},
        )
        return None
    types = [by_name[k].sql_type for k in key]
    changes = Changes(
        compared=compared,
        differing=_key_set(pa.concat_tables(differing), key, types),
        gone=_key_set(pa.concat_tables(lacking), key, types) if gone else None,
    )
    log.info(
        "compared the source's rows with the target's by hash: reading only the new and "
        "changed ones",
        extra={
            "stage": "extraction",
            "table": str(table),
            "compared": changes.compared,
            "passes": len(parts),
            "newOrChanged": changes.differing.count,
            **({"gone": changes.gone.count} if changes.gone is not None else {}),
        },
    )
    return changes


def _parts(
    source: SourceSnapshot, table: TableName | None, key: list[str]
) -> list[ReadRange | None]:
    """The key ranges compared one after another, so that a pass holds the lists of at
    most about `_PASS_ROWS` rows: ranges of the source table's leading primary-key
    column (extract/ranges.py) where that column is part of the merge key, which keeps
    every key's source and target rows in one range; else one pass of everything."""
    if table is None:
        return [None]
    row = source.conn.execute(
        "SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)",
        (table.ident.as_string(None),),
    ).fetchone()
    parts = math.ceil(float(row[0]) / _PASS_ROWS) if row and row[0] > 0 else 1
    if parts <= 1:
        return [None]
    ranges = split_read(source.url, table, min(parts, _PASSES_AT_MOST))
    if ranges[0].column not in key:
        return [None]
    return list(ranges)


@dataclass(frozen=True)
class _Pass:
    """One comparison of the source's rows with the target's, over a key range or all."""

    source: SourceSnapshot
    relation: sql.Composable  # the source as a FROM item
    target_url: str
    held: sql.Composable  # the target's rows to compare with, as a FROM item
    key: list[str]
    by_name: dict[str, SourceColumn]
    compared: list[str]  # the hashed columns
    by_text: set[str]  # of those, the ones hashed by their text

    def compare(self, part: ReadRange | None) -> tuple[int, pa.Table, pa.Table] | str:
        """The rows compared, the keys of the new and changed ones and those of the target
        rows the source lacks; or why the range's keys cannot be matched."""
        ours, theirs = self._read_both(part.predicate() if part is not None else None)
        reason = _unmatchable(ours, theirs, self.key)
        if reason is not None:
            return reason
        # Each source row's target row (null: no target row of its key), found by one
        # hash table of the target's keys.
        position = pc.index_in(_one_key(ours, self.key), value_set=_one_key(theirs, self.key))
        their_hash = theirs[_THEIRS].take(position)
        differ = pc.or_kleene(pc.is_null(their_hash), pc.not_equal(ours[_OURS], their_hash))
        # The target rows no source row found: the target's keys are unique (_unmatchable),
        # so marking the found positions is exact, and cheaper than a second hash table.
        found = np.zeros(theirs.num_rows, dtype=bool)
        found[position.drop_null().to_numpy()] = True
        return (
            ours.num_rows,
            ours.filter(differ).select(self.key),
            theirs.filter(pa.array(~found)).select(self.key),
        )

    def _read_both(self, where: sql.Composable | None) -> tuple[pa.Table, pa.Table]:
        """The source's and the target's lists of key and hash, both servers at once."""
        hashes = partial(
            _hashes,
            key=self.key,
            by_name=self.by_name,
            compared=self.compared,
            by_text=self.by_text,
            where=where,
        )
        # Both reads run on the pool, this thread only waits: the driver swaps in a SIGINT
        # handler of its own while a statement runs on the main thread, which cancels that
        # statement and never tells Python, so a run's cancel could fail or vanish.
        source_read, target_read = Cancellable(), Cancellable()
        with ThreadPoolExecutor(2, thread_name_prefix="summit-hashes") as pool:
            ours = pool.submit(
                _read, self.source.url, hashes(self.relation, name=_OURS), self.source, source_read
            )
            theirs = pool.submit(
                _read, self.target_url, hashes(self.held, name=_THEIRS), None, target_read
            )
            try:
                # The first failure ends the wait: a target that times out does not wait
                # for the source to finish hashing a large table.
                for done in as_completed((ours, theirs)):
                    done.result()
                return ours.result(), theirs.result()
            except BaseException:
                # A cancel or a failure: both reads stop, so that leaving the pool waits for
                # no statement that could run on for minutes.
                source_read.cancel()
                target_read.cancel()
                raise


def _reading_every_row(table: TableName, reason: str, level: int = logging.WARNING) -> None:
    log.log(
        level,
        "extraction.compareHashes: reading every row, %s",
        reason,
        extra={"stage": "extraction", "table": str(table)},
    )


def _why_not(
    source: psycopg.Connection,
    target: psycopg.Connection,
    table: TableName,
    held: list[TargetColumn],
    columns: list[SourceColumn],
    key: list[str],
) -> str | None:
    """Why the rows cannot be compared exactly with the target's (`held`: its columns);
    None: they can."""
    versions = {"source": source.info.server_version, "target": target.info.server_version}
    for side, version in versions.items():
        if version < _FIRST_WITH_RECORD_HASH:
            return f"the {side} server ({version}) has no hash_record_extended (PostgreSQL 14+)"
    by_name = {c.name: c for c in held}
    read = {c.name: c for c in columns}
    for k in key:
        if k not in read:
            return f"the key column {k!r} is not read"
        if read[k].base not in _INTEGER_KEYS | _KEYS_BY_TEXT:
            return (
                f"the key column {k!r} is of type {read[k].sql_type}, whose equal values may "
                "print differently"
            )
    for column in columns:
        there = by_name.get(column.name)
        if there is None:
            return f"the target lacks the column {column.name!r}"
        if there.sql_type != column.sql_type:
            return (
                f"the column {column.name!r} is {column.sql_type} in the source and "
                f"{there.sql_type} in the target"
            )
    for kept in held:
        if kept.name not in read and kept.name not in SCD2_COLUMNS:
            return (
                f"the target has the column {kept.name!r}, which the source lacks (the "
                "full read applies the schema contract to it)"
            )
    loose = targets.execute(
        target,
        sql.SQL(
            "SELECT a.attname FROM pg_attribute a JOIN pg_collation c ON c.oid = a.attcollation "
            "WHERE a.attrelid = to_regclass({}) AND a.attname = ANY({}) "
            "AND NOT c.collisdeterministic"
        ).format(sql.Literal(table.ident.as_string(None)), sql.Literal(key)),
    )
    if loose:
        return f"the key column {loose[0][0]!r} has a nondeterministic collation"
    return None


def _unmatchable(ours: pa.Table, theirs: pa.Table, key: list[str]) -> str | None:
    """Why the two lists cannot be matched key to key; None: they can."""
    for side, rows in (("source", ours), ("target", theirs)):
        nulls = sum(rows[k].null_count for k in key)
        if nulls:
            return f"{nulls} {side} rows have a NULL key (the merge never matches them)"
    shared = theirs.num_rows - pc.count_distinct(_one_key(theirs, key)).as_py()
    if shared:
        return f"{shared} target rows share their key with another (each would need comparing)"
    return None


def _one_key(rows: pa.Table, key: list[str]) -> pa.ChunkedArray:
    """One value per row standing for its key: the key column, or the key columns' text
    joined by NUL, which PostgreSQL's text never holds."""
    if len(key) == 1:
        return rows[key[0]]
    return pc.binary_join_element_wise(*(rows[k].cast(pa.string()) for k in key), "\x00")


def _hashed_by_text(target: psycopg.Connection, table: TableName) -> set[str]:
    """The target's columns whose type (a domain's: its base type's) has no hash function
    of its own: arrays, enums, ranges, composites, json, xml, point, varchar (via text)."""
    rows = targets.execute(
        target,
        sql.SQL(
            """
            SELECT a.attname
              FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
             WHERE a.attrelid = to_regclass({}) AND a.attnum > 0 AND NOT a.attisdropped
               AND NOT EXISTS (SELECT FROM pg_opclass c JOIN pg_am m ON m.oid = c.opcmethod
                                WHERE m.amname = 'hash' AND c.opcdefault
                                  AND c.opcintype = coalesce(nullif(t.typbasetype, 0), t.oid))
            """
        ).format(sql.Literal(table.ident.as_string(None))),
    )
    return {name for (name,) in rows}


def _hashes(
    relation: sql.Composable,
    *,
    key: list[str],
    by_name: dict[str, SourceColumn],
    compared: list[str],
    by_text: set[str],
    name: str,
    where: sql.Composable | None,
) -> str:
    """`SELECT key, hash AS name FROM relation [WHERE where]`: integer keys as such,
    others as text."""
    keys = [
        sql.SQL("{}" if by_name[k].base in _INTEGER_KEYS else "{0}::text AS {0}").format(
            sql.Identifier(k)
        )
        for k in key
    ]
    row = sql.SQL(", ").join(
        sql.SQL("{}{}").format(sql.Identifier(c), sql.SQL("::text" if c in by_text else ""))
        for c in compared
    )
    return (
        sql.SQL("SELECT {}, hash_record_extended(ROW({}), 0) AS {} FROM {}{}")
        .format(
            sql.SQL(", ").join(keys),
            row,
            sql.Identifier(name),
            relation,
            sql.SQL(" WHERE {}").format(where) if where is not None else sql.SQL(""),
        )
        .as_string(None)
    )


def _read(
    url: str, query: str, snapshot: SourceSnapshot | None, statement: Cancellable
) -> pa.Table:
    """All of `query`'s rows (in `snapshot`, if given), under the shared output settings;
    `statement` cancels it from another thread."""
    # The statements share the one transaction the driver began.
    with (
        Connector(url, built_in_types=True) as connector,
        connector.open() as conn,
        conn.cursor() as cursor,
    ):
        statement.attach(conn)
        try:
            if snapshot is not None:
                import_snapshot(cursor, snapshot.id)
            for setting in _OUTPUT_SETTINGS:
                cursor.execute(setting)
            cursor.execute(query)
            return cursor.fetch_arrow_table()
        finally:
            statement.detach()


def _key_set(rows: pa.Table, key: list[str], types: list[str]) -> KeySet:
    """The distinct keys of `rows` (a source key's rows may repeat) as array literals."""
    keys = rows.select(key).group_by(key).aggregate([])
    return KeySet(key, types, [_array_literal(keys[k]) for k in key], keys.num_rows)


def _array_literal(values: pa.ChunkedArray) -> str:
    """`{1,2}` for integers, else `{"v1","v2"}`: every element quoted, its backslashes and
    double quotes escaped (the server reads a list of plain numbers faster)."""
    texts = values.cast(pa.string()).to_pylist()
    if pa.types.is_integer(values.type):
        return "{" + ",".join(texts) + "}"
    quoted = ('"' + t.replace("\\", "\\\\").replace('"', '\\"') + '"' for t in texts)
    return "{" + ",".join(quoted) + "}"
