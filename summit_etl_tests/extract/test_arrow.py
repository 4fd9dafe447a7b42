"""Typed reads on real PostgreSQL: exact values in Arrow types, and the values Arrow cannot
hold fail naming their column."""

from __future__ import annotations

import uuid
from decimal import Decimal

import adbc_driver_postgresql.dbapi as adbc
import pyarrow as pa
import pytest

from summit_etl.engine import RunRequest, run_pipeline
from summit_etl.extract.arrow import TypeTravelError, decimal_type, numeric_precision_scale
from summit_etl.extract.postgres import read_plan, select_sql, stream_batches
from summit_etl.registry import parse_pipeline
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


def test_a_typed_numeric_travels_as_the_servers_text_into_an_exact_decimal(source_url: str) -> None:
    run_sql(
        source_url,
        "CREATE TABLE public.prices (id int PRIMARY KEY, amount numeric(12,2), wide numeric(40,5));"
        " INSERT INTO public.prices VALUES (1, '-9999999999.99', '1.5'), (2, '0.10', NULL),"
        " (3, NULL, '123456789012345678901234567890.12345')",
    )
    config = parse_pipeline(
        {
            "id": "prices",
            "name": "prices",
            "source": {"url": source_url, "table": "public.prices"},
            "loading": {"strategy": "bulk", "targetTable": "dw.prices", "targetUrl": source_url},
        },
        "test",
    )
    plan = read_plan(config)
    query = select_sql(config.source, None, None, plan)
    # The driver's own numeric decoding costs the run ~0.7 µs a value; the server's text is cheaper.
    assert '"amount"::text AS "amount"' in query
    with adbc.connect(source_url) as conn:
        schema, batches = stream_batches(conn, query + " ORDER BY id", 10, plan)
        rows = pa.Table.from_batches([b for t in batches for b in t.to_batches()], schema=schema)
    assert schema.field("amount").type == pa.decimal128(12, 2)
    assert schema.field("wide").type == pa.string()  # beyond decimal128: its exact text
    assert rows.column("amount").to_pylist() == [Decimal("-9999999999.99"), Decimal("0.10"), None]
    assert rows.column("wide").to_pylist() == ["1.50000", None, "123456789012345678901234567890.12345"]

    run_sql(source_url, "INSERT INTO public.prices VALUES (4, 'NaN', NULL)")
    with adbc.connect(source_url) as conn, pytest.raises(TypeTravelError, match="'amount'"):
        _, batches = stream_batches(conn, query, 10, plan)  # planned before the NaN came
        list(batches)


def test_numeric_shapes_decode_every_typmod_postgresql_makes(source_url: str) -> None:
    run_sql(
        source_url,
        "CREATE TABLE public.shapes (a numeric(12,2), b numeric(5,-2), c numeric(3,5), d numeric(40,0))",
    )
    typmods = run_sql(
        source_url,
        "SELECT atttypmod FROM pg_attribute WHERE attrelid = 'public.shapes'::regclass AND attnum > 0 "
        "ORDER BY attnum",
    )
    shapes = [numeric_precision_scale(typmod) for (typmod,) in typmods]
    assert shapes == [(12, 2), (5, -2), (3, 5), (40, 0)]
    # Typed only where decimal128 holds every value exactly; the rest travel as their text.
    assert [decimal_type(typmod) for (typmod,) in typmods] == [pa.decimal128(12, 2), None, None, None]


def test_arrays_of_uuid_json_and_numeric_arrive_as_lists_of_their_text(
    source_url: str, target_url: str, summit_url: str
) -> None:
    """The driver hands such arrays over as lists of extension types, which pyarrow can
    neither make empty nor transforms use: they arrive as lists of the values' text, and
    a flatten step explodes them into exact rows."""
    run_sql(
        source_url,
        "CREATE TABLE public.arrays (id int PRIMARY KEY, ids uuid[], docs jsonb[], amounts numeric[]);"
        " INSERT INTO public.arrays VALUES"
        " (1, '{00000000-0000-0000-0000-00000000000a,NULL}', ARRAY['{\"a\": 1}'::jsonb], '{1.50,NaN,-Infinity}'),"
        " (2, NULL, '{}', NULL)",
    )
    with adbc.connect(source_url) as conn:
        schema, batches = stream_batches(conn, "SELECT * FROM public.arrays ORDER BY id", 10)
        rows = pa.concat_tables(list(batches)).to_pylist()
    assert [str(schema.field(n).type) for n in ("ids", "docs", "amounts")] == [
        "list<item: string>"
    ] * 3
    assert rows == [
        {"id": 1, "ids": ["00000000-0000-0000-0000-00000000000a", None],
         "docs": ['{"a": 1}'], "amounts": ["1.50", "NaN", "-Infinity"]},
        {"id": 2, "ids": None, "docs": [], "amounts": None},
    ]
    config = parse_pipeline(
        {
            "id": "arrays",
            "name": "arrays",
            "source": {"url": source_url, "table": "public.arrays"},
            "transformation": {"transformations": [{"type": "flatten", "field": "ids"}]},
            "loading": {
                "strategy": "bulk", "targetTable": "dw.arrays", "targetUrl": target_url,
                "createTable": True,
            },
        },
        "test",
    )
    outcome = run_pipeline(config, RunRequest(uuid.uuid4().hex), summit_url)
    assert (outcome.status, outcome.counts.records_loaded) == ("success", 3)
    assert run_sql(target_url, "SELECT id, ids::text FROM dw.arrays ORDER BY id, ids") == [
        (1, "00000000-0000-0000-0000-00000000000a"), (1, None), (2, None),
    ]


@pytest.mark.parametrize(
    ("pg_type", "special"),
    [("timestamptz[]", "infinity"), ("date[]", "-infinity"), ("time[]", "24:00")],
)
def test_an_array_read_typed_refuses_an_element_arrow_cannot_hold(
    source_url: str, pg_type: str, special: str
) -> None:
    """A flatten step's array travels typed: an element without an Arrow value fails
    naming the column, instead of arriving as another date or time."""
    query = "SELECT at FROM public.lists"
    run_sql(source_url, f"CREATE TABLE public.lists (at {pg_type}); INSERT INTO public.lists VALUES (ARRAY[NULL]::{pg_type})")
    with adbc.connect(source_url) as conn:
        _, batches = stream_batches(conn, query, 10)
        assert [b.num_rows for b in batches] == [1]  # NULL elements pass
    run_sql(source_url, f"INSERT INTO public.lists VALUES (ARRAY[%s]::{pg_type})", (special,))  # noqa: S608
    with adbc.connect(source_url) as conn, pytest.raises(TypeTravelError, match="'at'"):
        _, batches = stream_batches(conn, query, 10)
        list(batches)
