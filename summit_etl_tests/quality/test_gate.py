"""The validation stage on its own: real Great Expectations on Arrow batches, with the real
quarantine table; results must not depend on where the stream's batches end."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pyarrow as pa
import pytest

from summit_etl.config.quality import QualityConfig
from summit_etl.quality import gate as gate_module
from summit_etl.quality.gate import QualityGate, QualityGateFailure
from summit_etl.store.quarantine import QuarantineWriter
from summit_etl_tests.support import run_sql

# id 4 repeats 1's code inside one batch of two; id 6 repeats 2's code across batches.
ROWS = pa.table({
    "id": pa.array([1, 2, 3, 4, 5, 6], pa.int64()),
    "code": ["a", "b", None, "a", None, "b"],
    "qty": pa.array([1, 2, 3, 4, 5, 6], pa.int16()),
})


def quality(action: str = "warn", **config: Any) -> QualityConfig:
    return QualityConfig.model_validate({
        "rules": [
            {"id": "code-unique", "dimension": "uniqueness", "action": action,
             "rule": {"type": "unique", "config": {"field": "code"}}},
            {"id": "qty-small", "dimension": "accuracy",
             "rule": {"type": "range", "config": {"field": "qty", "min": 0, "max": 5}}},
        ],
        **config,
    })


def batches_of(size: int) -> list[pa.Table]:
    return [ROWS.slice(start, size) for start in range(0, ROWS.num_rows, size)]


@pytest.mark.parametrize("frame_rows", [1, 2, 1000])
@pytest.mark.parametrize("batch_rows", [1, 2, 6])
def test_unique_counts_later_repeats_wherever_batches_end(
    summit_url: str, monkeypatch: pytest.MonkeyPatch, batch_rows: int, frame_rows: int
) -> None:
    monkeypatch.setattr(gate_module, "FRAME_ROWS", frame_rows)
    gate = QualityGate(quality("quarantine"), QuarantineWriter(summit_url, "run-1", "p"))
    loaded = pa.concat_tables(gate.stream(batches_of(batch_rows)))
    # The first 'a' and the first 'b' pass; the later ones are held back; nulls are not repeats.
    assert loaded["id"].to_pylist() == [1, 2, 3, 5]
    assert gate.quarantined == 2 and gate.outcomes["code-unique"].failed == 2
    assert run_sql(summit_url, "SELECT record->>'id', failed_rules FROM etl_quarantine ORDER BY id") == [
        ("4", ["code-unique"]), ("6", ["code-unique"])
    ]
    # Narrow integers are compared like any other: 6 is out of range, once.
    assert gate.outcomes["qty-small"].failed == 1 and gate.outcomes["qty-small"].examples == [6]


def test_great_expectations_is_imported_at_the_first_batch_not_with_the_gate() -> None:
    # The gate is made before the run is recorded `running`; the import takes seconds. In a
    # fresh interpreter, since this one has imported Great Expectations already.
    probe = (
        "import sys\n"
        "from summit_etl.quality.gate import QualityGate\n"
        "from summit_etl_tests.quality.test_gate import quality\n"
        "QualityGate(quality(), None)\n"
        "sys.exit('great_expectations' in sys.modules)\n"
    )
    assert subprocess.run([sys.executable, "-c", probe], check=False).returncode == 0


def test_a_rule_on_a_missing_field_names_it(summit_url: str) -> None:
    gate = QualityGate(quality(), QuarantineWriter(summit_url, "run-1", "p"))
    with pytest.raises(QualityGateFailure, match=r"fields the data does not have: qty \(columns: id, code\)"):
        list(gate.stream([ROWS.select(["id", "code"])]))


def test_batches_are_validated_in_frames_of_frame_rows(
    summit_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gate_module, "FRAME_ROWS", 4)
    gate = QualityGate(quality(), QuarantineWriter(summit_url, "run-1", "p"))
    assert [b.num_rows for b in gate.stream(batches_of(1))] == [4, 2]


def test_great_expectations_does_not_fingerprint_batches() -> None:
    """Fingerprinting cost more than the rules (about a second per million rows); if an
    upgrade of Great Expectations renames the switch, this says so."""
    import pandas as pd

    from summit_etl.quality.context import ephemeral_context

    context = ephemeral_context()
    batch = (
        context.data_sources.add_pandas("p").add_dataframe_asset("a")
        .add_batch_definition_whole_dataframe("all")
        .get_batch(batch_parameters={"dataframe": pd.DataFrame({"x": [1, 2]})})
    )
    assert "pandas_data_fingerprint" not in batch.batch_markers
    assert context.variables.analytics_enabled is False


def test_date_format_wants_a_real_month_and_day(summit_url: str) -> None:
    config = QualityConfig.model_validate({"rules": [
        {"id": "iso-date", "dimension": "validity",
         "rule": {"type": "format", "config": {"field": "day", "format": "date"}}},
    ]})
    gate = QualityGate(config, QuarantineWriter(summit_url, "run-1", "p"))
    list(gate.stream([pa.table({"day": ["2023-01-31", "2023-13-01", "2023-02-32", None, "2023-1-5"]})]))
    assert gate.outcomes["iso-date"].examples == ["2023-13-01", "2023-02-32", "2023-1-5"]
