"""Row-wise steps: filter, and deduplicate (a stream barrier)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from summit_etl.config import DeduplicateTransform, FilterTransform
from summit_etl.transform.base import Step, column
from summit_etl.transform.errors import TransformError
from summit_etl.transform.expressions import parse_expression

# Merging state with fewer new rows than this would re-sort the state for little gain.
_MIN_MERGE_ROWS = 50_000
_SEQUENCE = "#sequence"  # helper columns: '#' cannot occur in a configured column name
_POSITION = "#position"
_PRESENT = "#present"


class FilterStep(Step):
    """Keep the rows for which the condition is true; false and NULL drop the row (SQL)."""

    def __init__(self, spec: FilterTransform) -> None:
        self._expression = parse_expression(spec.expression)
        self.rows_removed = 0

    def process(self, batch: pa.Table) -> pa.Table:
        text = self._expression.text
        try:
            mask = self._expression.evaluate(batch)
        except (TransformError, pa.ArrowException) as exc:
            raise TransformError(f"the condition {text!r} cannot be evaluated: {exc}") from exc
        if not pa.types.is_boolean(mask.type):
            raise TransformError(f"the condition {text!r} gives {mask.type} values, not true/false")
        kept = batch.filter(mask, null_selection_behavior="drop")
        self.rows_removed += batch.num_rows - kept.num_rows
        return kept


def latest_per_key(table: pa.Table, keys: list[str], order_by: str | None) -> pa.Table:
    """One row per key: the greatest `order_by` (NULL counts as least), ties and no
    `order_by` going to the row that comes last in `table`. Rows keep their table order."""
    table = table.append_column(_SEQUENCE, pa.array(np.arange(table.num_rows)))
    if order_by is not None:
        # Sorting on "has a value" first puts NULLs lowest without relying on
        # null_placement, whose API differs between pyarrow versions.
        table = table.append_column(_PRESENT, pc.is_valid(table[order_by]))
        order = pc.sort_indices(
            table,
            sort_keys=[(_PRESENT, "ascending"), (order_by, "ascending"), (_SEQUENCE, "ascending")],
        )
        table = table.take(order)
    table = table.append_column(_POSITION, pa.array(np.arange(table.num_rows)))
    winners = table.group_by(keys, use_threads=False).aggregate([(_POSITION, "max")])
    latest = table.take(winners[f"{_POSITION}_max"])
    latest = latest.take(pc.sort_indices(latest[_SEQUENCE]))
    helpers = [_SEQUENCE, _POSITION] + ([_PRESENT] if order_by is not None else [])
    return latest.drop_columns(helpers)


class DeduplicateStep(Step):
    """The latest row per key over the whole stream.

    State is one row per key seen so far. New batches wait until they are at least as
    many rows as the state, then are merged in one vectorised pass (concat, sort, take
    the winner per key): memory stays proportional to the number of keys, and the
    state is re-sorted a logarithmic rather than linear number of times.
    """

    def __init__(self, spec: DeduplicateTransform) -> None:
        self._keys = list(spec.keys)
        self._order_by = spec.order_by
        self._state: pa.Table | None = None
        self._pending: list[pa.Table] = []
        self._pending_rows = 0

    def process(self, batch: pa.Table) -> None:
        for key in self._keys:
            column(batch, key, "deduplicate key")
        if self._order_by is not None:
            column(batch, self._order_by, "deduplicate orderBy column")
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        state_rows = 0 if self._state is None else self._state.num_rows
        if self._pending_rows >= max(state_rows, _MIN_MERGE_ROWS):
            self._merge()

    def finish(self) -> pa.Table | None:
        self._merge()
        return self._state

    def _merge(self) -> None:
        if not self._pending:
            return
        parts = self._pending if self._state is None else [self._state, *self._pending]
        combined = pa.concat_tables(parts, promote_options="permissive")
        self._state = latest_per_key(combined, self._keys, self._order_by)
        self._pending, self._pending_rows = [], 0
