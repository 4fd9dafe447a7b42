"""`json` columns in change documents travel as their exact text.

Change documents are jsonb, and jsonb normalises a `json` value's whitespace, key order
and duplicate keys. So every capture puts a json column's text into the document as a
JSON string, and the apply turns that string back into the json value it spells.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from summit_etl.identifiers import TableName

_JSON_COLUMNS = """
SELECT attname FROM pg_attribute
 WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped
   AND atttypid = 'json'::regtype
 ORDER BY attnum
"""


def json_columns(conn: psycopg.Connection, table: TableName) -> list[str]:
    """The columns of `table` declared `json`."""
    rows = conn.execute(_JSON_COLUMNS, (table.ident.as_string(conn),)).fetchall()
    return [str(r[0]) for r in rows]


def document(columns: list[str], alias: str = "t") -> sql.Composable:
    """The row `alias` as a change document: to_jsonb, json columns as their text."""
    row = sql.SQL("to_jsonb({})").format(sql.Identifier(alias))
    if not columns:
        return row
    texts = sql.SQL(", ").join(
        sql.SQL("{}, {}.{}::text").format(sql.Literal(c), sql.Identifier(alias), sql.Identifier(c))
        for c in columns
    )
    return sql.SQL("({} || jsonb_build_object({}))").format(row, texts)


def restore(rows: sql.Identifier, columns: list[str]) -> sql.Composed | None:
    """Turn the json columns of `rows` (populated from documents) back into their text's
    value: `jsonb_populate_record` copies the carried JSON string as it is."""
    if not columns:
        return None
    assignments = sql.SQL(", ").join(
        sql.SQL("{0} = ({0} #>> '{{}}')::json").format(sql.Identifier(c)) for c in columns
    )
    return sql.SQL("UPDATE {} SET {}").format(rows, assignments)
