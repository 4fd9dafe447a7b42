"""join: lookups read from a real PostgreSQL (a scratch database per test)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal

import pyarrow as pa
import pytest

from summit_etl.transform import TransformError
from summit_etl_tests.support import run_sql
from summit_etl_tests.transform.transform_support import rows, transformer


@pytest.fixture
def lookup_url(source_url: str) -> str:
    run_sql(
        source_url,
        """
        CREATE SCHEMA crm;
        CREATE TABLE crm.customers (
            id int4 PRIMARY KEY, name text, tier text, credit numeric(10, 2), meta jsonb
        );
        INSERT INTO crm.customers VALUES
            (1, 'Ann', 'gold', 100.50, '{"vip": true}'),
            (2, 'Bob', NULL, NULL, NULL),
            (3, 'Cy', 'silver', 0.10, '[]');
        CREATE TABLE dupes (id int8, v text);
        INSERT INTO dupes VALUES (1, 'a'), (1, 'b'), (2, 'c');
        """,
    )
    return source_url


def test_left_join_on_a_table_keeps_every_row_in_batch_order(lookup_url: str) -> None:
    batch = pa.table({"id": [3, 9, 1, 2, None], "amount": [30, 90, 10, 20, 0]})
    steps = transformer(
        {"type": "join", "table": "crm.customers", "on": ["id"]}, source_url=lookup_url
    )
    [out] = list(steps.stream([batch]))
    assert out.schema == pa.schema(
        [
            ("id", pa.int64()),
            ("amount", pa.int64()),
            ("name", pa.string()),
            ("tier", pa.string()),
            ("credit", pa.decimal128(10, 2)),
            ("meta", pa.string()),
        ]
    )
    assert out.to_pydict() == {
        "id": [3, 9, 1, 2, None],
        "amount": [30, 90, 10, 20, 0],
        "name": ["Cy", None, "Ann", "Bob", None],
        "tier": ["silver", None, "gold", None, None],
        "credit": [Decimal("0.10"), None, Decimal("100.50"), None, None],
        "meta": ["[]", None, '{"vip": true}', None, None],
    }


def test_inner_join_on_a_query_at_its_own_url_reads_the_lookup_once(lookup_url: str) -> None:
    step = {
        "type": "join",
        "url": lookup_url,
        "query": "SELECT id AS customer_id, upper(name) AS name, tier FROM crm.customers;",
        "on": ["customer_id"],
        "columns": ["name"],
        "how": "inner",
    }
    steps = transformer(step)  # the pipeline's own source url is not used

    def batches() -> Iterator[pa.Table]:
        yield pa.table({"customer_id": pa.array([2, 9, 1], pa.int32())})
        # Had the lookup been read again, this second batch would fail.
        run_sql(lookup_url, "DROP TABLE crm.customers")
        yield pa.table({"customer_id": pa.array([3, 3], pa.int32())})

    assert rows(list(steps.stream(batches()))) == [
        {"customer_id": 2, "name": "BOB"},
        {"customer_id": 1, "name": "ANN"},
        {"customer_id": 3, "name": "CY"},
        {"customer_id": 3, "name": "CY"},
    ]
    assert (steps.rows_in, steps.rows_out) == (5, 4)


def test_a_lookup_with_duplicate_keys_is_refused(lookup_url: str) -> None:
    steps = transformer({"type": "join", "table": "dupes", "on": ["id"]}, source_url=lookup_url)
    with pytest.raises(
        TransformError,
        match=re.escape(
            "Transformation step 1 (join): the lookup 'dupes' has 1 key(s) with more than one "
            "row, e.g. {'id': 1}; a lookup needs one row per key."
        ),
    ):
        list(steps.stream([pa.table({"id": [1]})]))


def test_join_errors_name_the_problem(lookup_url: str) -> None:
    missing = transformer(
        {"type": "join", "table": "crm.nope", "on": ["id"]}, source_url=lookup_url
    )
    with pytest.raises(TransformError, match="the lookup 'crm.nope' cannot be read: .*crm.nope"):
        list(missing.stream([pa.table({"id": [1]})]))
    clash = transformer(
        {"type": "join", "table": "crm.customers", "on": ["id"], "columns": ["name"]},
        source_url=lookup_url,
    )
    with pytest.raises(TransformError, match=re.escape("lookup column(s) name already exist")):
        list(clash.stream([pa.table({"id": [1], "name": ["x"]})]))


def test_an_empty_stream_never_connects() -> None:
    steps = transformer(
        {"type": "join", "table": "t", "on": ["id"]}, source_url="postgresql://nobody@127.0.0.1:1/x"
    )
    assert list(steps.stream([pa.table({"id": pa.array([], pa.int64())})])) == []
