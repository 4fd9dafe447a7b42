"""Column statistics gathered batch by batch must equal those of the whole table."""

from __future__ import annotations

import pyarrow as pa
import pytest

from summit_etl.quality import statistics
from summit_etl.quality.statistics import ColumnStatistics


def test_statistics_over_batches_match_the_whole_table() -> None:
    first = pa.table({"country": ["DE", "FR", None], "age": [30, None, 17]})
    second = pa.table({"country": ["FR", "IT", "IT"], "age": [41, 22, None]})
    stats = ColumnStatistics({"country"})
    stats.observe(first)
    stats.observe(second.slice(0, 0))
    stats.observe(second)
    assert stats.as_dict() == {
        "totalRecords": 6,
        "nullCounts": {"country": 1, "age": 2},
        "distinctCounts": {"country": 3},  # DE, FR, IT: FR counted once, null not at all
        "minValues": {"country": "DE", "age": 17},
        "maxValues": {"country": "IT", "age": 41},
    }


def test_an_all_null_first_batch_does_not_break_distinct_counts() -> None:
    stats = ColumnStatistics({"code"})
    stats.observe(pa.table({"code": pa.array([None, None], pa.null())}))
    stats.observe(pa.table({"code": ["x", "y", "x"]}))
    assert stats.as_dict()["distinctCounts"] == {"code": 2}


def test_distinct_counts_stop_at_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(statistics, "DISTINCT_LIMIT", 4)
    stats = ColumnStatistics({"id"})
    stats.observe(pa.table({"id": [1, 2, 3]}))
    assert stats.as_dict()["distinctCounts"] == {"id": 3}
    stats.observe(pa.table({"id": [3, 4, 5]}))
    stats.observe(pa.table({"id": [6]}))
    assert stats.as_dict()["distinctCounts"] == {"id": ">4"}
