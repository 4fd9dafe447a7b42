"""One table's full read split into ranges that cover every row exactly once.

The split column is the leading primary-key column: even under a composite key every row
has exactly one value there, so half-open ranges on it partition the rows. Boundaries come
from what is cheap to know: the planner's histogram (skew-aware, no scan), else min/max
through the key's index for integers, else percentiles of a block sample. A table without
a primary key is split by ctid over its blocks (PostgreSQL 14+ reads a TID range without
scanning the rest). The first range has no lower bound and the last no upper bound, so
rows added, or statistics gone stale, after the split still fall in exactly one range.

Ranges are only disjoint per snapshot: readers of one table's ranges see one consistent
state only when they share a snapshot (an updated row can move to another block, and so
to another ctid range).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import psycopg
from psycopg import sql

from summit_etl.extract.postgres import primary_key
from summit_etl.identifiers import TableName

# Enough rows to place 16 boundaries well, few enough to sort in milliseconds: the sample
# reads about this many blocks whatever the table's size.
_SAMPLE_BLOCKS = 300


log = logging.getLogger(__name__)
# Relations with rows of their own (tables, partitioned tables, materialized views).
_STORED = ("r", "p", "m")


class SplitError(LookupError):
    """The table to split cannot be found."""


@dataclass(frozen=True)
class ReadRange:
    """Rows whose split value is in [lower, upper); a None bound is open.

    `column` is the split column, or None for a ctid range, whose bounds are tids as
    text ('(1200,0)').
    """

    column: str | None
    lower: object | None
    upper: object | None

    def predicate(self) -> sql.Composable:
        """The WHERE condition selecting this range's rows (`TRUE` for an unbounded one)."""
        target: sql.Composable = (
            sql.Identifier(self.column) if self.column is not None else sql.SQL("ctid")
        )
        terms: list[sql.Composable] = []
        for bound, operator in ((self.lower, ">="), (self.upper, "<")):
            if bound is not None:
                value: sql.Composable = sql.Literal(bound)
                if self.column is None:
                    value = sql.SQL("{}::tid").format(value)
                terms.append(sql.SQL("{} {} {}").format(target, sql.SQL(operator), value))
        return sql.SQL(" AND ").join(terms) if terms else sql.SQL("TRUE")


def split_read(url: str, table: TableName, parts: int) -> list[ReadRange]:
    """At most `parts` ranges of `table` (fewer when boundaries coincide), in order,
    covering every row exactly once."""
    if parts < 1:
        raise ValueError(f"a read is split into at least 1 part, not {parts}")
    key = primary_key(url, table)
    column = key[0] if key else None
    with psycopg.connect(url, autocommit=True) as conn:
        found = conn.execute(
            "SELECT c.oid, c.relkind FROM pg_class c WHERE c.oid = to_regclass(%s)",
            (table.ident.as_string(conn),),
        )
        row = found.fetchone()
        if row is None:
            raise SplitError(f"table {table} does not exist, so its read cannot be split")
        if parts > 1 and row[1] not in _STORED:
            log.warning(
                "a view has neither a primary key nor row locations to split by: one reader "
                "reads it (split the read on the table the view selects from)",
                extra={"table": str(table), "parallelism": parts},
            )
            parts = 1
        if parts == 1:
            return [ReadRange(column, None, None)]
        if column is None:
            bounds = _block_bounds(conn, row[0], parts)
        else:
            bounds = (
                _histogram_bounds(conn, row[0], column, parts)
                or _integer_bounds(conn, table, row[0], column, parts)
                or _sampled_bounds(conn, table, row[0], column, parts)
            )
    edges: list[object | None] = [None, *bounds, None]
    return [ReadRange(column, lo, hi) for lo, hi in zip(edges, edges[1:], strict=False)]


def _fractions(parts: int) -> list[float]:
    return [i / parts for i in range(1, parts)]


