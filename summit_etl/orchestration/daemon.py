"""Dagster's daemon (`dagster-daemon run`), with its sensors evaluated every second.

Dagster's sensor daemon evaluates the sensors that are due in a loop that passes at most
every 5 s (`MIN_INTERVAL_LOOP_TIME` in dagster/_daemon/sensor.py), whatever a sensor's own
`minimum_interval_seconds`: a CDC sensor asked to probe its source every second or two
(`cdc.pollIntervalSeconds`) probed it every 5 s, and the first change after a live run
ended waited up to 5 s for the tick that launches the next run. `summit-etl serve` (and the
compose file) start the daemon through this module, which sets that loop to 1 s, the
shortest `cdc.pollIntervalSeconds`; a sensor with a longer interval still ticks at its
own. The idle daemon's CPU went from 2.6% to 2.8% of a core (docs/benchmarks.md, "CDC lag").
"""

from __future__ import annotations

import logging

import dagster._daemon.sensor as sensor_daemon
from dagster._daemon.cli import main as dagster_daemon

log = logging.getLogger(__name__)

SENSOR_LOOP_SECONDS = 1


def main() -> None:
    """`dagster-daemon` with the arguments given (`run -w workspace.yaml`)."""
    # A module constant Dagster reads at every pass (the pinned 1.13.27); if a release
    # drops it, the daemon runs at Dagster's own pace, and says so.
    if hasattr(sensor_daemon, "MIN_INTERVAL_LOOP_TIME"):
        sensor_daemon.MIN_INTERVAL_LOOP_TIME = SENSOR_LOOP_SECONDS
    else:
        log.warning(
            "this Dagster release has no MIN_INTERVAL_LOOP_TIME: sensors are evaluated at "
            "Dagster's own pace, CDC sensors perhaps less often than cdc.pollIntervalSeconds"
        )
    dagster_daemon()


if __name__ == "__main__":
    main()
