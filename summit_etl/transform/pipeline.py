"""Chaining configured steps over a stream of batches, with row accounting."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pyarrow as pa

from summit_etl.config import (
    AggregateTransform,
    CustomTransform,
    DeduplicateTransform,
    DeriveTransform,
    FilterTransform,
    FlattenTransform,
    JoinTransform,
    MapTransform,
    NormalizeTransform,
    Transformation,
    TypecastTransform,
)
from summit_etl.transform.aggregate import AggregateStep
from summit_etl.transform.base import Step
from summit_etl.transform.columns import DeriveStep, MapStep, NormalizeStep, TypecastStep
from summit_etl.transform.custom import CustomStep
from summit_etl.transform.errors import TransformError
from summit_etl.transform.flatten import FlattenStep
from summit_etl.transform.join import JoinStep
from summit_etl.transform.rows import DeduplicateStep, FilterStep

_DEFAULT_BATCH_ROWS = 50_000

# Every step but join is built from its spec alone.
_STEPS: dict[type, Callable[[Any], Step]] = {
    MapTransform: MapStep,
    FilterTransform: FilterStep,
    TypecastTransform: TypecastStep,
    NormalizeTransform: NormalizeStep,
    DeriveTransform: DeriveStep,
    AggregateTransform: AggregateStep,
    FlattenTransform: FlattenStep,
    DeduplicateTransform: DeduplicateStep,
    CustomTransform: CustomStep,
}


def _build(spec: Transformation, source_url: str) -> Step:
    if isinstance(spec, JoinTransform):
        return JoinStep(spec, source_url)
    return _STEPS[type(spec)](spec)


@contextmanager
def _step_context(index: int, kind: str) -> Iterator[None]:
    """Turn a step's failure into a TransformError naming the step (1-based) and its type."""
    try:
        yield
    except TransformError as exc:
        raise TransformError(f"Transformation step {index + 1} ({kind}): {_sentence(exc)}") from exc
    except pa.ArrowException as exc:
        raise TransformError(
            f"Transformation step {index + 1} ({kind}) failed: {_sentence(exc)}"
        ) from exc


def _sentence(exc: Exception) -> str:
    text = str(exc).strip()
    return text if text.endswith(".") else text + "."


class Transformer:
    """The configured steps, applied in order to a stream of batches.

    Barrier steps (aggregate, deduplicate) hold their rows until the input ends; what
    they emit then runs through the steps after them. Empty tables are never yielded,
    and large results are cut to the size of the biggest input batch.
    """

    def __init__(self, steps: Sequence[tuple[str, Step]]) -> None:
        self._steps = list(steps)
        self._batch_rows = 0
        self.rows_in = 0
        self.rows_out = 0

    @property
    def rows_filtered(self) -> int:
        """Rows removed by filter steps (not by deduplicate or aggregate)."""
        return sum(s.rows_removed for _, s in self._steps if isinstance(s, FilterStep))

    def stream(self, batches: Iterable[pa.Table]) -> Iterator[pa.Table]:
        for batch in batches:
            self.rows_in += batch.num_rows
            self._batch_rows = max(self._batch_rows, batch.num_rows)
            yield from self._run(batch, 0)
        for index, (kind, step) in enumerate(self._steps):
            with _step_context(index, kind):
                tail = step.finish()
            if tail is not None:
                yield from self._run(tail, index + 1)

    def _run(self, batch: pa.Table, start: int) -> Iterator[pa.Table]:
        for index in range(start, len(self._steps)):
            if batch.num_rows == 0:
                return
            kind, step = self._steps[index]
            with _step_context(index, kind):
                result = step.process(batch)
            if result is None:
                return
            batch = result
        size = self._batch_rows or _DEFAULT_BATCH_ROWS
        for offset in range(0, batch.num_rows, size):
            piece = batch.slice(offset, size)
            self.rows_out += piece.num_rows
            yield piece


def build_transformer(specs: Sequence[Transformation], *, source_url: str) -> Transformer:
    """Steps for `specs`, each validated now: expressions parsed, functions imported."""
    steps = []
    for index, spec in enumerate(specs):
        with _step_context(index, spec.type):
            steps.append((spec.type, _build(spec, source_url)))
    return Transformer(steps)
