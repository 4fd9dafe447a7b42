"""One CDC run: read the changes past the target's offset, apply them batch by batch.

Per batch: apply rows + change log + offset in one target transaction, then confirm
the batch to the source (prune captured rows / advance the slot), then mirror the
offset to `etl_cdc_watermarks`. A crash after the target commit replays the batch from
the source; the target drops the changes its log already holds. A cancel that arrives
while a batch is applied and confirmed waits for it, then ends the run after that batch.

A run the sensor launched stays live: once caught up it probes the source every
`cdc.runPollMs` and applies what comes, until nothing came for `cdc.idleWindowSeconds`
or CDC was switched off (sensor stopped, pipeline paused or deleted). No target
transaction stays open between batches, and each committed batch is reported to the
orchestrator (`RunHooks.on_batch`). Manual runs make one pass.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import psycopg
import pyarrow as pa

from summit_etl.cdc import target as cdc_target
from summit_etl.cdc.apply import Applied, RowCheck, apply_batch
from summit_etl.cdc.changes import ChangeBatch, Offset
from summit_etl.cdc.sources import ChangeSource, change_source
from summit_etl.config import PipelineConfig
from summit_etl.extract import postgres as source_db
from summit_etl.faults import failpoint
from summit_etl.load.writer import LoadResult
from summit_etl.quality.gate import QualityGateFailure
from summit_etl.quality.run import check_written_target
from summit_etl.runs.context import BatchReport, RunContext, Stage, StageFailure
from summit_etl.schema.contract import SchemaContractError
from summit_etl.store import cdc_watermarks
from summit_etl.store import pipelines as pipeline_store
from summit_etl.store import schema_changes as schema_store
from summit_etl.store.db import connect
from summit_etl.store.locks import CAPTURE, pipeline_lock
from summit_etl.timeouts import timed_url

log = logging.getLogger("summit_etl.cdc")

MIRROR_EVERY_SECONDS = 2.0


def run_cdc(ctx: RunContext) -> None:
    """Apply the source's pending changes; in a live run, also those that keep coming."""
    config, clock, outcome = ctx.config, ctx.clock, ctx.outcome
    outcome.load = LoadResult()
    # Refused rather than ignored: a CDC run applies changes as captured.
    if config.transformation.transformations:
        raise StageFailure(
            Stage.transformation,
            ValueError("CDC pipelines apply changes as captured; remove transformation steps"),
        )
    table, run_id = str(config.loading.target_name), ctx.request.run_id
    source = clock.run(Stage.extraction, lambda: change_source(config))
    live = _Live(ctx, source)
    if not clock.run(Stage.extraction, live.install_capture):
        return
    schema = clock.run(Stage.extraction, lambda: _source_schema(config))
    try:
        target = clock.run(
            Stage.loading, lambda: cdc_target.prepare(config, ctx.target_url, schema)
        )
    except StageFailure as failure:
        if isinstance(failure.cause, SchemaContractError):
            changes = failure.cause.changes
            schema_store.record(ctx.summit_url, config.id, run_id, table, changes)
        raise
    schema_store.record(ctx.summit_url, config.id, run_id, table, target.schema_changes)
    outcome.load.schema_changes = list(target.schema_changes)
    offset = clock.run(Stage.loading, lambda: cdc_target.committed_offset(config, ctx.summit_url))
    outcome.watermark_from = offset.value if offset else None
    gate = ctx.gate
    row_check = RowCheck(gate.fields, gate.check) if gate is not None and gate.fields else None
    caught_up_at: datetime | None = None
    # One source connection for the run's passes and probes (cdc/connections.py).
    with psycopg.connect(target.url) as conn, source.held():
        while True:
            reading_began = datetime.now(UTC)
            read_before = ctx.counts.records_extracted
            offset, applied, cancelled = _apply_pending(
                ctx, source, target, conn, offset, row_check
            )
            # A pass of at least a whole batch met a backlog: more is likely waiting.
            backlog = ctx.counts.records_extracted - read_before >= live.batch_size
            if cancelled:
                log.warning("cancelled: stopping after the batch in hand", extra=ctx.log_context)
                caught_up_at = None  # changes may be left: not caught up
                break
            caught_up_at = reading_began
            if not live.window:
                break
            if applied and offset is not None:  # operators see a live run's progress
                mirror(ctx.summit_url, config, offset, caught_up_at, stored=ctx.request.stored)
            more, caught_up_at = live.wait_for_changes(offset, caught_up_at, at_once=backlog)
            if not more:
                break
    if gate is not None:
        written = outcome.counts.records_loaded
        clock.run(
            Stage.validation,
            lambda: check_written_target(
                gate, config, target.url, written, stream_saw_every_row=False, key=target.key
            ),
        )
    if offset is not None:
        mirror(ctx.summit_url, config, offset, caught_up_at, stored=ctx.request.stored)
        outcome.watermark_to = offset.value


