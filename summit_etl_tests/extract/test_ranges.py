"""split_read: every row of a real table in exactly one range, whatever the key's type,
its skew, its statistics, or the lack of a key."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql

from summit_etl.extract import ranges
from summit_etl.extract.ranges import ReadRange, SplitError, split_read
from summit_etl.identifiers import TableName
from summit_etl_tests.support import run_sql

TABLE = TableName("src", "items")


@pytest.fixture
def source_url(module_database: str) -> Iterator[str]:
    """The module's database, its schema `src` dropped after each test."""
    yield module_database
    run_sql(module_database, "DROP SCHEMA IF EXISTS src CASCADE")


@dataclass(frozen=True)
class Case:
    name: str
    columns: str  # the CREATE TABLE body
    fill: str  # an INSERT ... SELECT over generate_series(1, 20000) AS g
    analyze: bool  # statistics present: the histogram path; absent: min/max or sample


CASES = [
    Case(
        "int",
        "id int PRIMARY KEY, v text",
        "SELECT g, 'v' || g FROM generate_series(1, 20000) g",
        False,
    ),
    Case(
        "int_analyzed",
        "id int PRIMARY KEY, v text",
        "SELECT g, 'v' || g FROM generate_series(1, 20000) g",
        True,
    ),
    Case(
        "bigint",
        "id bigint PRIMARY KEY",
        "SELECT g * 10000000000 FROM generate_series(1, 20000) g",
        False,
    ),
    Case(
        "text",
        "code text PRIMARY KEY",
        "SELECT md5(g::text) FROM generate_series(1, 20000) g",
        False,
    ),
    Case(
        "text_analyzed",
        "code text PRIMARY KEY",
        "SELECT md5(g::text) FROM generate_series(1, 20000) g",
        True,
    ),
    Case(
        "uuid",
        "id uuid PRIMARY KEY",
        "SELECT md5(g::text)::uuid FROM generate_series(1, 20000) g",
        False,
    ),
    Case(
        "timestamp",
        "at timestamp PRIMARY KEY",
        "SELECT '2024-01-01'::timestamp + g * interval '1 minute 7.5 seconds'"
        " FROM generate_series(1, 20000) g",
        True,
    ),
    # The leading column repeats: ranges on it alone still place each row once.
    Case(
        "composite",
        "a int, b text, PRIMARY KEY (a, b)",
        "SELECT g % 37, 'b' || g FROM generate_series(1, 20000) g",
        False,
    ),
    Case(
        "composite_analyzed",
        "a int, b text, PRIMARY KEY (a, b)",
        "SELECT g % 37, 'b' || g FROM generate_series(1, 20000) g",
        True,
    ),
    Case("keyless", "v text, n int", "SELECT 'v' || g, g FROM generate_series(1, 20000) g", False),
]


def _make(url: str, columns: str, fill: str, analyze: bool) -> None:
    run_sql(url, f"CREATE SCHEMA src; CREATE TABLE src.items ({columns})")
    run_sql(url, f"INSERT INTO src.items {fill}")
    if analyze:
        run_sql(url, "ANALYZE src.items")


def _misplaced(url: str, split: list[ReadRange]) -> tuple[int, int, list[int]]:
    """(rows, rows not in exactly one range, rows per range)."""
    hits = sql.SQL(" + ").join(sql.SQL("({})::int").format(r.predicate()) for r in split)
    counts = sql.SQL(", ").join(
        sql.SQL("count(*) FILTER (WHERE {})").format(r.predicate()) for r in split
    )
    query = sql.SQL("SELECT count(*), count(*) FILTER (WHERE {} <> 1), {} FROM src.items")
    with psycopg.connect(url) as conn:
        row = conn.execute(query.format(hits, counts)).fetchone()
    assert row is not None
    return row[0], row[1], list(row[2:])


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_row_in_exactly_one_range(source_url: str, case: Case) -> None:
    _make(source_url, case.columns, case.fill, case.analyze)
    split = split_read(source_url, TABLE, 4)
    rows, misplaced, per_range = _misplaced(source_url, split)
    assert (rows, misplaced) == (20000, 0)
    assert len(split) == 4 and all(n > 0 for n in per_range), per_range
    assert split[0].lower is None and split[-1].upper is None
    assert all(a.upper == b.lower for a, b in zip(split, split[1:], strict=False))


