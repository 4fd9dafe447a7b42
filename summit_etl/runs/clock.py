"""One stage clock for batch and CDC runs: the time spent in each stage, and which stage an
error came from.

Batch stages are nested pull streams (the loader pulls from validation, which pulls from
transformation, which pulls from extraction); the clock charges each stage only its own
time by switching the running stage whenever a stream is entered or left.

The clock lives on the run's own thread. The source is read ahead on reader threads
(extract/readers.py); the clock does not time them: a run's extraction time is the time
its other stages waited for the readers' batches (with the source's connection and query
set-up). The stages then still add up to the run's duration, and a large extraction time
says that reading, not writing, held the run back; the readers' own busy time, which
overlaps the other stages, is logged when they stop.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from summit_etl.runs.interrupts import interrupted_statement, redeliver_interrupt
from summit_etl.runs.stages import Stage, StageFailure

T = TypeVar("T")


class StageClock:
    def __init__(self) -> None:
        self.spent: dict[Stage, float] = dict.fromkeys(Stage, 0.0)
        # The loader's COPY pulls batches from C++, which turns our exceptions (and
        # interrupts) into its own: the first of each is kept so the run reports the real one.
        self.failure: StageFailure | None = None
        self.interrupt: BaseException | None = None
        self._running: list[Stage] = []
        self._since = time.perf_counter()

    def run(self, stage: Stage, step: Callable[[], T]) -> T:
        """`step()` timed as `stage`; its errors become StageFailure(stage)."""
        self._enter(stage)
        try:
            return step()
        except StageFailure:
            raise
        except Exception as exc:
            self._raise_interrupt(exc)
            raise self.failure or StageFailure(stage, exc) from exc
        finally:
            self._leave()

    def each(self, stage: Stage, items: Iterable[T]) -> Iterator[T]:
        """`items` with the time spent producing each charged to `stage`."""
        iterator = iter(items)
        while True:
            self._enter(stage)
            try:
                item = next(iterator)
            except StopIteration:
                return
            except StageFailure as failure:
                self.failure = self.failure or failure
                raise
            except Exception as exc:
                self._raise_interrupt(exc)
                self.failure = self.failure or StageFailure(stage, exc)
                raise self.failure from exc
            except BaseException as interrupt:
                self.interrupt = self.interrupt or interrupt
                raise
            finally:
                self._leave()
            yield item

    def _raise_interrupt(self, exc: Exception) -> None:
        """A cancel that reached us disguised as an error is raised as the cancel it was."""
        if self.interrupt is None and interrupted_statement(exc):
            try:
                redeliver_interrupt()
            except BaseException as interrupt:
                self.interrupt = interrupt
        if self.interrupt is not None:
            raise self.interrupt from exc

    def _switch(self) -> None:
        now = time.perf_counter()
        if self._running:
            self.spent[self._running[-1]] += now - self._since
        self._since = now

    def _enter(self, stage: Stage) -> None:
        self._switch()
        self._running.append(stage)

    def _leave(self) -> None:
        self._switch()
        self._running.pop()

    def metrics(self, total: float, records_loaded: int) -> dict[str, float]:
        """The run record's `metrics`: milliseconds per stage, total and throughput."""

        def ms(seconds: float) -> float:
            return round(seconds * 1000, 3)

        return {
            "extractionDurationMs": ms(self.spent[Stage.extraction]),
            "transformationDurationMs": ms(self.spent[Stage.transformation]),
            "validationDurationMs": ms(self.spent[Stage.validation]),
            "loadingDurationMs": ms(self.spent[Stage.loading]),
            "totalDurationMs": ms(total),
            "throughputRecordsPerSecond": round(records_loaded / total, 1) if total else 0.0,
        }
