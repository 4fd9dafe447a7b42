"""A sensor per CDC pipeline: a cheap probe every `pollIntervalSeconds`, a run when there
are changes.

The sensor only asks the source whether anything lies past the watermark; the run does
the reading and applying. It starts STOPPED: capture installs triggers or replication
slots on a source, which an operator turns on deliberately (`POST /pipelines/{id}/cdc/start`,
runbook "Enable CDC for a Table"). Each tick reads the offset the target committed,
brings `etl_cdc_watermarks` up to it if a run died before mirroring it, and keeps it in
the cursor with the change window it last launched a run for.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from dagster import (
    DagsterInstance,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)
from dagster._core.scheduler.instigation import InstigatorStatus, InstigatorType

if TYPE_CHECKING:  # dagster exports the class only privately
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

from summit_etl.cdc.changes import Offset
from summit_etl.cdc.sources import change_source
from summit_etl.cdc.target import committed_offset
from summit_etl.config import PipelineConfig
from summit_etl.orchestration.keys import TRIGGER_TAG, cdc_sensor_name, in_flight_runs
from summit_etl.runs.cdc import mirror
from summit_etl.store import cdc_watermarks
from summit_etl.store import pipelines as pipeline_store
from summit_etl.store.db import connect, redact
from summit_etl.store.locks import CAPTURE, pipeline_lock

CDC_WINDOW_TAG = "summit/cdc_window"


class CdcSourceUnavailable(RuntimeError):
    """The probe could not reach or read the source; the tick fails and the next retries."""


@dataclass(frozen=True)
class CdcCursor:
    watermark: str | None = None
    window: str | None = None
    attempt: int = 0

    @classmethod
    def parse(cls, text: str | None) -> CdcCursor:
        return cls(**json.loads(text)) if text else cls()

    def dump(self) -> str:
        return json.dumps(asdict(self))


def cdc_sensor(
    config: PipelineConfig, job: UnresolvedAssetJobDefinition, summit_url: str, *, stored: bool
) -> SensorDefinition:
    """`stored`: the pipeline lives only in the pipelines table (created through the API),
    so a tick that finds its row gone knows it was deleted; a YAML pipeline's row may not
    have been written yet where the code location runs without `summit-etl serve`."""
    interval = config.cdc.poll_interval_seconds if config.cdc else 10
    label = config.source.label

    def tick(context: SensorEvaluationContext) -> SensorResult | SkipReason:
        with connect(summit_url) as conn:
            row = pipeline_store.get_row(conn, config.id)
        if row is None and stored:
            return SkipReason(f"pipeline {config.id} was deleted")
        if not (row.enabled if row else config.enabled):
            return SkipReason(
                f"pipeline {config.id} is paused (pipelines.enabled = false); "
                "set it to true to resume CDC"
            )
        if cdc_sensor_stopped(context.instance, config.id):
            return SkipReason(f"CDC for {config.id} was stopped while this tick began")
        # Dagster keeps a sensor's run keys after its pipeline is deleted: a pipeline
        # created again with the id keys its runs by its own creation time.
        incarnation = f"{row.created_at.timestamp():.6f}@" if row else ""
        busy = context.instance.get_runs(in_flight_runs(config.id), limit=1)
        if busy:
            return SkipReason(f"run {busy[0].run_id} is still applying changes")
        probed_at = datetime.now(UTC)
        try:
            offset = committed_offset(config, summit_url)
            _heal_mirror(config, summit_url, offset, stored)
            source = change_source(config)
            source.prepare()
            head = source.probe(offset)
        except Exception as exc:
            # Nothing moves on failure: the cursor and the watermark stay as they were.
            raise CdcSourceUnavailable(
                f"CDC probe of {label} for {config.id} failed, retrying in {interval} s: "
                f"{_safe(str(exc), config.source.url)}"
            ) from None
        previous = CdcCursor.parse(context.cursor)
        seen = offset.value if offset else None
        if head is None:
            with connect(summit_url) as conn:
                cdc_watermarks.mark_caught_up(conn, config.id, label, probed_at)
            return SensorResult(
                skip_reason=f"no changes past {seen or 'the start'}; caught up",
                cursor=CdcCursor(seen, previous.window, previous.attempt).dump(),
            )
        window = f"{seen or 'start'}..{head}"
        # The same window again means its run ended without moving the watermark
        # (failed): a new run key retries it, since Dagster skips a key it has seen.
        attempt = previous.attempt + 1 if window == previous.window else 0
        return SensorResult(
            run_requests=[
                RunRequest(
                    run_key=f"{incarnation}{window}#{attempt}",
                    tags={TRIGGER_TAG: "cdc", CDC_WINDOW_TAG: window},
                )
            ],
            cursor=CdcCursor(seen, window, attempt).dump(),
        )

    @sensor(
        name=cdc_sensor_name(config.id),
        job=job,
        minimum_interval_seconds=interval,
        default_status=DefaultSensorStatus.STOPPED,
        description=f"CDC for {config.id}: polls {label} every {interval} s, runs on changes",
    )
    def poll(context: SensorEvaluationContext) -> SensorResult | SkipReason:
        # Under the capture lock: a stop or delete that removed capture waits for this
        # tick, or this tick sees the sensor stopped and installs nothing.
        with pipeline_lock(summit_url, CAPTURE, config.id):
            return tick(context)

    return poll


def cdc_sensor_stopped(instance: DagsterInstance, pipeline_id: str) -> bool:
    """True once an operator stopped the pipeline's CDC sensor (`cdc/stop`, delete). A
    sensor the instance keeps no state for (in-process use) counts as running."""
    if instance.schedule_storage is None:
        return False
    name = cdc_sensor_name(pipeline_id)
    stopped = instance.all_instigator_state(
        instigator_type=InstigatorType.SENSOR, instigator_statuses={InstigatorStatus.STOPPED}
    )
    return any(state.instigator_name == name for state in stopped)


def _heal_mirror(
    config: PipelineConfig, summit_url: str, offset: Offset | None, stored: bool
) -> None:
    """A run that died after its target commit left `etl_cdc_watermarks` behind the
    target's offset: copy the offset over, so probe, cursor and watermark agree."""
    if offset is None or not offset.snapshot_done:
        return
    with connect(summit_url) as conn:
        current = cdc_watermarks.current(conn, config.id, config.source.label)
    if current is None or (current.last_processed_value, current.last_processed_lsn) != (
        offset.value,
        offset.lsn,
    ):
        mirror(summit_url, config, offset, None, stored=stored)


def _safe(message: str, url: str) -> str:
    """The error without the source URL's password, should the driver have echoed it."""
    redacted = redact(url)
    return message.replace(url, redacted) if url != redacted else message
