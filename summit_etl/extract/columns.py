"""The source's columns as the catalog declares them, and how each one travels.

Arrow holds some PostgreSQL types exactly (integers, floats, text, bytea, uuid, JSON);
those travel in COPY BINARY. The rest (arrays, intervals, time zones, ranges, network
types, enums, composites, bit strings, xml, tsvector, PostGIS...) travel as PostgreSQL's
own text output and are cast back into the column's real type on the target. Dates,
timestamps, times and numeric(p<=38) are exact in Arrow except for ±infinity, NaN and
24:00: they travel typed unless the rows being read hold such a value. The read finds
out itself: such a value fails the batch that holds it (extract/arrow.py), and a run
whose read may start over (runs/batch.py) reads again with that column as text, after
probing the other such columns once. That saves a scan of the source on every run whose
rows hold none; a run with a quality gate, which cannot start over, probes first. When a
transformation or quality rule needs every column typed there is no probe: such a
value fails the read itself, naming its column.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace

import psycopg
import pyarrow as pa
from psycopg import sql

from summit_etl.config import PipelineConfig
from summit_etl.config.transforms import FlattenTransform
from summit_etl.extract.arrow import (
    PG_TYPE,
    PG_TYPMOD,
    SOURCE_COLUMN,
    decimal_from_text,
    decimal_type,
)

# Types Arrow holds exactly, for every value the type allows.
EXACT_IN_ARROW = {
    "int2",
    "int4",
    "int8",
    "float4",
    "float8",
    "bool",
    "text",
    "varchar",
    "bpchar",
    "bytea",
    "uuid",
    "json",
    "jsonb",
}
# Exact in Arrow except ±infinity (dates, timestamps), NaN (numeric) or 24:00 (time).
TYPED_WHEN_NEEDED = {"date", "timestamp", "timestamptz", "time", "numeric"}


@dataclass(frozen=True)
class SourceColumn:
    name: str
    typname: str  # the declared type (a domain's own name, `_int4` for int4[])
    base: str  # what the value is underneath: a domain's base type, else typname
    sql_type: str  # format_type(): with modifiers, e.g. varchar(10), numeric(12,2)
    typmod: int
    category: str  # pg_type.typcategory: 'A' array, 'E' enum, 'N' numeric...
    not_null: bool
    # The type the server sends the column's values as: a domain's base type, else its own.
    wire_oid: int
    element_category: str | None = None  # an array's element typcategory
    # Statements that create the column's user-defined types on a target lacking them,
    # as (schema, quoted qualified type name, statement), dependencies first.
    defines: tuple[tuple[str, str, str], ...] = field(default=())

    @property
    def is_array(self) -> bool:
        return self.category == "A"

    def metadata(self, arrow_type: str) -> bytes:
        """What a field carries so a target created from it gets this column's own type."""
        return json.dumps(
            {
                "sql_type": self.sql_type,
                "not_null": self.not_null,
                "arrow": arrow_type,
                "defines": [list(d) for d in self.defines],
            }
        ).encode()


