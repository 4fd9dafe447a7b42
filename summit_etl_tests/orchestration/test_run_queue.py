"""The run queue of dagster.yaml, loaded as Dagster loads it: the daemon checks it at the
configured fraction of a second, under the project's limits; an interval the daemon would
spin on is refused by name. The service's own runs (api_shim tests) all pass through it."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from dagster import QueuedRunCoordinator
from dagster._core.test_utils import instance_for_test
from dagster._daemon.controller import create_daemon_of_type
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
    QueuedRunCoordinatorDaemon,
)

from summit_etl.orchestration.keys import PIPELINE_TAG
from summit_etl.orchestration.run_queue import PromptQueuedRunCoordinator
from summit_etl.settings import PROJECT_ROOT


def project_queue() -> dict[str, Any]:
    return yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())["run_coordinator"]


def test_the_daemon_checks_the_projects_queue_twice_a_second_under_its_limits() -> None:
    with instance_for_test(overrides={"run_coordinator": project_queue()}) as instance:
        coordinator = instance.run_coordinator
        assert isinstance(coordinator, PromptQueuedRunCoordinator)
        assert isinstance(coordinator, QueuedRunCoordinator)  # Dagster's own queue
        daemon = create_daemon_of_type(QueuedRunCoordinatorDaemon.daemon_type(), instance)
        assert isinstance(daemon, QueuedRunCoordinatorDaemon)
        assert daemon.interval_seconds == 0.5
        limits = coordinator.get_run_queue_config()
        assert limits.max_concurrent_runs == 4
        assert [(rule["key"], rule["limit"]) for rule in limits.tag_concurrency_limits] == [
            (PIPELINE_TAG, 1)
        ]


def test_an_interval_the_daemon_would_spin_on_is_refused_by_name() -> None:
    queue = project_queue()
    queue["config"]["dequeue_interval_seconds"] = 0
    with (
        instance_for_test(overrides={"run_coordinator": queue}) as instance,
        pytest.raises(ValueError, match="dequeue_interval_seconds is 0"),
    ):
        _ = instance.run_coordinator  # Dagster loads it on first use
