"""Changes found by polling the source table: `timestamp` and `version` strategies, and the
initial snapshot that trigger and log-based capture start from.

Rows are read with `trackingColumn >= watermark` (minus a lookback for timestamps), so
rows sharing the boundary value and late commits inside the lookback are read again;
each row version has a position made of its tracking value, key and a digest of the row,
and the target drops positions it already logged. Polling sees inserts and updates only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import psycopg
from psycopg import sql

from summit_etl.cdc.changes import UPSERT, Change, ChangeBatch, Offset
from summit_etl.cdc.connections import SourceConnection
from summit_etl.cdc.documents import document, text_columns
from summit_etl.identifiers import TableName

# Re-read window for commits that land after rows with later timestamps were read: a
# writer's transaction that stays open longer than this may be missed by `timestamp`.
TIMESTAMP_LOOKBACK = timedelta(seconds=30)
_CURSOR = "summit_cdc_read"


def _key_json(keys: list[str]) -> sql.Composable:
    return sql.SQL("jsonb_build_object({})::text").format(
        sql.SQL(", ").join(
            sql.SQL("{}, t.{}").format(sql.Literal(k), sql.Identifier(k)) for k in keys
        )
    )


def _fetch(
    conn: psycopg.Connection, query: sql.Composed, params: tuple, size: int
) -> Iterator[tuple[list[tuple], bool]]:
    """Rows of `query` in chunks of `size`, each with whether it is the last one."""
    with conn.cursor(name=_CURSOR) as cursor:
        cursor.execute(query, params)
        chunk = cursor.fetchmany(size)
        while chunk:
            following = cursor.fetchmany(size)
            yield chunk, not following
            chunk = following


class PollingReader:
    """Reads row versions by a tracking column (`timestamp` or `version`)."""

    def __init__(
        self, url: str, table: TableName, column: str, keys: list[str], timestamp: bool
    ) -> None:
        self.url = url
        self.table = table
        self.column = sql.Identifier(column)
        self.keys = keys
        self.timestamp = timestamp
        self.connection = SourceConnection(url)

    def _bound(self) -> sql.Composable:
        if self.timestamp:
            return sql.SQL("%s::timestamptz - make_interval(secs => %s)")
        return sql.SQL("%s")

    def _params(self, value: str) -> tuple:
        return (value, TIMESTAMP_LOOKBACK.total_seconds()) if self.timestamp else (value,)

    def probe(self, offset: Offset | None) -> str | None:
        """The newest tracking value beyond the offset; None when there is nothing new.

        A late commit with a value below the offset is not seen here: the next run, started
        by any newer row, reads it from the lookback window.
        """
        query = sql.SQL("SELECT max(t.{col})::text FROM {table} AS t").format(
            col=self.column, table=self.table.ident
        )
        params: tuple = ()
        if offset is not None and offset.value is not None:
            query = sql.SQL("{} WHERE t.{} > %s").format(query, self.column)
            params = (offset.value,)
        row = self.connection.query(lambda conn: conn.execute(query, params).fetchone())
        return row[0] if row else None

    def read(self, offset: Offset, batch_size: int) -> Iterator[ChangeBatch]:
        where = sql.SQL("t.{} IS NOT NULL").format(self.column)
        params: tuple = ()
        if offset.value is not None:
            where = sql.SQL("t.{} >= {}").format(self.column, self._bound())
            params = self._params(offset.value)
        safe = offset.value
        with psycopg.connect(self.url) as conn:
            query = sql.SQL(
                """
                SELECT mark, key, doc, left(md5(doc), 16)
                  FROM (SELECT t.{col}::text AS mark, {key} AS key, {doc}::text AS doc,
                               t.{col} AS sort
                          FROM {table} AS t WHERE {where}) AS s
                 ORDER BY sort
                """
            ).format(
                col=self.column,
                key=_key_json(self.keys),
                doc=document(text_columns(conn, self.table)),
                table=self.table.ident,
                where=where,
            )
            for rows, last in _fetch(conn, query, params, batch_size):
                changes = [
                    Change(f"{mark}|{key}|{digest}", UPSERT, key, None, doc)
                    for mark, key, doc, digest in rows
                ]
                safe = _safe_mark([r[0] for r in rows], last, safe)
                yield ChangeBatch(changes, replace(offset, value=safe, snapshot_done=True))


def _safe_mark(marks: list[str], last: bool, previous: str | None) -> str | None:
    """The offset after a batch of rows in tracking order.

    More rows may share the batch's final value (they come in the next batch), so until
    the read has ended the offset stays below that value: the sensor's probe (`>`) then
    still sees those rows if the run dies before reaching them.
    """
    if last:
        return marks[-1]
    return next((m for m in reversed(marks) if m != marks[-1]), previous)


def snapshot(
    url: str, table: TableName, keys: list[str], batch_size: int, offset: Offset
) -> Iterator[ChangeBatch]:
    """Every current row, for capture that starts on a table that already has rows.

    Capture is installed before the snapshot is read, so a change committed in between
    is both in the snapshot and captured. The batches' offsets carry the snapshot's
    `pg_snapshot` (the first attempt's, should a run die mid-snapshot and read again):
    captured changes visible in it are already in the snapshot and are not applied again.
    """
    with psycopg.connect(url) as conn:
        # One snapshot for the rows and the pg_snapshot that describes them.
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        query = sql.SQL("SELECT {key}, {doc}::text FROM {table} AS t").format(
            key=_key_json(keys), doc=document(text_columns(conn, table)), table=table.ident
        )
        row = conn.execute("SELECT pg_current_snapshot()::text").fetchone()
        taken = offset.snapshot or (str(row[0]) if row else None)
        done = False
        for rows, last in _fetch(conn, query, (), batch_size):
            done = last
            changes = [Change(f"snapshot|{key}", UPSERT, key, None, doc) for key, doc in rows]
            yield ChangeBatch(changes, replace(offset, snapshot_done=last, snapshot=taken))
        if not done:  # an empty table: the snapshot is done without a batch
            yield ChangeBatch([], replace(offset, snapshot_done=True, snapshot=taken))
