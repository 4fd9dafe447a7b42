"""Helpers for the transform tests, and the functions the custom-step tests import."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa

from summit_etl.config import ConfigPolicy, TransformationConfig
from summit_etl.transform import Transformer, build_transformer


def transformer(*steps: dict[str, Any], source_url: str = "postgresql://unused") -> Transformer:
    """A Transformer for steps written as in a pipeline file (camelCase keys, trusted)."""
    config = TransformationConfig.model_validate(
        {"transformations": list(steps)}, context=ConfigPolicy(trusted=True).context()
    )
    return build_transformer(config.transformations, source_url=source_url)


def run(steps: list[dict[str, Any]], *batches: pa.Table) -> list[pa.Table]:
    return list(transformer(*steps).stream(batches))


def rows(tables: list[pa.Table]) -> list[dict[str, Any]]:
    return [row for table in tables for row in table.to_pylist()]


def add_total(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(total=frame["price"] * frame["qty"])


def not_a_frame(frame: pd.DataFrame) -> list[int]:
    return [len(frame)]


def fail_loudly(frame: pd.DataFrame) -> pd.DataFrame:
    raise RuntimeError("boom")


NOT_CALLABLE = 42