@dataclass(frozen=True)
class ReadPlan:
    """How the extraction SELECT reads each source column."""

    columns: list[SourceColumn]
    as_text: frozenset[str]
    # Read typed without a probe: a value Arrow lacks in one of them starts the read over
    # (`after_travel_error`), where the run can.
    unprobed: frozenset[str] = frozenset()
    # Which of the given columns hold such a value in the rows to be read (one scan).
    probe: Callable[[list[SourceColumn]], set[str]] | None = field(
        default=None, compare=False, repr=False
    )

    def after_travel_error(self, column: str) -> ReadPlan | None:
        """The plan to read again with once `column` held a value its typed Arrow form
        lacks: that column as text, and the other unprobed ones probed now, so a read
        starts over at most once (a column found clean stays unprobed: a row committed
        after the probe could still hold one). None: the column must travel typed."""
        if column not in self.unprobed:
            return None
        rest = [c for c in self.columns if c.name in self.unprobed and c.name != column]
        special = {column} | (self.probe(rest) if self.probe and rest else set())
        return replace(self, as_text=self.as_text | special, unprobed=self.unprobed - special)

    def select_list(self) -> sql.Composable:
        return sql.SQL(", ").join(read_expression(c, c.name in self.as_text) for c in self.columns)

    @property
    def built_in_types_only(self) -> bool:
        """Whether the driver can decode the read without the server's type catalog
        (extract/postgres.py, Connector): every column arrives as text or in a built-in
        type read typed, whose decoding its own table has (tests/extract/test_postgres.py
        checks that against the catalog's). Arrays read typed (a flatten step's) ask for
        the catalog: their elements may be of a type made on the server."""
        return all(
            c.name in self.as_text
            or (
                not c.is_array
                and c.base in EXACT_IN_ARROW | TYPED_WHEN_NEEDED
                and c.wire_oid < FIRST_USER_OID
            )
            for c in self.columns
        )

    def typed_schema(self, read: pa.Schema) -> pa.Schema:
        """The read's plain Arrow schema (extract/arrow.py) in the types its columns travel
        in, each field naming its source column's own type: made once per read."""
        by_name = {c.name: c for c in self.columns}
        fields = []
        for f in read:
            column = by_name.get(f.name)
            if column is None:
                fields.append(f)
                continue
            decimal = _decimal_via_text(column, f.name in self.as_text)
            typed = f if decimal is None else f.with_type(decimal)
            fields.append(
                typed.with_metadata(
                    {
                        PG_TYPE: column.typname.encode(),
                        PG_TYPMOD: str(column.typmod).encode(),
                        SOURCE_COLUMN: column.metadata(str(typed.type)),
                    }
                )
            )
        return pa.schema(fields, metadata=read.metadata)

    @staticmethod
    def typed(table: pa.Table, schema: pa.Schema) -> pa.Table:
        """A batch as read, in `schema` (`typed_schema`): numerics read as text are cast."""
        arrays = [
            decimal_from_text(f.name, values, f.type)
            if pa.types.is_decimal(f.type) and pa.types.is_string(values.type)
            else values
            for f, values in zip(schema, table.columns, strict=True)
        ]
        return pa.Table.from_arrays(arrays, schema=schema)


def plan_read(
    url: str,
    relation: sql.Composable,
    is_table: bool,
    config: PipelineConfig,
    where: sql.Composable | None,
) -> ReadPlan:
    """Read typed what Arrow holds exactly; as text what it cannot, and dates, timestamps,
    times and numerics whose rows to be read hold a value Arrow lacks (±infinity, NaN,
    24:00: found by the read itself, or probed first where a quality gate cannot start
    over), unless a transformation, rule or watermark needs them typed: then the run
    fails, naming the column. `where`: the read's filter; None: nothing is found out (a
    schema read without rows)."""
    columns = source_columns(url, relation, is_table)
    if config.loading.enums_as_text:
        columns = [_enum_as_text(c) for c in columns]
    lists = flattened_columns(config)
    typed = typed_columns(config)
    as_text = frozenset(c.name for c in columns if travels_as_text(c, lists))
    # When every column must arrive typed, the read itself fails on the first value Arrow
    # lacks, naming its column (extract/arrow.py): nothing to probe.
    if where is None or typed is None:
        return ReadPlan(columns, as_text)
    chosen = [c for c in columns if c.base in _SPECIAL and c.name not in as_text | set(typed)]

    def probe(candidates: list[SourceColumn]) -> set[str]:
        return _special_values(url, relation, where, candidates)

    if config.quality.min_overall_score is None:
        return ReadPlan(columns, as_text, frozenset(c.name for c in chosen), probe)
    # A quality gate's counts cannot start over with the read: probe before it.
    return ReadPlan(columns, as_text | probe(chosen))


def _enum_as_text(column: SourceColumn) -> SourceColumn:
    """An enum (or enum array) column declared as text on targets created from it."""
    if column.category == "E":
        return replace(column, sql_type="text", defines=())
    if column.is_array and column.element_category == "E":
        return replace(column, sql_type="text[]", defines=())
    return column


