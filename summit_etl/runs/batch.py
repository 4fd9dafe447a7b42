"""One batch run: extract → transform → (quality) → load → watermark.

Batches stream through the stages as Arrow tables; no stage holds the whole table. The
watermark moves only after the target has committed, so a crash in between re-reads
rather than loses rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import replace
from functools import partial

import psycopg
import pyarrow as pa
from psycopg import sql

from summit_etl.config import ExtractionStrategy, LoadStrategy, PipelineConfig
from summit_etl.extract import changed
from summit_etl.extract import postgres as source_db
from summit_etl.extract.arrow import TypeTravelError
from summit_etl.extract.columns import ReadPlan
from summit_etl.extract.ranges import split_read
from summit_etl.extract.readers import read_ahead
from summit_etl.extract.watermark import HighWaterMark, lower_bound
from summit_etl.faults import failpoint
from summit_etl.load.writer import LoadError, LoadPlan, LoadResult, load
from summit_etl.quality.run import blocking_check, check_written_target, confirm_quarantine
from summit_etl.runs.context import RunContext, Stage, StageFailure
from summit_etl.runs.state import stored_watermark
from summit_etl.schema.contract import SchemaChange, SchemaContractError
from summit_etl.store import schema_changes as schema_store
from summit_etl.store import watermarks as watermark_store
from summit_etl.store.db import connect
from summit_etl.timeouts import timed_url
from summit_etl.transform import Transformer, build_transformer

log = logging.getLogger("summit_etl.engine")


def run_batch(ctx: RunContext) -> None:
    config, request, counts, outcome, clock = (
        ctx.config,
        ctx.request,
        ctx.counts,
        ctx.outcome,
        ctx.clock,
    )
    incremental = config.extraction.strategy is ExtractionStrategy.incremental
    column = config.extraction.incremental_column if incremental else None
    stored = stored_watermark(ctx) if incremental and not request.full_reload else None
    full_read = not incremental or stored is None
    start = lower_bound(stored, config.watermark_config) if incremental else None
    outcome.watermark_from = None if start is None else str(start)
    source_url = timed_url(config.source.url, config.timeouts)
    plan = _load_plan(config, source_url, incremental=incremental, full_read=full_read)

    try:
        transformer = build_transformer(
            config.transformation.transformations, source_url=source_url
        )
    except Exception as exc:
        raise StageFailure(Stage.transformation, exc) from exc
    high_mark = HighWaterMark(column, stored) if column else None

    decide = blocking_check(ctx.gate, config, stream_saw_every_row=plan.replace, key=plan.key)

    def before_commit(conn: psycopg.Connection) -> None:
        if decide is not None:  # blocking quality rules, on the load's own transaction
            decide(conn)
        # From here on the work is about to be on the target for good: a cancel waits
        # until the watermark and the run record say so.
        ctx.interrupts.hold()

    # Connecting to and querying the source count as extraction.
    read = clock.run(Stage.extraction, lambda: source_db.read_plan(config, column, start))
    parts = clock.run(Stage.extraction, lambda: _parts(config, source_url))
    with ExitStack() as held:
        snapshot, changes = None, None
        if config.extraction.compare_hashes:
            # The hashes and the rows are read in this one snapshot of the source.
            snapshot = held.enter_context(changed.source_snapshot(source_url))
            changes = clock.run(Stage.extraction, lambda: _compare(ctx, snapshot, read, plan))
            failpoint("compared")
        if changes is not None:
            plan = replace(plan, delete_missing=False, delete_keys=changes.gone)
            parts = [changes.differing.predicate()]

        def queries(read: ReadPlan) -> list[str]:
            if parts is None:
                return [source_db.select_sql(config.source, column, start, read)]
            return [source_db.select_sql(config.source, None, None, read, p) for p in parts]

        result = stream_into_target(
            ctx,
            queries,
            read,
            plan,
            transformer,
            before_commit,
            observe=high_mark,
            snapshot=snapshot.id if snapshot is not None else None,
        )
    outcome.load = result
    if ctx.gate is not None:
        gate = ctx.gate
        counts.records_quarantined = gate.quarantined
        confirm_quarantine(config, request, ctx.summit_url)
        clock.run(
            Stage.validation,
            lambda: check_written_target(
                gate,
                config,
                ctx.target_url,
                result.rows_written,
                stream_saw_every_row=plan.replace,
                key=plan.key,
            ),
        )
    if high_mark and (value := high_mark.value()) is not None:
        with connect(ctx.summit_url) as summit:
            watermark_store.record(
                summit,
                pipeline_id=config.id,
                source_table=config.source.label,
                column=high_mark.column,
                value=value,
                records_loaded=result.rows_written,
                run_id=request.run_id,
            )
        outcome.watermark_to = value


def stream_into_target(
    ctx: RunContext,
    queries: Callable[[ReadPlan], list[str]],
    read: ReadPlan,
    plan: LoadPlan,
    transformer: Transformer,
    before_commit: Callable[[psycopg.Connection], None],
    observe: HighWaterMark | None = None,
    snapshot: str | None = None,
) -> LoadResult:
    """Read `queries(read)` (in the exported source `snapshot`, if given) → transform →
    (quality gate) → load into the pipeline's target, each stage on the run's clock; the
    schema changes the load met are recorded either way. A value that cannot travel typed
    in a column read typed without a probe rolls the load back and starts the read over
    with that column as text (extract/columns.py)."""
    config, counts, clock = ctx.config, ctx.counts, ctx.clock
    target, source_url = config.loading.target_name, timed_url(config.source.url, config.timeouts)

    def extracted(batches: Iterable[pa.Table]) -> Iterator[pa.Table]:
        for number, batch in enumerate(batches):
            ctx.interrupt_if_cancelled()
            counts.records_extracted += batch.num_rows
            counts.bytes_processed += batch.nbytes
            if observe:
                observe.observe(batch)
            if number == 0:
                failpoint("extraction")
            yield batch

    def transformed(batches: Iterable[pa.Table]) -> Iterator[pa.Table]:
        for batch in transformer.stream(batches):
            counts.records_transformed += batch.num_rows
            yield batch

    def handed_over(batches: Iterable[pa.Table]) -> Iterator[pa.Table]:
        for number, batch in enumerate(batches):
            yield batch
            if number == 0:  # the loader asks for more: the first batch is in its COPY
                failpoint("loading")

    def extract_and_load(read: ReadPlan) -> LoadResult:
        selects = queries(read)
        for query in selects:
            log.debug(
                "extract query", extra={**ctx.log_context, "stage": "extraction", "sql": query}
            )
        # The source is read on reader threads while the loader writes; the time the
        # stages below wait for their batches is the run's extraction time (runs/clock.py).
        with read_ahead(
            source_url, selects, config.extraction.batch_size, read, snapshot=snapshot
        ) as batches:
            stream = clock.each(Stage.extraction, extracted(batches))
            stream = clock.each(Stage.transformation, transformed(stream))
            if ctx.gate is not None:
                stream = clock.each(Stage.validation, ctx.gate.stream(stream))
            return clock.run(
                Stage.loading,
                lambda: load(
                    ctx.target_url, target, plan, handed_over(stream), before_commit=before_commit
                ),
            )

    def record(changes: Sequence[SchemaChange]) -> None:
        schema_store.record(ctx.summit_url, config.id, ctx.request.run_id, str(target), changes)

    while True:
        try:
            result = clock.run(Stage.extraction, partial(extract_and_load, read))
            break
        except StageFailure as failure:
            if isinstance(failure.cause, SchemaContractError):
                record(failure.cause.changes)
            if not isinstance(failure.cause, TypeTravelError):
                raise
            clock.failure = None  # the clock reports what fails from here on
            again = _read_again(ctx, read, failure.cause)
            if again is None:
                raise
            read = again
            # Nothing of the failed read was committed: count and observe from scratch.
            counts.records_extracted = counts.records_transformed = counts.bytes_processed = 0
            if observe:
                observe.forget()
    failpoint("target-committed")
    record(result.schema_changes)
    counts.records_filtered = transformer.rows_filtered
    counts.records_loaded = result.rows_written
    return result


def _read_again(ctx: RunContext, read: ReadPlan, error: TypeTravelError) -> ReadPlan | None:
    """The plan to start the read over with after `error`; None: the run fails with it."""
    column = error.column
    # Its probe queries the source: a failure there is the extraction's.
    again = ctx.clock.run(Stage.extraction, lambda: read.after_travel_error(column))
    if again is not None:
        log.info(
            "a column holds a value its typed form cannot carry exactly: reading again "
            "with it as text (nothing was committed)",
            extra={
                **ctx.log_context,
                "stage": "extraction",
                "column": column,
                "asText": sorted(again.as_text - read.as_text),
            },
        )
    return again


def _compare(
    ctx: RunContext, snapshot: changed.SourceSnapshot, read: ReadPlan, plan: LoadPlan
) -> changed.Changes | None:
    """`extraction.compareHashes`: which keys the full read needs (None: all of them)."""
    config = ctx.config
    return changed.find_changes(
        snapshot,
        source_db.source_relation(config.source),
        config.source.table_name,
        read.columns,
        ctx.target_url,
        config.loading.target_name,
        plan.key,
        current_only=plan.strategy is LoadStrategy.scd_type2,
        gone=plan.delete_missing,
    )


def _parts(config: PipelineConfig, source_url: str) -> list[sql.Composable] | None:
    """With `extraction.parallelism` (full reads of a table only, the configuration
    checks), the predicate of each range of the table, one reader each; else None."""
    table = config.source.table_name
    if config.extraction.parallelism == 1 or table is None:
        return None
    return [
        part.predicate() for part in split_read(source_url, table, config.extraction.parallelism)
    ]


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
            Stage.loading,
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
