"""The one stage clock: each stage of nested pull streams is charged only its own time,
and an error is reported by the stage it came from, whoever pulled it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from summit_etl.runs.clock import StageClock
from summit_etl.runs.stages import Stage, StageFailure


def slow(seconds: float, items: Iterator[int]) -> Iterator[int]:
    for item in items:
        time.sleep(seconds)
        yield item


def test_nested_streams_are_charged_their_own_time() -> None:
    clock = StageClock()
    extracted = clock.each(Stage.extraction, slow(0.06, iter(range(5))))
    transformed = clock.each(Stage.transformation, slow(0.01, extracted))
    assert clock.run(Stage.loading, lambda: sum(transformed)) == 10
    spent = clock.spent
    assert spent[Stage.extraction] >= 0.3
    # Exclusive: the 0.3 s transformation waited on extraction are not its own.
    assert 0.05 <= spent[Stage.transformation] < 0.25
    assert spent[Stage.loading] < 0.25
    metrics = clock.metrics(1.0, 10)
    assert metrics["throughputRecordsPerSecond"] == 10.0
    assert metrics["extractionDurationMs"] == round(spent[Stage.extraction] * 1000, 3)


def test_an_error_keeps_the_stage_it_came_from() -> None:
    def broken() -> Iterator[int]:
        yield 1
        raise ValueError("bad row")

    clock = StageClock()
    stream = clock.each(Stage.transformation, clock.each(Stage.extraction, broken()))

    def consume() -> None:
        try:
            list(stream)
        except StageFailure as exc:  # a loader that turns errors into its own, as COPY does
            raise RuntimeError("COPY failed") from exc

    with pytest.raises(StageFailure) as info:
        clock.run(Stage.loading, consume)
    assert info.value.stage is Stage.extraction
    assert str(info.value.cause) == "bad row"