# Values of the typed-when-possible types that Arrow cannot hold.
_SPECIAL = {
    "date": "NOT isfinite({})",
    "timestamp": "NOT isfinite({})",
    "timestamptz": "NOT isfinite({})",
    "time": "{} = '24:00'",
    "numeric": "{} = 'NaN'",  # constrained numerics allow NaN, not ±Infinity
}


def _special_values(
    url: str, relation: sql.Composable, where: sql.Composable, columns: list[SourceColumn]
) -> set[str]:
    """Which of `columns` hold, in the rows to be read, a value their typed Arrow form
    cannot: one aggregate scan, far cheaper than reading every such column as text."""
    probed = [c for c in columns if c.base in _SPECIAL]
    if not probed:
        return set()
    tests = sql.SQL(", ").join(
        sql.SQL("coalesce(bool_or({}), false)").format(
            sql.SQL(_SPECIAL[c.base]).format(sql.Identifier(c.name))
        )
        for c in probed
    )
    with psycopg.connect(url) as conn:
        row = conn.execute(
            sql.SQL("SELECT {} FROM {} {}").format(tests, relation, where)
        ).fetchone()
    return {c.name for c, special in zip(probed, row or (), strict=False) if special}


def typed_columns(config: PipelineConfig) -> Collection[str] | None:
    """Columns that must arrive typed; None: every column that can."""
    if config.transformation.transformations or config.quality.rules:
        return None
    column = config.extraction.incremental_column
    return {column} if column else set()


def flattened_columns(config: PipelineConfig) -> set[str]:
    """Array columns a flatten step explodes: those travel as Arrow lists."""
    return {
        t.field for t in config.transformation.transformations if isinstance(t, FlattenTransform)
    }


def travels_as_text(column: SourceColumn, lists: Collection[str]) -> bool:
    """Whether the column is read as text whatever its values (see the module)."""
    if column.is_array:
        return column.name not in lists
    if column.base == "numeric":
        # Wider or unconstrained numerics arrive as their exact text anyway.
        return decimal_type(column.typmod) is None
    return column.base not in EXACT_IN_ARROW and column.base not in TYPED_WHEN_NEEDED


def _decimal_via_text(column: SourceColumn, as_text: bool) -> pa.Decimal128Type | None:
    """The decimal128 a numeric travelling typed is cast into from its text. The driver
    decodes numeric's binary form at about 0.7 µs a value on the run's CPU; the server's
    text output and Arrow's cast cost a fraction of that (bench/load_throughput.py)."""
    return None if as_text or column.base != "numeric" else decimal_type(column.typmod)


def read_expression(column: SourceColumn, as_text: bool) -> sql.Composable:
    """The column in the extraction SELECT: itself, or its exact text (also that of a
    numeric travelling typed, see `_decimal_via_text`)."""
    name = sql.Identifier(column.name)
    if _decimal_via_text(column, as_text) is not None:
        return sql.SQL("{}::text AS {}").format(name, name)
    if not as_text:
        return name
    # money's text depends on lc_monetary; its numeric form reads back on any server.
    cast = "::numeric::text" if column.base == "money" else "::text"
    return sql.SQL("{}{} AS {}").format(name, sql.SQL(cast), name)


# Types below it are built in (PostgreSQL's FirstNormalObjectId): nothing to define.
FIRST_USER_OID = 16384

_COLUMNS = """
SELECT i.ord, t.oid, t.typname, coalesce(b.typname, t.typname), format_type(t.oid, i.typmod),
       i.typmod, t.typcategory, i.not_null, e.typcategory, coalesce(b.oid, t.oid)
  FROM (SELECT s.ord, coalesce(a.atttypid, s.ftype) AS typid,
               coalesce(a.atttypmod, s.fmod) AS typmod,
               coalesce(a.attnotnull AND %(table)s, false) AS not_null
          FROM unnest(%(tab)s::oid[], %(col)s::int2[], %(ftype)s::oid[], %(fmod)s::int4[])
               WITH ORDINALITY AS s(tab, col, ftype, fmod, ord)
          LEFT JOIN pg_attribute a ON a.attrelid = s.tab AND a.attnum = s.col) AS i
  JOIN pg_type t ON t.oid = i.typid
  LEFT JOIN pg_type b ON b.oid = t.typbasetype AND t.typtype = 'd'
  LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'
 ORDER BY i.ord
"""


