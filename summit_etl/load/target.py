"""The target table: what columns it has, and creating it from the incoming schema."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass

import psycopg
import pyarrow as pa
from psycopg import sql

from summit_etl.identifiers import TableName, check_name, columns_sql
from summit_etl.load.types import ColumnDdl, arrow_type_for, column_ddl

log = logging.getLogger(__name__)

SCD2_COLUMNS = ("effective_from", "effective_to", "is_current")
# On tables Summit created: their schema contract defaults to evolve (schema/contract.py).
CREATED_MARK = "summit-etl: created from its source"


@dataclass(frozen=True)
class TargetColumn:
    name: str
    typname: str
    sql_type: str  # format_type(): what casts and DDL use, e.g. numeric(12,2)
    arrow_type: pa.DataType | None  # what COPY BINARY writes it from; None: staged as text
    # False when the type has no default equality (xml, json, point, and arrays, enums,
    # ranges and composites, whose element types may lack one): compared as text then.
    comparable: bool = True


def compared(alias: str, columns: Sequence[TargetColumn]) -> sql.Composable:
    """`alias.col, ...` for a change test (`ROW(..) IS DISTINCT FROM ROW(..)`): a column
    whose type has no default equality compares by its text, which equal values share."""
    return sql.SQL(", ").join(
        sql.SQL("{}.{}{}").format(
            sql.Identifier(alias), sql.Identifier(c.name), sql.SQL("" if c.comparable else "::text")
        )
        for c in columns
    )


class TargetMissingError(LookupError):
    pass


def connect(url: str) -> closing[psycopg.Connection]:
    """A target writer's connection, in a block that closes it without committing: the
    writer commits what it means to keep. Writers talk psycopg; their rows go out as COPY
    BINARY encoded by pgpq (load/writer.py)."""
    # No server-side prepared statements: the writer's DDL cannot be prepared.
    return closing(psycopg.connect(url, prepare_threshold=None))


def execute(conn: psycopg.Connection, statement: sql.Composable) -> list[tuple]:
    """Run one statement on the target session; rows if it returns any."""
    cursor = _run(conn, statement)
    return cursor.fetchall() if cursor.description else []


def affected(conn: psycopg.Connection, statement: sql.Composable) -> int:
    """Run one statement that returns no rows on the target session; how many rows it
    wrote (its command tag's count: `CREATE TABLE ... AS`, INSERT, UPDATE, DELETE)."""
    return _run(conn, statement).rowcount


def _run(conn: psycopg.Connection, statement: sql.Composable) -> psycopg.Cursor:
    text = statement.as_string(conn)
    log.debug("target sql", extra={"stage": "loading", "sql": text})
    return conn.execute(text)


def inspect(conn: psycopg.Connection, table: TableName) -> list[TargetColumn] | None:
    """The target's writable columns in table order; None when the table does not exist."""
    rows = execute(
        conn,
        sql.SQL(
            """
            SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typname, a.atttypmod,
                   EXISTS (SELECT 1 FROM pg_opclass c JOIN pg_am m ON m.oid = c.opcmethod
                            WHERE m.amname = 'btree' AND c.opcdefault
                              AND c.opcintype = coalesce(nullif(t.typbasetype, 0), t.oid))
              FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
             WHERE a.attrelid = to_regclass({}) AND a.attnum > 0 AND NOT a.attisdropped
               AND a.attgenerated = ''
             ORDER BY a.attnum
            """
        ).format(sql.Literal(table.ident.as_string(None))),
    )
    if not rows:
        exists = execute(
            conn,
            sql.SQL("SELECT to_regclass({}) IS NOT NULL").format(
                sql.Literal(table.ident.as_string(None))
            ),
        )
        if not exists[0][0]:
            return None
    return [
        TargetColumn(name, typname, sql_type, arrow_type_for(typname, typmod), comparable)
        for name, sql_type, typname, typmod, comparable in rows
    ]


def create(
    conn: psycopg.Connection, table: TableName, schema: pa.Schema, key: list[str], scd2: bool
) -> None:
    """Create the target (and its schema) from the incoming Arrow schema.

    Merge targets get their key as primary key, or, for scd_type2, as a unique index
    over the current versions, so that set-based merges can rely on it.
    """
    for name in schema.names:
        check_name(name, "column")
    declared = {f.name: column_ddl(f) for f in schema if not (scd2 and f.name in SCD2_COLUMNS)}
    columns: list[sql.Composable] = [
        sql.SQL("{} {}{}").format(
            sql.Identifier(name),
            sql.SQL(ddl.sql_type),
            sql.SQL(" NOT NULL" if ddl.not_null else ""),
        )
        for name, ddl in declared.items()
    ]
    if scd2:
        columns += [
            sql.SQL("effective_from timestamptz NOT NULL DEFAULT now()"),
            sql.SQL("effective_to timestamptz"),
            sql.SQL("is_current boolean NOT NULL DEFAULT true"),
        ]
    elif key:
        columns.append(sql.SQL("PRIMARY KEY ({})").format(columns_sql(key)))
    if table.schema:
        execute(
            conn, sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(table.schema))
        )
    define_types(conn, declared.values())
    execute(
        conn,
        sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(
            table.ident, sql.SQL(", ").join(columns)
        ),
    )
    mark = sql.Literal(CREATED_MARK)
    execute(conn, sql.SQL("COMMENT ON TABLE {} IS {}").format(table.ident, mark))
    if scd2 and key:
        index = sql.Identifier(check_name(f"{table.name}_current_key"[:63], "index"))
        execute(
            conn,
            sql.SQL("CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} ({}) WHERE is_current").format(
                index, table.ident, columns_sql(key)
            ),
        )


def define_types(conn: psycopg.Connection, declared: Iterable[ColumnDdl]) -> None:
    """Create the user-defined types (enums, composites, domains) the source's columns use
    and the target lacks, with their schemas, as the source's catalog defines them."""
    for ddl in declared:
        for schema, name, statement in ddl.defines:
            exists = execute(
                conn, sql.SQL("SELECT to_regtype({}) IS NOT NULL").format(sql.Literal(name))
            )
            if exists[0][0]:
                continue
            execute(conn, sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            execute(conn, sql.SQL(statement))  # built with psycopg.sql from the source catalog
