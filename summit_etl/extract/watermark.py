"""Watermark arithmetic: the lower bound of an incremental read and the new high mark.

Watermarks are kept as text in the column's full precision and time zone (ISO 8601
with offset for timestamptz, the exact decimal for numerics), so nothing is rounded
between runs.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc

from summit_etl.config import WatermarkConfig


def render(value: object) -> str:
    """A watermark value as text that PostgreSQL reads back to the same value."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def lower_bound(stored: str | None, config: WatermarkConfig) -> str | Decimal | None:
    """Where the next read starts: the stored watermark minus the lookback window.

    No stored watermark (first run, reset or full reload) starts at the configured
    initial value, or reads everything when there is none. Numeric bounds are Decimals,
    so that SQL compares them as numbers whatever the column's integer or decimal type.
    """
    start = stored if stored is not None else config.initial_value
    if start is None:
        return None
    if config.type == "numeric":
        return Decimal(str(start)) - Decimal(str(config.lookback_window if stored else 0))
    if stored is None or not config.lookback_window:
        return str(start)
    moment = dt.datetime.fromisoformat(stored)
    return (moment - dt.timedelta(seconds=config.lookback_window)).isoformat()


class HighWaterMark:
    """Tracks the greatest value of the watermark column over the batches read."""

    def __init__(self, column: str, floor: str | None) -> None:
        self.column = column
        self._best: pa.Scalar | None = None
        self._floor = floor

    def observe(self, batch: pa.Table) -> None:
        if batch.num_rows == 0:
            return
        if self.column not in batch.column_names:
            raise KeyError(f"incremental column {self.column!r} is not in the source rows")
        batch_max = pc.max(batch[self.column])
        if not batch_max.is_valid:
            return
        if self._best is None or pc.greater(batch_max, self._best).as_py():
            self._best = batch_max

    def forget(self) -> None:
        """Start over: the read whose batches were observed was rolled back."""
        self._best = None

    def value(self) -> str | None:
        """The new watermark, never below the stored one (re-read lookback rows)."""
        if self._best is None:
            return self._floor
        best = self._best.as_py()
        if self._floor is not None and _parse_like(self._floor, best) >= best:
            return self._floor
        return render(best)


def _parse_like(text: str, example: object) -> object:
    """`text` parsed into the type of `example`, so the two compare."""
    if isinstance(example, dt.datetime):
        return dt.datetime.fromisoformat(text)
    if isinstance(example, dt.date):
        return dt.date.fromisoformat(text)
    if isinstance(example, int | float | Decimal):
        return type(example)(Decimal(text)) if not isinstance(example, Decimal) else Decimal(text)
    return text