def source_columns(url: str, relation: sql.Composable, is_table: bool) -> list[SourceColumn]:
    """The columns `SELECT * FROM relation` returns, typed from the catalog (a table
    column's declared type, with domains, modifiers and, for tables, NOT NULL)."""
    with psycopg.connect(url) as conn:
        cursor = conn.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(relation))
        result = cursor.pgresult
        count = result.nfields if result is not None else 0
        if result is None or not count:
            return []
        names = [(result.fname(i) or b"").decode() for i in range(count)]
        params = {
            "table": is_table,
            "tab": [result.ftable(i) for i in range(count)],
            "col": [result.ftablecol(i) for i in range(count)],
            "ftype": [result.ftype(i) for i in range(count)],
            "fmod": [result.fmod(i) for i in range(count)],
        }
        rows = conn.execute(_COLUMNS, params).fetchall()
        return [
            SourceColumn(
                name=names[ord_ - 1],
                typname=typname,
                base=base,
                sql_type=sql_type,
                typmod=typmod,
                category=category,
                not_null=not_null,
                wire_oid=wire_oid,
                element_category=elem,
                defines=tuple(_defines(conn, oid, set())) if oid >= FIRST_USER_OID else (),
            )
            for ord_, oid, typname, base, sql_type, typmod, category, not_null, elem, wire_oid
            in rows
        ]


def _defines(conn: psycopg.Connection, oid: int, seen: set[int]) -> list[tuple[str, str, str]]:
    """CREATE statements for a user-defined type (enum, composite, domain, or an array of
    one) and the user-defined types it is made of; empty for built-in types."""
    row = conn.execute(
        """
        SELECT n.nspname, t.typname, t.typtype, t.typelem, t.typbasetype, t.typrelid,
               format_type(t.typbasetype, t.typtypmod), t.typnotnull,
               t.typcategory = 'A'
          FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
         WHERE t.oid = %s
        """,
        (oid,),
    ).fetchone()
    if row is None or oid in seen:
        return []
    schema, name, kind, elem, base, relid, base_sql, not_null, is_array = row
    if is_array:
        return _defines(conn, elem, seen)
    if schema in ("pg_catalog", "information_schema"):
        return []
    seen.add(oid)
    ident = sql.Identifier(schema, name)
    made: list[tuple[str, str, str]] = []
    if kind == "e":
        labels = [
            r[0]
            for r in conn.execute(
                "SELECT enumlabel FROM pg_enum WHERE enumtypid = %s ORDER BY enumsortorder",
                (oid,),
            )
        ]
        statement: sql.Composable = sql.SQL("CREATE TYPE {} AS ENUM ({})").format(
            ident, sql.SQL(", ").join(sql.Literal(label) for label in labels)
        )
    elif kind == "c":
        attributes = conn.execute(
            "SELECT attname, atttypid, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            (relid,),
        ).fetchall()
        for _, type_oid, _ in attributes:
            made += _defines(conn, type_oid, seen)
        statement = sql.SQL("CREATE TYPE {} AS ({})").format(
            ident,
            sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(a), sql.SQL(t)) for a, _, t in attributes
            ),
        )
    elif kind == "d":
        made += _defines(conn, base, seen)
        # The domain's CHECK constraints as the source's catalog prints them.
        checks = [
            r[0]
            for r in conn.execute(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE contypid = %s AND contype = 'c' ORDER BY conname",
                (oid,),
            )
        ]
        statement = sql.SQL("CREATE DOMAIN {} AS {}{}{}").format(
            ident,
            sql.SQL(base_sql),
            sql.SQL(" NOT NULL" if not_null else ""),
            sql.SQL("".join(f" {c}" for c in checks)),
        )
    else:
        return made  # ranges and base types of extensions: the target must have them
    made.append((schema, ident.as_string(conn), statement.as_string(conn)))
    return made
