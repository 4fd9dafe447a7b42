"""Log-based capture: PostgreSQL logical decoding through a replication slot and pgoutput.

The slot is only peeked (`pg_logical_slot_peek_binary_changes`), never consumed: it is
advanced (`pg_replication_slot_advance`) past a transaction only after the target
committed it. A crash in between leaves the slot behind the target's offset, and the
transactions at or below that offset are skipped when they are peeked again.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import psycopg
from psycopg import sql

from summit_etl.cdc.changes import (
    DELETE,
    INSERT,
    Change,
    ChangeBatch,
    Offset,
    json_text,
    visible_in,
)
from summit_etl.cdc.connections import SourceConnection
from summit_etl.cdc.pgoutput import Decoder, RowChange, Transaction, lsn_text, lsn_value
from summit_etl.identifiers import TableName

_PEEK = """
    SELECT data FROM pg_logical_slot_peek_binary_changes(
        %s, %s::pg_lsn, %s, 'proto_version', '1', 'publication_names', %s)
"""
_BUSY_RETRIES = 5
# Each peek decodes the slot's WAL from its restart point, which moves only every few
# seconds (at running-xacts records): under a steady stream of writes, a peek per batch
# would decode the same WAL again and again. One peek serves several batches instead.
_BATCHES_PER_PEEK = 10


class CaptureSetupError(RuntimeError):
    """The source cannot do log-based capture as it is configured."""


def slot_name(pipeline_id: str) -> str:
    """The pipeline's replication slot and publication (slot names allow [a-z0-9_])."""
    return re.sub(r"[^a-z0-9_]", "_", f"summit_{pipeline_id}")[:63]


def retained_bytes(url: str, pipeline_id: str, timeout: float = 2.0) -> int:
    """WAL the pipeline's slot keeps on the source (0 without a slot): what a stopped
    log_based pipeline costs its source, as it grows."""
    with psycopg.connect(url, autocommit=True, connect_timeout=max(1, round(timeout))) as conn:
        row = conn.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint "
            "FROM pg_replication_slots WHERE slot_name = %s",
            (slot_name(pipeline_id),),
        ).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