def _column_type(conn: psycopg.Connection, oid: int, column: str) -> tuple[sql.SQL, bool]:
    """The column's type as SQL, and whether it is a plain integer."""
    row = conn.execute(
        """
        SELECT format_type(a.atttypid, a.atttypmod), a.atttypid IN (20, 21, 23)
          FROM pg_attribute a
         WHERE a.attrelid = %s AND a.attname = %s
        """,
        (oid, column),
    ).fetchone()
    assert row is not None  # the column is the table's own key column
    # format_type quotes what needs quoting: its text is a type name taken from the
    # catalog, never from the configuration.
    return sql.SQL(row[0]), bool(row[1])


def _histogram_bounds(conn: psycopg.Connection, oid: int, column: str, parts: int) -> list[object]:
    """Boundaries from pg_stats: histogram buckets hold equal shares of the rows, so
    evenly spaced bounds give evenly filled ranges however skewed the values are."""
    stats = conn.execute(
        """
        SELECT s.histogram_bounds::text
          FROM pg_stats s
          JOIN pg_class c ON c.relname = s.tablename
          JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = s.schemaname
         WHERE c.oid = %s AND s.attname = %s AND s.histogram_bounds IS NOT NULL
         ORDER BY s.inherited DESC
         LIMIT 1
        """,
        (oid, column),
    ).fetchone()
    if stats is None:
        return []
    type_sql, _ = _column_type(conn, oid, column)
    # Read back as the column's own type, in the type's sort order (the histogram's).
    query = sql.SQL(
        "SELECT b FROM unnest(%s::text::{}[]) WITH ORDINALITY AS h(b, i) ORDER BY i"
    ).format(type_sql)
    histogram = [r[0] for r in conn.execute(query, (stats[0],)).fetchall()]
    # Picking by position keeps that order. A bound picked twice (fewer buckets than
    # parts, or a frequent value repeated in the histogram) is one boundary.
    picked = [histogram[round(f * (len(histogram) - 1))] for f in _fractions(parts)]
    return [b for i, b in enumerate(picked) if i == 0 or b != picked[i - 1]]


def _integer_bounds(
    conn: psycopg.Connection, table: TableName, oid: int, column: str, parts: int
) -> list[object]:
    """Evenly spaced integers between min and max, both read from the key's index."""
    _, is_integer = _column_type(conn, oid, column)
    if not is_integer:
        return []
    row = conn.execute(
        sql.SQL("SELECT min({c}), max({c}) FROM {t}").format(
            c=sql.Identifier(column), t=table.ident
        )
    ).fetchone()
    if row is None or row[0] is None:
        return []
    low, high = row
    bounds = sorted({low + (high - low + 1) * i // parts for i in range(1, parts)})
    return [b for b in bounds if b > low]


def _sampled_bounds(
    conn: psycopg.Connection, table: TableName, oid: int, column: str, parts: int
) -> list[object]:
    """Percentiles of a block sample (TABLESAMPLE SYSTEM reads only the sampled blocks)."""
    blocks = _relation_blocks(conn, oid)
    if blocks == 0:
        return []
    percent = min(100.0, _SAMPLE_BLOCKS * 100.0 / blocks)
    query = sql.SQL(
        """
        SELECT DISTINCT q FROM (
            SELECT unnest(percentile_disc(%s::float8[]) WITHIN GROUP (ORDER BY {c})) AS q
              FROM {t} TABLESAMPLE SYSTEM (%s)
        ) s
        WHERE q IS NOT NULL
        ORDER BY q
        """
    ).format(c=sql.Identifier(column), t=table.ident)
    return [r[0] for r in conn.execute(query, (_fractions(parts), percent)).fetchall()]


def _relation_blocks(conn: psycopg.Connection, oid: int) -> int:
    """The table's size in blocks now (pg_class.relpages is only as fresh as ANALYZE)."""
    row = conn.execute(
        "SELECT pg_relation_size(%s) / current_setting('block_size')::int", (oid,)
    ).fetchone()
    return int(row[0]) if row else 0


def _block_bounds(conn: psycopg.Connection, oid: int, parts: int) -> list[object]:
    blocks = _relation_blocks(conn, oid)
    starts = sorted({blocks * i // parts for i in range(1, parts)})
    return [f"({b},0)" for b in starts if b > 0]
