"""Whether Dagster was asked to cancel a run, read from the instance: the backstop for a
cancel whose interrupt never reached the run worker (runs/interrupts.py)."""

from __future__ import annotations

import time

from dagster import DagsterInstance, DagsterRunStatus

_CANCELLING = (DagsterRunStatus.CANCELING, DagsterRunStatus.CANCELED)


class CancelWatch:
    """Callable: True once the run is CANCELING; asks the instance at most every `every`
    seconds, since runs call it between batches."""

    def __init__(self, instance: DagsterInstance, run_id: str, every: float = 1.0) -> None:
        self.instance = instance
        self.run_id = run_id
        self.every = every
        self._asked = -float("inf")
        self._requested = False

    def __call__(self) -> bool:
        if self._requested or time.monotonic() - self._asked < self.every:
            return self._requested
        self._asked = time.monotonic()
        run = self.instance.get_run_by_id(self.run_id)
        self._requested = run is not None and run.status in _CANCELLING
        return self._requested