class LogicalCapture:
    def __init__(
        self,
        url: str,
        table: TableName,
        keys: list[str],
        pipeline_id: str,
        capture_deletes: bool,
        include_old: bool,
    ) -> None:
        self.url = url
        self.table = table
        self.keys = keys
        self.slot = slot_name(pipeline_id)
        self.capture_deletes = capture_deletes
        self.include_old = include_old
        self.connection = SourceConnection(url)

    def _publish(self) -> str:
        return "insert, update, delete" if self.capture_deletes else "insert, update"

    def prepare(self) -> None:
        """Publication first, then the slot: decoding looks the publication up as of each
        change, so changes from before it existed could not be decoded."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            level = conn.execute("SHOW wal_level").fetchone()
            if level is None or level[0] != "logical":
                raise CaptureSetupError(
                    f"log_based CDC needs wal_level = logical on the source (it is "
                    f"{level[0] if level else 'unknown'!r}): set it and restart the source, "
                    "or use cdc.strategy 'trigger'"
                )
            relation = self.table.ident.as_string(conn)
            identity = conn.execute(
                "SELECT relreplident FROM pg_class WHERE oid = to_regclass(%s)", (relation,)
            ).fetchone()
            if identity is None:
                raise CaptureSetupError(f"source table {self.table} does not exist")
            if self.include_old and identity[0] != "f":
                # Old values of every column are only logged with REPLICA IDENTITY FULL.
                conn.execute(
                    sql.SQL("ALTER TABLE {} REPLICA IDENTITY FULL").format(self.table.ident)
                )
            slot = conn.execute(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (self.slot,)
            ).fetchone()
            if slot is None:
                # A new slot gets a new publication too: its oid is the capture's identity,
                # so a pipeline whose slot was dropped (changes lost) snapshots again.
                conn.execute(
                    sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(self.slot))
                )
            published = conn.execute(
                "SELECT pubdelete FROM pg_publication WHERE pubname = %s", (self.slot,)
            ).fetchone()
            if published is None:
                conn.execute(
                    sql.SQL("CREATE PUBLICATION {} FOR TABLE {} WITH (publish = {})").format(
                        sql.Identifier(self.slot), self.table.ident, sql.Literal(self._publish())
                    )
                )
            elif published[0] != self.capture_deletes:
                conn.execute(
                    sql.SQL("ALTER PUBLICATION {} SET (publish = {})").format(
                        sql.Identifier(self.slot), sql.Literal(self._publish())
                    )
                )
            if slot is None:
                conn.execute(
                    "SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (self.slot,)
                )

    def identity(self) -> str | None:
        """The publication's oid, new whenever the slot had to be created again."""
        row = self.connection.query(
            lambda conn: conn.execute(
                "SELECT oid::text FROM pg_publication WHERE pubname = %s", (self.slot,)
            ).fetchone()
        )
        return row[0] if row else None

    def _peek(self, conn: psycopg.Connection, upto: str, count: int) -> list[bytes]:
        # A slot is used by one session at a time; a concurrent peek (a probe racing a
        # run) gets ObjectInUse for a moment.
        for attempt in range(_BUSY_RETRIES):
            try:
                rows = conn.execute(_PEEK, (self.slot, upto, count, self.slot)).fetchall()
                return [bytes(r[0]) for r in rows]
            except psycopg.errors.ObjectInUse:
                if attempt == _BUSY_RETRIES - 1:
                    raise
                time.sleep(0.2 * (attempt + 1))
        return []

    def _advance(self, conn: psycopg.Connection, lsn: str) -> None:
        conn.execute(
            """
            SELECT pg_replication_slot_advance(slot_name, %s::pg_lsn)
              FROM pg_replication_slots
             WHERE slot_name = %s AND confirmed_flush_lsn < %s::pg_lsn
            """,
            (lsn, self.slot, lsn),
        )

    @staticmethod
    def _head(conn: psycopg.Connection) -> str:
        row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        if row is None:
            raise RuntimeError("the source did not report its WAL position")
        return str(row[0])

    def probe(self) -> str | None:
        """The source's WAL position when the slot holds changes for the table, else None.

        When nothing published was committed up to that position, the slot is advanced to
        it, so that WAL written for other tables is not retained for this slot.
        """

        def pending(conn: psycopg.Connection) -> str | None:
            head = self._head(conn)
            if self._peek(conn, head, 1):
                return head
            self._advance(conn, head)
            return None

        return self.connection.query(pending)

    def read(self, offset: Offset, batch_size: int) -> Iterator[ChangeBatch]:
        """Whole transactions committed up to the WAL position at the start of the read;
        those the initial snapshot saw are skipped (it holds them already)."""
        applied = lsn_value(offset.lsn) if offset.lsn else 0
        taken = offset.snapshot

        def seen(transaction: Transaction) -> bool:
            return taken is not None and visible_in(taken, transaction.xid)

        with self.connection.reading() as conn:
            head = self._head(conn)
            while True:
                peeked = self._peek(conn, head, batch_size * _BATCHES_PER_PEEK)
                transactions = Decoder(self.keys).decode(peeked)
                if not transactions:
                    return
                for group in _batches(transactions, batch_size):
                    end = lsn_text(group[-1].end_lsn)
                    fresh = [t for t in group if t.end_lsn > applied and not seen(t)]
                    yield ChangeBatch(
                        [c for t in fresh for c in self._changes(t)],
                        replace(offset, value=end, lsn=end),
                        release=[group[-1].end_lsn],
                    )
                    applied = group[-1].end_lsn

    def _changes(self, transaction: Transaction) -> Iterator[Change]:
        commit = lsn_text(transaction.end_lsn)
        number = 0
        for row in transaction.changes:
            for operation, key, old, new in self._split(row):
                yield Change(
                    f"{commit}:{number}",
                    operation,
                    json_text(key) or "{}",
                    json_text(old if self.include_old else None),
                    json_text(new),
                    transaction.commit_time,
                )
                number += 1

    def _key(self, row: dict[str, Any]) -> dict[str, Any]:
        missing = [k for k in self.keys if k not in row]
        if missing:
            raise ValueError(f"a change to {self.table} lacks the key column(s) {missing}")
        return {k: row[k] for k in self.keys}

    def _split(self, row: RowChange) -> list[tuple[str, dict, dict | None, dict | None]]:
        """(operation, key, old, new); an update of the key is a delete plus an insert."""
        if row.new is None:
            if row.old is None:
                raise ValueError("a delete came without its key: " + str(self.table))
            return [(DELETE, self._key(row.old), row.old, None)]
        key = self._key(row.new)
        if row.old is not None and all(k in row.old for k in self.keys):
            old_key = self._key(row.old)
            if old_key != key:
                return [(DELETE, old_key, row.old, None), (INSERT, key, None, row.new)]
        return [(row.operation, key, row.old, row.new)]

    def confirm(self, batch: ChangeBatch) -> None:
        """The target committed the batch: the slot may forget it."""
        if batch.release:
            with self.connection.current() as conn:
                self._advance(conn, lsn_text(batch.release[-1]))

    def release(self) -> None:
        """The pipeline is gone: drop the slot (it would retain WAL forever) and publication."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE slot_name = %s",
                (self.slot,),
            )
            conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(self.slot)))


def _batches(transactions: list[Transaction], size: int) -> Iterator[list[Transaction]]:
    """Whole transactions in groups of at least `size` changes (the last may hold fewer)."""
    group: list[Transaction] = []
    changes = 0
    for transaction in transactions:
        group.append(transaction)
        changes += len(transaction.changes)
        if changes >= size:
            yield group
            group, changes = [], 0
    if group:
        yield group
