"""One CDC run: read the changes past the target's offset, apply them batch by batch.

Per batch: apply rows + change log + offset in one target transaction, then confirm
the batch to the source (prune captured rows / advance the slot), then mirror the
offset to `etl_cdc_watermarks`. A crash after the target commit replays the batch from
the source; the target drops the changes its log already holds. The run records itself
in `pipeline_runs` like every other run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TypeVar

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
from summit_etl.quality.gate import QualityGate, QualityGateFailure
from summit_etl.quality.run import check_written_target, finish, gate_for
from summit_etl.recording import RunOutcome, RunRequest, StageFailure, recorded_run
from summit_etl.schema.contract import SchemaContractError
from summit_etl.store import cdc_watermarks
from summit_etl.store import schema_changes as schema_store
from summit_etl.store.db import connect
from summit_etl.store.runs import RunCounts
from summit_etl.timeouts import timed_url

log = logging.getLogger("summit_etl.cdc")
T = TypeVar("T")


class _Clock:
    """Time per stage; failures are tagged with the stage they happened in."""

    def __init__(self) -> None:
        self.spent = {"extraction": 0.0, "validation": 0.0, "loading": 0.0}

    def run(self, stage: str, step: Callable[[], T]) -> T:
        started = time.perf_counter()
        try:
            return step()
        except StageFailure:
            raise
        except Exception as exc:
            raise StageFailure(stage, exc) from exc
        finally:
            self.spent[stage] += time.perf_counter() - started

    def each(self, stage: str, items: Iterator[T]) -> Iterator[T]:
        while True:
            started = time.perf_counter()
            try:
                item = next(items)
            except StopIteration:
                return
            except Exception as exc:
                raise StageFailure(stage, exc) from exc
            finally:
                self.spent[stage] += time.perf_counter() - started
            yield item


def run_cdc(config: PipelineConfig, request: RunRequest, summit_url: str) -> RunOutcome:
    """Apply the source's pending changes once and record the run; raises StageFailure
    after recording a failure."""
    clock = _Clock()
    gate = gate_for(config, request, summit_url, changes=True)

    def execute(outcome: RunOutcome) -> None:
        outcome.load = LoadResult()
        _replicate(config, request.run_id, summit_url, clock, outcome, gate)

    def finalize(outcome: RunOutcome, duration: float) -> None:
        outcome.metrics = _metrics(clock, duration, outcome.counts)
        if gate is not None:
            outcome.quality_report = finish(config, request, summit_url, gate, outcome, duration)

    return recorded_run(config, request, summit_url, execute, finalize)


def _replicate(
    config: PipelineConfig,
    run_id: str,
    summit_url: str,
    clock: _Clock,
    outcome: RunOutcome,
    gate: QualityGate | None,
) -> None:
    # Refused rather than ignored: a CDC run applies changes as captured.
    if config.transformation.transformations:
        raise StageFailure(
            "transformation",
            ValueError("CDC pipelines apply changes as captured; remove transformation steps"),
        )
    source = clock.run("extraction", lambda: change_source(config))
    clock.run("extraction", source.prepare)
    schema = clock.run("extraction", lambda: _source_schema(config))
    table = str(config.loading.target_name)
    try:
        target = clock.run(
            "loading",
            lambda: cdc_target.prepare(
                config, timed_url(config.target_url(summit_url), config.timeouts), schema
            ),
        )
    except StageFailure as failure:
        if isinstance(failure.cause, SchemaContractError):
            schema_store.record(summit_url, config.id, run_id, table, failure.cause.changes)
        raise
    schema_store.record(summit_url, config.id, run_id, table, target.schema_changes)
    if outcome.load is not None:
        outcome.load.schema_changes = list(target.schema_changes)
    offset = clock.run("loading", lambda: cdc_target.committed_offset(config, summit_url))
    outcome.watermark_from = offset.value if offset else None
    read_started = datetime.now(UTC)
    row_check = RowCheck(gate.fields, gate.check) if gate is not None and gate.fields else None
    with psycopg.connect(target.url) as conn:
        for batch in clock.each("extraction", iter(source.read(offset))):
            failpoint("extraction")
            _apply(
                config, run_id, summit_url, clock, outcome, source, target, conn, batch, row_check
            )
            offset = batch.offset
    if gate is not None:
        written = outcome.counts.records_loaded
        clock.run(
            "validation",
            lambda: check_written_target(
                gate, config, target.url, written, stream_saw_every_row=False, key=target.key
            ),
        )
    if offset is not None:
        mirror(summit_url, config, offset, caught_up_at=read_started)
        outcome.watermark_to = offset.value


def _apply(
    config: PipelineConfig,
    run_id: str,
    summit_url: str,
    clock: _Clock,
    outcome: RunOutcome,
    source: ChangeSource,
    target: cdc_target.CdcTarget,
    conn: psycopg.Connection,
    batch: ChangeBatch,
    row_check: RowCheck | None,
) -> None:
    label = config.source.label

    def apply() -> Applied:
        try:
            return apply_batch(
                conn,
                target,
                batch,
                pipeline_id=config.id,
                source_table=label,
                run_id=run_id,
                row_check=row_check,
            )
        except QualityGateFailure as failure:  # the batch was rolled back
            raise StageFailure("validation", failure) from failure

    applied = clock.run("loading", apply)
    failpoint("cdc-applied")
    counts, result = outcome.counts, outcome.load
    counts.records_extracted += len(batch.changes)
    counts.records_transformed += len(batch.changes)
    counts.records_loaded += applied.changes
    counts.bytes_processed += sum(len(c.new or "") + len(c.old or "") for c in batch.changes)
    if result is not None:
        result.rows_written += applied.changes
        result.inserted += applied.inserted
        result.updated += applied.updated
        result.deleted += applied.deleted
    clock.run("extraction", lambda: source.confirm(batch))
    # The initial snapshot is mirrored once complete: before that, no watermark exists.
    if batch.offset.snapshot_done:
        mirror(summit_url, config, batch.offset, caught_up_at=None)


def mirror(
    summit_url: str, config: PipelineConfig, offset: Offset, caught_up_at: datetime | None
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
        )


def _source_schema(config: PipelineConfig) -> pa.Schema:
    """The source's columns as Arrow types, to create the target from and match against."""
    read = source_db.read_plan(config, probe=False)
    query = source_db.select_sql(config.source, None, None, read) + " LIMIT 0"
    with source_db.adbc_connection(timed_url(config.source.url, config.timeouts)) as conn:
        schema, batches = source_db.stream_batches(conn, query, 1, read)
        for _ in batches:
            pass
    return schema


def _metrics(clock: _Clock, total: float, counts: RunCounts) -> dict[str, float]:
    def ms(seconds: float) -> float:
        return round(seconds * 1000, 3)

    return {
        "extractionDurationMs": ms(clock.spent["extraction"]),
        "transformationDurationMs": 0.0,
        "validationDurationMs": ms(clock.spent["validation"]),
        "loadingDurationMs": ms(clock.spent["loading"]),
        "totalDurationMs": ms(total),
        "throughputRecordsPerSecond": round(counts.records_loaded / total, 1) if total else 0.0,
    }
