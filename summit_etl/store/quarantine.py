"""`etl_quarantine`: rows held back by `action: quarantine`, kept until replayed.

A row's life (column `status`): written `pending` while its run loads; `quarantined` once
the run's target has committed (`confirm`), or `discarded` when the run failed (the rows
were not loaded and the next run reads them again); `replaying` while a replay into
another database holds it, then `replayed`. A row that a later run quarantines again
(the same key, or the same record when the pipeline has no key: a re-read window, a
retry after a crash) `superseded`s the older copy, so each row waits in quarantine once.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from psycopg import Connection, sql
from psycopg.types.json import Jsonb

from summit_etl.store.db import connect


def json_value(value: Any) -> Any:
    """A value as valid JSON. JSON has no NaN or infinities: they become the strings
    "NaN", "Infinity" and "-Infinity", which replay turns back into floats by the
    record's Arrow schema, stored beside it."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)  # dates, times, decimals, uuids: their text, which casts back


def encode_record(row: dict[str, Any]) -> dict[str, Any]:
    """A row as valid JSON (no NaN tokens), every value recoverable with its schema."""
    return {str(k): json_value(v) for k, v in row.items()}


def _decode_column(values: list[Any], dtype: pa.DataType) -> pa.Array:
    if pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype):
        return pa.array([None if v is None else bytes.fromhex(v[2:]) for v in values], dtype)
    if pa.types.is_floating(dtype) or pa.types.is_decimal(dtype) or pa.types.is_temporal(dtype):
        text = pa.array([None if v is None else str(v) for v in values], pa.string())
        try:
            return text.cast(dtype)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return text  # e.g. a time of day: the load casts its text
    return pa.array(values, dtype)


def decode_records(records: list[dict[str, Any]], schema: pa.Schema | None) -> pa.Table:
    """Records stored by `encode_record` as a table with their original types."""
    if schema is None:  # rows quarantined before schemas were stored
        return pa.Table.from_pylist(records)
    return pa.Table.from_arrays(
        [_decode_column([r.get(f.name) for r in records], f.type) for f in schema],
        names=schema.names,
    )


def _row_key(record: dict[str, Any], key: list[str]) -> str:
    identity = [record.get(k) for k in key] if key else record
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class QuarantineWriter:
    """Writes a run's quarantined rows as `pending` as they are found (a sink for the
    quality gate); `confirm` makes them replayable once the target has committed."""

    summit_url: str
    run_id: str
    pipeline_id: str
    key: tuple[str, ...] = ()  # the columns that identify a row; none: the whole record

    def write(
        self, rows: list[dict[str, Any]], failed_rules: list[list[str]], schema: pa.Schema
    ) -> None:
        serialized = schema.serialize().to_pybytes()
        records = [encode_record(row) for row in rows]
        with connect(self.summit_url) as conn, conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO etl_quarantine (run_id, pipeline_id, record, failed_rules, status,"
                " row_key, record_schema) VALUES (%s, %s, %s, %s, 'pending', %s, %s)",
                [
                    (
                        self.run_id,
                        self.pipeline_id,
                        Jsonb(record),
                        Jsonb(rules),
                        _row_key(record, list(self.key)),
                        serialized,
                    )
                    for record, rules in zip(records, failed_rules, strict=True)
                ],
            )


def confirm(conn: Connection, pipeline_id: str, run_id: str) -> int:
    """The run's target committed: its pending rows become quarantined, superseding the
    copies of the same rows that earlier runs left waiting. One transaction."""
    ids = {"p": pipeline_id, "r": run_id}
    with conn.transaction():
        conn.execute(
            """
            UPDATE etl_quarantine AS old SET status = 'superseded'
              FROM etl_quarantine AS new
             WHERE new.pipeline_id = %(p)s AND new.run_id = %(r)s AND new.status = 'pending'
               AND old.pipeline_id = %(p)s AND old.status = 'quarantined'
               AND old.row_key = new.row_key
            """,
            ids,
        )
        cursor = conn.execute(
            "UPDATE etl_quarantine SET status = 'quarantined'"
            " WHERE pipeline_id = %(p)s AND run_id = %(r)s AND status = 'pending'",
            ids,
        )
        return cursor.rowcount


def discard(conn: Connection, pipeline_id: str, run_id: str) -> None:
    """The run failed before its target committed: its pending rows were not held back
    from anything, and the next run reads them again."""
    conn.execute(
        "UPDATE etl_quarantine SET status = 'discarded'"
        " WHERE pipeline_id = %s AND run_id = %s AND status = 'pending'",
        (pipeline_id, run_id),
    )


@dataclass(frozen=True)
class Held:
    id: int
    record: dict[str, Any]
    schema: pa.Schema | None


def _schema(stored: bytes | None) -> pa.Schema | None:
    return None if stored is None else pa.ipc.read_schema(pa.py_buffer(stored))


def _held(rows: list[tuple[Any, ...]]) -> list[Held]:
    return [Held(int(r[0]), dict(r[1]), _schema(r[2])) for r in rows]


_WAITING = sql.SQL("pipeline_id = %s AND run_id = %s AND status = 'quarantined'")


def waiting(conn: Connection, pipeline_id: str, run_id: str) -> list[Held]:
    """A run's quarantined rows not replayed yet."""
    return _held(
        conn.execute(
            sql.SQL(
                "SELECT id, record, record_schema FROM etl_quarantine WHERE {} ORDER BY id"
            ).format(_WAITING),
            (pipeline_id, run_id),
        ).fetchall()
    )


def claim(conn: Connection, pipeline_id: str, run_id: str, replay_id: str) -> list[Held]:
    """Take a run's waiting rows for one replay, atomically: a second replay finds none."""
    return _held(
        conn.execute(
            sql.SQL(
                "UPDATE etl_quarantine SET status = 'replaying', replay_run_id = %s WHERE {}"
                " RETURNING id, record, record_schema"
            ).format(_WAITING),
            (replay_id, pipeline_id, run_id),
        ).fetchall()
    )


def release(conn: Connection, ids: list[int], replay_id: str) -> None:
    """Claimed rows this replay did not load wait in quarantine again."""
    conn.execute(
        "UPDATE etl_quarantine SET status = 'quarantined', replay_run_id = NULL"
        " WHERE id = ANY(%s) AND status = 'replaying' AND replay_run_id = %s",
        (ids, replay_id),
    )


def mark_replayed_sql(ids: list[int], replay_id: str, *, claimed: bool) -> sql.Composed:
    """The statement that marks rows replayed: claimed ones (another database's replay,
    after its commit), or waiting ones inside the load's own transaction, where a count
    short of `ids` means a concurrent replay took some first."""
    return sql.SQL(
        "UPDATE etl_quarantine SET status = 'replayed', replayed_at = now(), replay_run_id = {r}"
        " WHERE id = ANY({ids}::bigint[]) AND {status} RETURNING id"
    ).format(
        r=sql.Literal(replay_id),
        ids=sql.Literal(ids),
        status=sql.SQL("status = 'replaying' AND replay_run_id = {}").format(sql.Literal(replay_id))
        if claimed
        else sql.SQL("status = 'quarantined'"),
    )
