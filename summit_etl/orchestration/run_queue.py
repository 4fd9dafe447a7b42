"""Dagster's run queue, checked twice a second.

The daemon checks the queue every `dequeue_interval_seconds`, a whole number of seconds in
Dagster's own coordinator, and sleeps between checks in steps of half a second: at 1 s a
check began a second after the previous check ended, so a run submitted just after a check
waited up to 1.1 s for its launch (bench/run_start.py, "dequeued": 0.4-1.3 s after the
POST). This coordinator is Dagster's own, its limits and launch untouched, with the interval
a fraction: 0.5 s, the daemon's step, by default. Each check is one read of the queued runs
and their tags from Dagster's storage.
"""

from __future__ import annotations

from typing import Any

from dagster import Field, QueuedRunCoordinator

DEFAULT_INTERVAL_S = 0.5
# Below this the daemon's loop would spin on the storage (it sleeps in 0.5 s steps only
# while the interval has not yet passed).
SHORTEST_INTERVAL_S = 0.1


class PromptQueuedRunCoordinator(QueuedRunCoordinator):
    """`QueuedRunCoordinator` whose `dequeue_interval_seconds` may be a fraction."""

    def __init__(self, *, dequeue_interval_seconds: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        interval = (
            DEFAULT_INTERVAL_S if dequeue_interval_seconds is None else dequeue_interval_seconds
        )
        if interval < SHORTEST_INTERVAL_S:
            raise ValueError(
                f"run_coordinator dequeue_interval_seconds is {interval}: it must be at least "
                f"{SHORTEST_INTERVAL_S} s (dagster.yaml)"
            )
        self._prompt_interval = float(interval)

    @property
    def dequeue_interval_seconds(self) -> float:  # type: ignore[override]  # a fraction
        return self._prompt_interval

    @classmethod
    def config_type(cls) -> dict[str, Field]:
        inherited = super().config_type()
        assert isinstance(inherited, dict)  # Dagster's fields by name
        fields = dict(inherited)
        fields["dequeue_interval_seconds"] = Field(
            float,
            is_required=False,
            description="Seconds between the daemon's checks of the queue (a fraction allowed).",
        )
        return fields
