"""One pipeline run: config → extract → transform → (quality) → load → record.

Batches stream through the stages as Arrow tables; no stage holds the whole table. The
run writes its `pipeline_runs` row at the start and at the end (also on failure, with
the failing stage and the database's message), and moves the watermark only after the
target has committed, so a crash in between re-reads rather than loses rows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

import pyarrow as pa

from summit_etl.cdc.run import run_cdc
from summit_etl.config import ExtractionStrategy, LoadStrategy, PipelineConfig
from summit_etl.extract import postgres as source_db
from summit_etl.extract.watermark import HighWaterMark, lower_bound
from summit_etl.faults import failpoint
from summit_etl.load.writer import LoadError, LoadPlan, load
from summit_etl.quality.gate import QualityGate
from summit_etl.quality.run import (
    blocking_check,
    check_written_target,
    confirm_quarantine,
    finish,
    gate_for,
)
from summit_etl.recording import RunOutcome, RunRequest, StageFailure, recorded_run
from summit_etl.schema.contract import SchemaContractError
from summit_etl.store import schema_changes as schema_store
from summit_etl.store import watermarks as watermark_store
from summit_etl.store.db import connect
from summit_etl.store.runs import RunCounts
from summit_etl.timeouts import timed_url
from summit_etl.transform import build_transformer

log = logging.getLogger("summit_etl.engine")

T = TypeVar("T")


class _StageClock:
    """Time spent inside each stage of a pull-based stream, exclusive of its upstream."""

    def __init__(self) -> None:
        self.inclusive: dict[str, float] = {}
        # Stage time spent outside the stream (the table-level rules after the load).
        self.after_stream: dict[str, float] = {}
        # The loader's COPY pulls batches from C++, which turns our exceptions into its
        # own; the first stage failure is kept here so the run reports the real one.
        self.failure: StageFailure | None = None

    def wrap(self, stage: str, items: Iterable[T]) -> Iterator[T]:
        self.inclusive.setdefault(stage, 0.0)
        iterator = iter(items)
        while True:
            started = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                self.inclusive[stage] += time.perf_counter() - started
                return
            except StageFailure as failure:
                self.failure = self.failure or failure
                raise
            except Exception as exc:
                self.failure = self.failure or StageFailure(stage, exc)
                raise self.failure from exc
            self.inclusive[stage] += time.perf_counter() - started
            yield item


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def run_pipeline(
    config: PipelineConfig,
    request: RunRequest,
    summit_url: str,
) -> RunOutcome:
    """Run `config` once and record it; raises StageFailure after recording a failure."""
    if config.extraction.strategy is ExtractionStrategy.cdc:
        return run_cdc(config, request, summit_url)
    clock = _StageClock()
    gate = gate_for(config, request, summit_url)

    def finalize(outcome: RunOutcome, duration: float) -> None:
        outcome.metrics = _metrics(clock, duration, outcome.counts)
        if gate is not None:
            outcome.quality_report = finish(config, request, summit_url, gate, outcome, duration)

    return recorded_run(
        config,
        request,
        summit_url,
        lambda outcome: _execute(config, request, summit_url, outcome.counts, clock, outcome, gate),
        finalize,
    )


def _metrics(clock: _StageClock, total: float, counts: RunCounts) -> dict[str, float]:
    inclusive = clock.inclusive
    extract = inclusive.get("extraction", 0.0)
    transform = inclusive.get("transformation", 0.0)
    validate = inclusive.get("validation", transform)
    return {
        "extractionDurationMs": _ms(extract),
        "transformationDurationMs": _ms(max(transform - extract, 0.0)),
        "validationDurationMs": _ms(
            max(validate - transform, 0.0) + clock.after_stream.get("validation", 0.0)
        ),
        "loadingDurationMs": _ms(max(inclusive.get("loading", 0.0) - validate, 0.0)),
        "totalDurationMs": _ms(total),
        "throughputRecordsPerSecond": round(counts.records_loaded / total, 1) if total else 0.0,
    }


def _execute(
    config: PipelineConfig,
    request: RunRequest,
    summit_url: str,
    counts: RunCounts,
    clock: _StageClock,
    outcome: RunOutcome,
    gate: QualityGate | None,
) -> None:
    incremental = config.extraction.strategy is ExtractionStrategy.incremental
    column = config.extraction.incremental_column if incremental else None
    stored = None
    if incremental and not request.full_reload:
        with connect(summit_url) as conn:
            stored = watermark_store.current(conn, config.id, config.source.label)
    full_read = not incremental or stored is None
    start = lower_bound(stored, config.watermark_config) if incremental else None
    outcome.watermark_from = None if start is None else str(start)
    source_url = timed_url(config.source.url, config.timeouts)
    plan = _load_plan(config, source_url, incremental=incremental, full_read=full_read)
    target_url = timed_url(config.target_url(summit_url), config.timeouts)
    context = {"pipelineId": config.id, "runId": request.run_id}

    try:
        transformer = build_transformer(
            config.transformation.transformations, source_url=source_url
        )
    except Exception as exc:
        raise StageFailure("transformation", exc) from exc
    high_mark = HighWaterMark(column, stored) if column else None

    def extracted(batches: Iterable[pa.Table]) -> Iterator[pa.Table]:
        for batch in batches:
            failpoint("extraction")
            counts.records_extracted += batch.num_rows
            counts.bytes_processed += batch.nbytes
            if high_mark:
                high_mark.observe(batch)
            yield batch

    def transformed(batches: Iterable[pa.Table]) -> Iterator[pa.Table]:
        for batch in transformer.stream(batches):
            counts.records_transformed += batch.num_rows
            yield batch

    try:
        read = source_db.read_plan(config, column, start)
        query = source_db.select_sql(config.source, column, start, read)
        log.debug("extract query", extra={**context, "stage": "extraction", "sql": query})
        with source_db.adbc_connection(source_url) as conn:
            _, batches = source_db.stream_batches(conn, query, config.extraction.batch_size, read)
            stream = clock.wrap("extraction", extracted(batches))
            stream = clock.wrap("transformation", transformed(stream))
            if gate is not None:
                stream = clock.wrap("validation", gate.stream(stream))
            load_started = time.perf_counter()
            decide = blocking_check(gate, config, stream_saw_every_row=plan.replace, key=plan.key)
            target = config.loading.target_name
            try:
                result = load(target_url, target, plan, stream, decide)
                failpoint("target-committed")
            except StageFailure:
                raise
            except Exception as exc:
                changes = exc.changes if isinstance(exc, SchemaContractError) else []
                schema_store.record(summit_url, config.id, request.run_id, str(target), changes)
                raise clock.failure or StageFailure("loading", exc) from exc
            schema_store.record(
                summit_url, config.id, request.run_id, str(target), result.schema_changes
            )
            clock.inclusive["loading"] = time.perf_counter() - load_started
    except StageFailure:
        raise
    except Exception as exc:  # connecting to or querying the source
        raise StageFailure("extraction", exc) from exc

    counts.records_filtered = transformer.rows_filtered
    counts.records_loaded = result.rows_written
    outcome.load = result
    if gate is not None:
        counts.records_quarantined = gate.quarantined
        confirm_quarantine(config, request, summit_url)
        checks_started = time.perf_counter()
        try:
            check_written_target(
                gate,
                config,
                target_url,
                result.rows_written,
                stream_saw_every_row=plan.replace,
                key=plan.key,
            )
        except Exception as exc:
            raise StageFailure("validation", exc) from exc
        clock.after_stream["validation"] = time.perf_counter() - checks_started
    if high_mark and (value := high_mark.value()) is not None:
        with connect(summit_url) as conn:
            watermark_store.record(
                conn,
                pipeline_id=config.id,
                source_table=config.source.label,
                column=high_mark.column,
                value=value,
                records_loaded=result.rows_written,
                run_id=request.run_id,
            )
        outcome.watermark_to = value


def _load_plan(
    config: PipelineConfig, source_url: str, *, incremental: bool, full_read: bool
) -> LoadPlan:
    strategy = config.loading.strategy
    key = config.merge_key
    appending = strategy in (LoadStrategy.bulk, LoadStrategy.append_only)
    replace = strategy is LoadStrategy.bulk and full_read
    skip_existing = appending and incremental and not replace
    if skip_existing and not key and config.source.table_name is not None:
        key = source_db.primary_key(source_url, config.source.table_name)
    if skip_existing and not key:
        raise StageFailure(
            "loading",
            LoadError(
                f"incremental {strategy.value} loads re-read the lookback window and need a key "
                "to skip rows already loaded: set loading.upsertKey or give the source a "
                "primary key"
            ),
        )
    return LoadPlan(
        strategy=strategy,
        key=key,
        create_table=config.loading.create_table,
        replace=replace,
        skip_existing=skip_existing,
        delete_missing=strategy is LoadStrategy.delta and full_read,
        schema_changes=config.schema_changes,
    )