def _apply_pending(
    ctx: RunContext,
    source: ChangeSource,
    target: cdc_target.CdcTarget,
    conn: psycopg.Connection,
    offset: Offset | None,
    row_check: RowCheck | None,
) -> tuple[Offset | None, bool, bool]:
    """Apply what the source holds past `offset`: the new offset, whether a batch was
    applied, and whether a cancel ended the pass after the batch in hand."""
    applied, mirrored = False, -MIRROR_EVERY_SECONDS
    for number, batch in enumerate(ctx.clock.each(Stage.extraction, source.read(offset))):
        if number == 0:
            failpoint("extraction")
        ctx.interrupts.hold()
        _apply(ctx, source, target, conn, batch, row_check)
        offset, applied = batch.offset, True
        # Mirrored once the initial snapshot is complete (before that, no watermark
        # exists), then at most every few seconds: the target holds the offset of record.
        if offset.snapshot_done and time.monotonic() - mirrored >= MIRROR_EVERY_SECONDS:
            mirror(ctx.summit_url, ctx.config, offset, None, stored=ctx.request.stored)
            mirrored = time.monotonic()
        if ctx.interrupts.release() is not None or ctx.cancel_requested():
            return offset, applied, True
    return offset, applied, False


class _Live:
    """The idle window of a run the sensor launched (none for other runs)."""

    def __init__(self, ctx: RunContext, source: ChangeSource) -> None:
        cdc = ctx.config.cdc
        if cdc is None:  # change_source has refused such a pipeline already
            raise ValueError("CDC runs need a `cdc` block")
        self.sensor_launched = ctx.request.trigger == "cdc"
        self.window = cdc.idle_window_seconds if self.sensor_launched else 0.0
        self.poll = cdc.run_poll_ms / 1000
        self.batch_size = cdc.batch_size
        self.check_every = cdc.poll_interval_seconds
        self.ctx = ctx
        self.source = source
        # When CDC was last checked to be on: at most every check_every seconds, since
        # under a steady stream of changes the run waits after every pass.
        self._checked = -float(cdc.poll_interval_seconds)

    def install_capture(self) -> bool:
        """Install capture on the source; False, installing nothing, when CDC was switched
        off after the sensor launched this run. Checked under the capture lock, so capture
        that a stop or delete removed is not put back (store/locks.py)."""
        if not self.sensor_launched:  # an operator's run: asked for now
            self.source.prepare()
            return True
        with pipeline_lock(self.ctx.summit_url, CAPTURE, self.ctx.config.id):
            if not self._still_wanted():
                return False
            self.source.prepare()
        return True

    def wait_for_changes(
        self, offset: Offset | None, caught_up_at: datetime, at_once: bool = False
    ) -> tuple[bool, datetime]:
        """Probe until the source has changes (True) or the window passed or CDC was
        switched off (False); with when the target was last known caught up. `at_once`:
        the first probe does not wait `runPollMs` (the last pass met a backlog)."""
        ctx = self.ctx
        started = time.monotonic()
        while time.monotonic() - started < self.window:
            if time.monotonic() - self._checked >= self.check_every:
                if not self._still_wanted():
                    return False, caught_up_at
                self._mark_caught_up(caught_up_at)
                self._checked = time.monotonic()
            if not at_once:
                time.sleep(self.poll)
            at_once = False
            probed_at = datetime.now(UTC)
            if ctx.clock.run(Stage.extraction, lambda: self.source.probe(offset)) is not None:
                return True, caught_up_at
            caught_up_at = probed_at
        log.info(
            "CDC idle: ending the live run", extra={**ctx.log_context, "idleSeconds": self.window}
        )
        return False, caught_up_at

    def _still_wanted(self) -> bool:
        ctx = self.ctx
        with connect(ctx.summit_url) as conn:
            row = pipeline_store.get_row(conn, ctx.config.id)
        reason = None
        if row is None and ctx.request.stored:
            reason = "the pipeline was deleted"
        elif row is not None and not row.enabled:
            reason = "the pipeline was paused or is being deleted (pipelines.enabled = false)"
        elif ctx.hooks.still_wanted is not None and not ctx.hooks.still_wanted():
            reason = "its CDC sensor was stopped"
        elif ctx.cancel_requested():
            reason = "the run was cancelled"
        if reason is not None:
            log.info(
                "CDC switched off: ending the live run", extra={**ctx.log_context, "reason": reason}
            )
        return reason is None

    def _mark_caught_up(self, at: datetime) -> None:
        ctx = self.ctx
        with connect(ctx.summit_url) as conn:
            cdc_watermarks.mark_caught_up(conn, ctx.config.id, ctx.config.source.label, at)


