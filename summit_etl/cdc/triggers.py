"""Trigger-based capture: a trigger on the source table records every change in
`<table>_changes` beside it; runs read that table in position order and prune what the
target has committed.

Positions come from a sequence at write time, not at commit time, so a transaction can
commit a lower position after a higher one was read. Reads therefore never skip by
position across runs: whatever is still in the capture table is pending, and pruning
(after the target commit) is what marks a change as done. Changes to one key are
ordered by the row lock their writers held, so their positions follow commit order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import psycopg
from psycopg import sql

from summit_etl.cdc.changes import Change, ChangeBatch, Offset
from summit_etl.cdc.connections import SourceConnection
from summit_etl.cdc.documents import CARRIED_AS_TEXT
from summit_etl.identifiers import TableName

FUNCTION = "summit_cdc_capture"
# The function runs as its owner (who owns the capture table), so roles that write the
# source need no rights on the capture table; a fixed search_path keeps it from
# resolving names through a writer's path.
_SEARCH_PATH = "pg_catalog, pg_temp"
# Arguments: include old values ('true'/'false'), then the key columns. A key change is
# recorded as the delete of the old key and the insert of the new one.
_FUNCTION_BODY = """
DECLARE
  include_old boolean := TG_ARGV[0]::boolean;
  keys text[] := TG_ARGV[1:];
  new_row jsonb := CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END;
  old_row jsonb := CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END;
  new_key jsonb;
  old_key jsonb;
  texts_query text;
  texts jsonb;
  capture text := format('INSERT INTO %I.%I (operation, primary_key, old_values, new_values) '
                         'VALUES ($1, $2, $3, $4)', TG_TABLE_SCHEMA, TG_TABLE_NAME || '_changes');
BEGIN
  -- Columns that to_jsonb would alter travel as their text (summit_etl/cdc/documents.py).
  SELECT 'SELECT jsonb_build_object('
         || string_agg(format('%L, ($1).%I::text', attname, attname), ', ') || ')'
    INTO texts_query FROM pg_attribute
   WHERE attrelid = TG_RELID AND attnum > 0 AND NOT attisdropped AND CARRIED_AS_TEXT;
  IF texts_query IS NOT NULL AND new_row IS NOT NULL THEN
    EXECUTE texts_query INTO texts USING NEW;
    new_row := new_row || texts;
  END IF;
  IF texts_query IS NOT NULL AND old_row IS NOT NULL THEN
    EXECUTE texts_query INTO texts USING OLD;
    old_row := old_row || texts;
  END IF;
  IF new_row IS NOT NULL THEN
    SELECT jsonb_object_agg(k, new_row -> k) INTO new_key FROM unnest(keys) AS k;
  END IF;
  IF old_row IS NOT NULL THEN
    SELECT jsonb_object_agg(k, old_row -> k) INTO old_key FROM unnest(keys) AS k;
  END IF;
  IF TG_OP = 'UPDATE' AND new_key <> old_key THEN
    EXECUTE capture USING 'DELETE', old_key, CASE WHEN include_old THEN old_row END, NULL::jsonb;
    EXECUTE capture USING 'INSERT', new_key, NULL::jsonb, new_row;
  ELSE
    EXECUTE capture USING TG_OP, coalesce(new_key, old_key),
                          CASE WHEN include_old THEN old_row END, new_row;
  END IF;
  RETURN NULL;
END
""".replace("CARRIED_AS_TEXT", CARRIED_AS_TEXT)

# Statement-level capture (cdc.triggerLevel: statement): one INSERT ... SELECT per statement
# over its transition tables, the same documents as the row function. A transition table
# takes one event per trigger, so there are three triggers. An UPDATE pairs old and new
# rows by key: a key changed is the delete of the old key and the insert of the new one.
STATEMENT_FUNCTION = "summit_cdc_capture_statement"
OLD_ROWS, NEW_ROWS = "summit_old_rows", "summit_new_rows"
_STATEMENT_BODY = (
    """
DECLARE
  include_old boolean := TG_ARGV[0]::boolean;
  keys text[] := TG_ARGV[1:];
  texts text;
  document text;
  key_of text := '(SELECT jsonb_object_agg(k, %s -> k) FROM unnest($1) AS k)';
  capture text := format('INSERT INTO %I.%I (operation, primary_key, old_values, new_values) ',
                         TG_TABLE_SCHEMA, TG_TABLE_NAME || '_changes');
