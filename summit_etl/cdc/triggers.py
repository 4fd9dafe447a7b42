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
from dataclasses import replace

import psycopg
from psycopg import sql

from summit_etl.cdc.changes import Change, ChangeBatch, Offset
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


class TriggerCapture:
    def __init__(
        self, url: str, table: TableName, keys: list[str], capture_deletes: bool, include_old: bool
    ) -> None:
        self.url = url
        self.table = table
        self.keys = keys
        self.capture_deletes = capture_deletes
        self.include_old = include_old
        self.changes = table.with_suffix("_changes")
        self.function = TableName(table.schema, FUNCTION)
        self.trigger = f"summit_cdc_{table.name}"[:63]

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
            installed = conn.execute(
                "SELECT prosrc, prosecdef, proconfig FROM pg_proc "
                "WHERE oid = to_regprocedure(%s)",
                (f"{self.function.ident.as_string(conn)}()",),
            ).fetchone()
            wanted = (_FUNCTION_BODY, True, [f"search_path={_SEARCH_PATH}"])
            if installed is None or tuple(installed) != wanted:
                conn.execute(
                    sql.SQL(
                        "CREATE OR REPLACE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql "
                        "SECURITY DEFINER SET search_path = {} AS {}"
                    ).format(
                        self.function.ident, sql.SQL(_SEARCH_PATH), sql.Literal(_FUNCTION_BODY)
                    )
                )
            if self._trigger_state(conn) != (self.capture_deletes, self._arguments()):
                events = "INSERT OR UPDATE" + (" OR DELETE" if self.capture_deletes else "")
                conn.execute(
                    sql.SQL(
                        "CREATE OR REPLACE TRIGGER {} AFTER {} ON {} "
                        "FOR EACH ROW EXECUTE FUNCTION {}({})"
                    ).format(
                        sql.Identifier(self.trigger),
                        sql.SQL(events),
                        self.table.ident,
                        self.function.ident,
                        sql.SQL(", ").join(sql.Literal(a) for a in self._arguments()),
                    )
                )

    def _trigger_state(self, conn: psycopg.Connection) -> tuple[bool, list[str]] | None:
        row = conn.execute(
            """
            SELECT tgtype & 8 <> 0, tgargs FROM pg_trigger
             WHERE tgrelid = to_regclass(%s) AND tgname = %s
            """,
            (self.table.ident.as_string(conn), self.trigger),
        ).fetchone()
        if row is None:
            return None
        arguments = bytes(row[1]).decode().split("\x00")[:-1]
        return bool(row[0]), arguments

    def probe(self) -> str | None:
        """The newest pending position; None when the capture table is empty."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            row = conn.execute(
                sql.SQL("SELECT max(position)::text FROM {}").format(self.changes.ident)
            ).fetchone()
        return row[0] if row else None

    def identity(self) -> str | None:
        """The capture table's oid: a table dropped and created again restarts positions."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT to_regclass(%s)::oid::text", (self.changes.ident.as_string(conn),)
            ).fetchone()
        return row[0] if row else None

    def read(self, offset: Offset, batch_size: int) -> Iterator[ChangeBatch]:
        """Pending changes in position order, up to the newest one when the read began.

        Changes whose transaction the initial snapshot saw are released without being
        applied again: the snapshot holds them already.
        """
        with psycopg.connect(self.url, autocommit=True) as conn:
            head = self.probe()
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
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE position = ANY(%s)").format(self.changes.ident),
                (batch.release,),
            )

    def release(self) -> None:
        """The pipeline is gone: stop capturing (the capture table is left for inspection)."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(
                    sql.Identifier(self.trigger), self.table.ident
                )
            )
