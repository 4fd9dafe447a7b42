"""Values Arrow cannot hold fail a typed read naming their column (real PostgreSQL)."""

from __future__ import annotations

import adbc_driver_postgresql.dbapi as adbc
import pytest

from summit_etl.extract.arrow import TypeTravelError
from summit_etl.extract.postgres import stream_batches
from summit_etl_tests.support import run_sql

SPECIALS = {"time": "24:00", "timestamptz": "infinity", "date": "-infinity", "numeric(8,2)": "NaN"}


def test_a_typed_read_refuses_what_arrow_cannot_hold(source_url: str) -> None:
    for number, (pg_type, special) in enumerate(SPECIALS.items()):
        table = f"public.t{number}"
        query = f"SELECT at FROM {table}"  # noqa: S608 - fixed names
        run_sql(source_url, f"CREATE TABLE {table} (at {pg_type}); INSERT INTO {table} VALUES (NULL)")
        with adbc.connect(source_url) as conn:
            _, batches = stream_batches(conn, query, 10)
            assert [b.num_rows for b in batches] == [1], pg_type  # NULLs pass
        run_sql(source_url, f"INSERT INTO {table} VALUES (%s)", (special,))  # noqa: S608
        with adbc.connect(source_url) as conn, pytest.raises(TypeTravelError, match="'at'"):
            _, batches = stream_batches(conn, query, 10)
            list(batches)