BEGIN
  -- Columns that to_jsonb would alter travel as their text (summit_etl/cdc/documents.py).
  SELECT string_agg(format('%L, r.%I::text', attname, attname), ', ') INTO texts
    FROM pg_attribute
   WHERE attrelid = TG_RELID AND attnum > 0 AND NOT attisdropped AND CARRIED_AS_TEXT;
  document := CASE WHEN texts IS NULL THEN 'to_jsonb(r.*)'
                   ELSE format('to_jsonb(r.*) || jsonb_build_object(%s)', texts) END;
  IF TG_OP = 'INSERT' THEN
    EXECUTE capture || format(
      'SELECT ''INSERT'', %s, NULL, n.d FROM (SELECT %s AS d FROM NEW_ROWS AS r) AS n',
      format(key_of, 'n.d'), document) USING keys;
  ELSIF TG_OP = 'DELETE' THEN
    EXECUTE capture || format(
      'SELECT ''DELETE'', %s, CASE WHEN $2 THEN o.d END, NULL '
      'FROM (SELECT %s AS d FROM OLD_ROWS AS r) AS o',
      format(key_of, 'o.d'), document) USING keys, include_old;
  ELSE
    EXECUTE capture || format(
      'SELECT CASE WHEN n.k IS NULL THEN ''DELETE'' WHEN o.k IS NULL THEN ''INSERT'' '
      '            ELSE ''UPDATE'' END, coalesce(n.k, o.k), CASE WHEN $2 THEN o.d END, n.d '
      'FROM (SELECT d, %s AS k FROM (SELECT %s AS d FROM OLD_ROWS AS r) AS x) AS o '
      'FULL JOIN (SELECT d, %s AS k FROM (SELECT %s AS d FROM NEW_ROWS AS r) AS y) AS n '
      'ON n.k = o.k ORDER BY n.k IS NOT NULL',
      format(key_of, 'x.d'), document, format(key_of, 'y.d'), document) USING keys, include_old;
  END IF;
  RETURN NULL;
