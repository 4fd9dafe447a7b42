"""`etl_quarantine` on a real summit database: pending until the target commits, one
waiting copy per row across runs, and records that come back with their exact types."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from decimal import Decimal

import pyarrow as pa

from summit_etl.store import quarantine
from summit_etl.store.db import connect
from summit_etl.store.quarantine import QuarantineWriter, decode_records, encode_record
from summit_etl_tests.support import run_sql

SCHEMA = pa.schema([
    ("id", pa.int64()), ("score", pa.float64()), ("price", pa.decimal128(8, 2)),
    ("day", pa.date32()), ("at", pa.timestamp("us", tz="UTC")), ("blob", pa.binary()),
])
ROWS = [
    {"id": 1, "score": math.nan, "price": Decimal("1.10"), "day": date(2024, 2, 29),
     "at": datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC), "blob": b"\x00\xff"},
    {"id": 2, "score": math.inf, "price": None, "day": None, "at": None, "blob": None},
    {"id": 3, "score": -math.inf, "price": Decimal("-0.01"), "day": date(1999, 12, 31),
     "at": datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC), "blob": b""},
    {"id": 4, "score": 0.1, "price": None, "day": None, "at": None, "blob": None},
]


def test_records_round_trip_exactly_through_valid_json() -> None:
    encoded = [encode_record(row) for row in ROWS]
    assert [r["score"] for r in encoded] == ["NaN", "Infinity", "-Infinity", 0.1]
    table = decode_records(encoded, SCHEMA)
    assert table.schema == SCHEMA
    decoded = table.to_pylist()
    assert math.isnan(decoded[0]["score"]) and decoded[1:] == ROWS[1:]
    assert {k: v for k, v in decoded[0].items() if k != "score"} == {k: v for k, v in ROWS[0].items() if k != "score"}


def statuses(url: str) -> list[tuple[str, int, str]]:
    return run_sql(url, "SELECT run_id, (record->>'id')::int, status FROM etl_quarantine ORDER BY id")


def test_rows_wait_only_once_their_run_committed_and_once_across_runs(summit_url: str) -> None:
    def hold(run_id: str, rows: list[dict]) -> None:
        QuarantineWriter(summit_url, run_id, "p", ("id",)).write(rows, [["r"]] * len(rows), SCHEMA)

    hold("r1", ROWS[:1])
    with connect(summit_url) as conn:
        assert quarantine.waiting(conn, "p", "r1") == []  # pending: its target has not committed
        quarantine.confirm(conn, "p", "r1")
        [held] = quarantine.waiting(conn, "p", "r1")
    assert held.schema == SCHEMA and held.record["score"] == "NaN"
    assert run_sql(summit_url, "SELECT jsonb_typeof(record->'score') FROM etl_quarantine") == [("string",)]

    hold("r2", ROWS[:1])  # killed before its target committed: never confirmed
    hold("r3", ROWS[:1])  # failed: discarded
    with connect(summit_url) as conn:
        quarantine.discard(conn, "p", "r3")
    hold("r4", ROWS[:2])  # the retry reads row 1 again, and row 2
    with connect(summit_url) as conn:
        assert quarantine.confirm(conn, "p", "r4") == 2
    assert statuses(summit_url) == [
        ("r1", 1, "superseded"), ("r2", 1, "pending"), ("r3", 1, "discarded"),
        ("r4", 1, "quarantined"), ("r4", 2, "quarantined"),
    ]

    with connect(summit_url) as conn:
        claimed = quarantine.claim(conn, "p", "r4", "replay-a")
        assert quarantine.claim(conn, "p", "r4", "replay-b") == []  # taken already
        quarantine.release(conn, [h.id for h in claimed], "replay-a")
        assert len(quarantine.waiting(conn, "p", "r4")) == 2
