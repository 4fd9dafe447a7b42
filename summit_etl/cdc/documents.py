"""Rows as change documents, with the columns that to_jsonb would alter carried as text.

Change documents are jsonb. jsonb normalises a `json` value (whitespace, key order,
duplicate keys), and to_jsonb converts a type with a cast to json through that cast
(PostGIS geometry becomes GeoJSON with 15 digits). So every capture puts such a column's
text output into the document as a JSON string: `jsonb_populate_record` reads it back
through the type's input function, and the apply turns json's text back into its value.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from summit_etl.identifiers import TableName

# Which columns of a pg_attribute row travel as text (shared with the capture trigger).
# jsonb is a document's own type: it goes in as it is.
CARRIED_AS_TEXT = (
    "(atttypid = 'json'::regtype OR atttypid <> 'jsonb'::regtype AND EXISTS (SELECT FROM"
    " pg_cast WHERE castsource = atttypid AND casttarget IN ('json'::regtype, 'jsonb'::regtype)))"
)
_COLUMNS = """
SELECT attname, atttypid = 'json'::regtype FROM pg_attribute
 WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped AND {}
 ORDER BY attnum
"""


def _columns(conn: psycopg.Connection, table: TableName) -> list[tuple[str, bool]]:
    query = sql.SQL(_COLUMNS).format(sql.SQL(CARRIED_AS_TEXT))
    return [(str(r[0]), bool(r[1])) for r in conn.execute(query, (table.ident.as_string(conn),))]


def text_columns(conn: psycopg.Connection, table: TableName) -> list[str]:
    """The columns of `table` that documents carry as their text."""
    return [name for name, _ in _columns(conn, table)]


def json_columns(conn: psycopg.Connection, table: TableName) -> list[str]:
    """The columns of `table` declared `json`."""
    return [name for name, is_json in _columns(conn, table) if is_json]


def document(columns: list[str], alias: str = "t") -> sql.Composable:
    """The row `alias` as a change document, `columns` carried as their text."""
    row = sql.SQL("to_jsonb({})").format(sql.Identifier(alias))
    if not columns:
        return row
    texts = sql.SQL(", ").join(
        sql.SQL("{}, {}.{}::text").format(sql.Literal(c), sql.Identifier(alias), sql.Identifier(c))
        for c in columns
    )
    return sql.SQL("({} || jsonb_build_object({}))").format(row, texts)


def restore_json(rows: sql.Identifier, columns: list[str]) -> sql.Composed | None:
    """Turn the json columns of `rows` (populated from documents) back into the value
    their text spells: `jsonb_populate_record` copies a JSON string into json as it is."""
    if not columns:
        return None
    assignments = sql.SQL(", ").join(
        sql.SQL("{0} = ({0} #>> '{{}}')::json").format(sql.Identifier(c)) for c in columns
    )
    return sql.SQL("UPDATE {} SET {}").format(rows, assignments)