def test_histogram_bounds_follow_skewed_data(source_url: str) -> None:
    # 19,000 ids packed in 1..19000, 1,000 spread up to 10^9: evenly spaced integers would
    # put nearly every row in the first range; the histogram gives each range its share.
    _make(
        source_url,
        "id bigint PRIMARY KEY",
        "SELECT CASE WHEN g <= 19000 THEN g ELSE g::bigint * 1000000 END"
        " FROM generate_series(1, 20000) g",
        True,
    )
    rows, misplaced, per_range = _misplaced(source_url, split_read(source_url, TABLE, 4))
    assert (rows, misplaced) == (20000, 0)
    assert max(per_range) < 2 * 20000 / 4, per_range


def test_a_block_sample_splits_a_large_table_without_statistics(
    source_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The table is a few hundred blocks; sampling 10 of them still yields boundaries.
    monkeypatch.setattr(ranges, "_SAMPLE_BLOCKS", 10)
    _make(
        source_url,
        "code text PRIMARY KEY",
        "SELECT md5(g::text) FROM generate_series(1, 50000) g",
        False,
    )
    split = split_read(source_url, TABLE, 4)
    rows, misplaced, per_range = _misplaced(source_url, split)
    assert (rows, misplaced) == (50000, 0)
    assert len(split) > 1 and all(n > 0 for n in per_range), per_range


@pytest.mark.parametrize("columns", ["id int PRIMARY KEY", "v text"], ids=["keyed", "keyless"])
def test_an_empty_table_is_one_unbounded_range(source_url: str, columns: str) -> None:
    _make(source_url, columns, "SELECT NULL WHERE false", False)
    column = "id" if "PRIMARY" in columns else None
    assert split_read(source_url, TABLE, 4) == [ReadRange(column, None, None)]


def test_one_part_is_the_whole_table(source_url: str) -> None:
    _make(source_url, "id int PRIMARY KEY", "SELECT g FROM generate_series(1, 100) g", True)
    assert split_read(source_url, TABLE, 1) == [ReadRange("id", None, None)]


def test_a_view_is_read_whole_by_one_reader_and_the_log_says_why(
    source_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    _make(source_url, "id int PRIMARY KEY", "SELECT g FROM generate_series(1, 1000) g", True)
    run_sql(source_url, "CREATE VIEW src.items_view AS SELECT * FROM src.items")
    with caplog.at_level(logging.WARNING, logger="summit_etl.extract.ranges"):
        split = split_read(source_url, TableName("src", "items_view"), 4)
    assert split == [ReadRange(None, None, None)]
    assert any("view" in r.getMessage() and r.parallelism == 4 for r in caplog.records)


def test_fewer_distinct_keys_than_parts_collapse_duplicate_boundaries(source_url: str) -> None:
    _make(
        source_url,
        "a int, b int, PRIMARY KEY (a, b)",
        "SELECT g % 2, g FROM generate_series(1, 1000) g",
        False,
    )
    split = split_read(source_url, TABLE, 8)
    rows, misplaced, _ = _misplaced(source_url, split)
    assert (rows, misplaced) == (1000, 0)
    assert split == [ReadRange("a", None, 1), ReadRange("a", 1, None)]


def test_a_missing_table_or_no_parts_is_refused(source_url: str) -> None:
    with pytest.raises(SplitError, match="src.items does not exist"):
        split_read(source_url, TABLE, 2)
    _make(source_url, "id int PRIMARY KEY", "SELECT 1", False)
    with pytest.raises(ValueError, match="at least 1 part"):
        split_read(source_url, TABLE, 0)


def test_predicates_quote_the_column_and_cast_tids() -> None:
    assert ReadRange("Id", 1, 250001).predicate().as_string(None) == '"Id" >= 1 AND "Id" < 250001'
    assert ReadRange(None, None, "(120,0)").predicate().as_string(None) == "ctid < '(120,0)'::tid"
    assert ReadRange("id", None, None).predicate().as_string(None) == "TRUE"