def _apply(
    ctx: RunContext,
    source: ChangeSource,
    target: cdc_target.CdcTarget,
    conn: psycopg.Connection,
    batch: ChangeBatch,
    row_check: RowCheck | None,
) -> None:
    config = ctx.config

    def apply() -> Applied:
        try:
            return apply_batch(
                conn,
                target,
                batch,
                pipeline_id=config.id,
                source_table=config.source.label,
                run_id=ctx.request.run_id,
                row_check=row_check,
            )
        except QualityGateFailure as failure:  # the batch was rolled back
            raise StageFailure(Stage.validation, failure) from failure

    applied = ctx.clock.run(Stage.loading, apply)
    failpoint("cdc-applied")
    counts, result = ctx.counts, ctx.outcome.load
    counts.records_extracted += len(batch.changes)
    counts.records_transformed += len(batch.changes)
    counts.records_loaded += applied.changes
    counts.bytes_processed += sum(len(c.new or "") + len(c.old or "") for c in batch.changes)
    if result is not None:
        result.rows_written += applied.changes
        result.inserted += applied.inserted
        result.updated += applied.updated
        result.deleted += applied.deleted
    ctx.clock.run(Stage.extraction, lambda: source.confirm(batch))
    if ctx.hooks.on_batch is not None:
        ctx.hooks.on_batch(_report(batch, applied))


def _report(batch: ChangeBatch, applied: Applied) -> BatchReport:
    committed = [c.changed_at for c in batch.changes if c.changed_at is not None]
    lag = (datetime.now(UTC) - min(committed)).total_seconds() if committed else None
    return BatchReport(
        changes=applied.changes,
        inserted=applied.inserted,
        updated=applied.updated,
        deleted=applied.deleted,
        lag_seconds=lag,
        offset=batch.offset.value,
    )


def mirror(
    summit_url: str,
    config: PipelineConfig,
    offset: Offset,
    caught_up_at: datetime | None,
    *,
    stored: bool,
) -> None:
    """Copy the target's offset to `etl_cdc_watermarks`, where operators read it."""
    with connect(summit_url) as conn:
        cdc_watermarks.record(
            conn,
            pipeline_id=config.id,
            source_table=config.source.label,
            value=offset.value,
            lsn=offset.lsn,
            caught_up_at=caught_up_at,
            stored=stored,
        )


def _source_schema(config: PipelineConfig) -> pa.Schema:
    """The source's columns as Arrow types, to create the target from and match against."""
    read = source_db.read_plan(config, probe=False)
    query = source_db.select_sql(config.source, None, None, read) + " LIMIT 0"
    url = timed_url(config.source.url, config.timeouts)
    with source_db.Connector(url, built_in_types=read.built_in_types_only).open() as conn:
        schema, batches = source_db.stream_batches(conn, query, 1, read)
        for _ in batches:
            pass
    return schema