END
""".replace("CARRIED_AS_TEXT", CARRIED_AS_TEXT)
    .replace("OLD_ROWS", OLD_ROWS)
    .replace("NEW_ROWS", NEW_ROWS)
)
# pg_trigger.tgtype bits
_ROW, _INSERT, _DELETE, _UPDATE = 1, 4, 8, 16


@dataclass(frozen=True)
class _Trigger:
    """A capture trigger as pg_trigger knows it, and the statement that creates it."""

    name: str
    tgtype: int
    old_table: str | None = None
    new_table: str | None = None

    def create(self, table: TableName, function: TableName, arguments: list[str]) -> sql.Composed:
        events = [
            e
            for bit, e in ((_INSERT, "INSERT"), (_UPDATE, "UPDATE"), (_DELETE, "DELETE"))
            if self.tgtype & bit
        ]
        referencing = [
            sql.SQL("{} TABLE AS {}").format(sql.SQL(kind), sql.Identifier(name))
            for kind, name in (("OLD", self.old_table), ("NEW", self.new_table))
            if name is not None
        ]
        return sql.SQL(
            "CREATE TRIGGER {} AFTER {} ON {} {} FOR EACH {} EXECUTE FUNCTION {}({})"
        ).format(
            sql.Identifier(self.name),
            sql.SQL(" OR ".join(events)),
            table.ident,
            sql.SQL("REFERENCING ") + sql.SQL(" ").join(referencing)
            if referencing
            else sql.SQL(""),
            sql.SQL("ROW" if self.tgtype & _ROW else "STATEMENT"),
            function.ident,
            sql.SQL(", ").join(sql.Literal(a) for a in arguments),
        )


class TriggerCapture:
    def __init__(
        self,
        url: str,
        table: TableName,
        keys: list[str],
        capture_deletes: bool,
        include_old: bool,
        level: str = "row",
    ) -> None:
        self.url = url
        self.table = table
        self.keys = keys
        self.capture_deletes = capture_deletes
        self.include_old = include_old
        self.changes = table.with_suffix("_changes")
        self.statement_level = level == "statement"
        self.function = TableName(
            table.schema, STATEMENT_FUNCTION if self.statement_level else FUNCTION
        )
        self.trigger = f"summit_cdc_{table.name}"[:63]
        self.connection = SourceConnection(url)
        # Every name a capture trigger of this table may have, whichever the level.
        self._names = [self.trigger, *(f"summit_cdc_{table.name}"[:61] + s for s in ("_u", "_d"))]

    def _triggers(self) -> list[_Trigger]:
        """The capture triggers this level wants."""
        deletes = self.capture_deletes
        if not self.statement_level:
            return [_Trigger(self.trigger, _ROW | _INSERT | _UPDATE | (_DELETE if deletes else 0))]
        insert, update, delete = self._names
        wanted = [
            _Trigger(insert, _INSERT, new_table=NEW_ROWS),
            _Trigger(update, _UPDATE, old_table=OLD_ROWS, new_table=NEW_ROWS),
        ]
        return wanted + ([_Trigger(delete, _DELETE, old_table=OLD_ROWS)] if deletes else [])

    def _arguments(self) -> list[str]:
        return ["true" if self.include_old else "false", *self.keys]

    def prepare(self) -> None:
        """Install the capture table, function and trigger; each only when missing or stale."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(
                sql.SQL(
                    """
                    CREATE TABLE IF NOT EXISTS {} (
                        position    bigserial PRIMARY KEY,
                        operation   text NOT NULL,
                        primary_key jsonb NOT NULL,
                        old_values  jsonb,
                        new_values  jsonb,
                        changed_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
                        txid        bigint NOT NULL DEFAULT txid_current()
                    )
                    """
                ).format(self.changes.ident)
            )
            body = _STATEMENT_BODY if self.statement_level else _FUNCTION_BODY
            installed = conn.execute(
                "SELECT prosrc, prosecdef, proconfig FROM pg_proc WHERE oid = to_regprocedure(%s)",
                (f"{self.function.ident.as_string(conn)}()",),
            ).fetchone()
            if installed is None or tuple(installed) != (
                body,
                True,
                [f"search_path={_SEARCH_PATH}"],
            ):
                conn.execute(
                    sql.SQL(
                        "CREATE OR REPLACE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql "
                        "SECURITY DEFINER SET search_path = {} AS {}"
                    ).format(self.function.ident, sql.SQL(_SEARCH_PATH), sql.Literal(body))
                )
            wanted = self._triggers()
            if self._installed(conn) != {t.name: (t, self._arguments(), True) for t in wanted}:
                # Swapped in one transaction: its lock holds writers off, so no change falls
                # between the old triggers and the new (a level changed, deletes switched).
                with conn.transaction():
                    self._drop_triggers(conn)
                    for trigger in wanted:
                        conn.execute(trigger.create(self.table, self.function, self._arguments()))

    def _installed(self, conn: psycopg.Connection) -> dict[str, tuple[_Trigger, list[str], bool]]:
        """Each capture trigger on the table: its shape, arguments, and whether it calls
        this level's function."""
        rows = conn.execute(
            """
            SELECT tgname, tgtype, tgoldtable, tgnewtable, tgargs, tgfoid = to_regprocedure(%s)
              FROM pg_trigger WHERE tgrelid = to_regclass(%s) AND tgname = ANY(%s)
            """,
            (
                f"{self.function.ident.as_string(conn)}()",
                self.table.ident.as_string(conn),
                self._names,
            ),
        ).fetchall()
        return {
            name: (
                _Trigger(name, tgtype & (_ROW | _INSERT | _DELETE | _UPDATE), old, new),
                bytes(args).decode().split("\x00")[:-1],
                bool(ours),
            )
            for name, tgtype, old, new, args, ours in rows
        }

    def _drop_triggers(self, conn: psycopg.Connection) -> None:
        for name in self._names:
            conn.execute(
                sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(
                    sql.Identifier(name), self.table.ident
                )
            )

    def probe(self) -> str | None:
        """The newest pending position; None when the capture table is empty."""
        return self.connection.query(self._head)

    def _head(self, conn: psycopg.Connection) -> str | None:
        row = conn.execute(
            sql.SQL("SELECT max(position)::text FROM {}").format(self.changes.ident)
        ).fetchone()
        return row[0] if row else None

    def identity(self) -> str | None:
        """The capture table's oid: a table dropped and created again restarts positions."""
        row = self.connection.query(
            lambda conn: conn.execute(
                "SELECT to_regclass(%s)::oid::text", (self.changes.ident.as_string(conn),)
            ).fetchone()
        )
        return row[0] if row else None

    def read(self, offset: Offset, batch_size: int) -> Iterator[ChangeBatch]:
        """Pending changes in position order, up to the newest one when the read began.

        Changes whose transaction the initial snapshot saw are released without being
        applied again: the snapshot holds them already.
        """
        with self.connection.reading() as conn:
            head = self._head(conn)
            after = 0
            while head is not None:
                rows = conn.execute(
                    sql.SQL(
                        """
                        SELECT position, operation, primary_key::text, old_values::text,
                               new_values::text, changed_at,
                               coalesce(pg_visible_in_snapshot(
                                   txid::text::xid8, %s::pg_snapshot), false)
                          FROM {} WHERE position > %s AND position <= %s
                         ORDER BY position LIMIT %s
                        """
                    ).format(self.changes.ident),
                    (offset.snapshot, after, int(head), batch_size),
                ).fetchall()
                if not rows:
                    return
                after = rows[-1][0]
                yield ChangeBatch(
                    [
                        Change(str(p), op, key, old, new, at)
                        for p, op, key, old, new, at, seen in rows
                        if not seen
                    ],
                    replace(offset, value=str(after)),
                    release=[r[0] for r in rows],
                )

    def confirm(self, batch: ChangeBatch) -> None:
        """The target committed the batch: its captured rows are no longer needed."""
        if not batch.release:
            return
        with self.connection.current() as conn:
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE position = ANY(%s)").format(self.changes.ident),
                (batch.release,),
            )

    def release(self) -> None:
        """The pipeline is gone: stop capturing (the capture table is left for inspection)."""
        with psycopg.connect(self.url, autocommit=True) as conn, conn.transaction():
            self._drop_triggers(conn)
