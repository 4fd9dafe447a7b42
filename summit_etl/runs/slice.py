"""One slice of a pipeline's full read: extract one key range → transform → load it in place.

A pipeline with `extraction.parallelism: N` also has a job of N static partitions
('1-of-N' … 'N-of-N', orchestration/slices.py). A partition run reads the rows of its
range of the source's leading primary-key column and replaces the target's rows in that
range, in one target transaction; a backfill over every partition reloads the table, its
runs spread over the cluster's run workers and loading at the same time (load/locks.py).

The split itself is made once and shared (store/slices.py): the first slice run of a
backfill works it out from the source (extract/ranges.py) and stores it under the target's
exclusive lock, the backfill's other runs reuse it, and a slice run outside a backfill
reuses the last one. A slice checks, under its own lock and before committing, that the
split it read by is still the stored one, so slices that load at once never overlap.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import psycopg
from psycopg import sql

from summit_etl.config import LoadStrategy, PipelineConfig
from summit_etl.config.slicing import slice_refusal
from summit_etl.extract import postgres as source_db
from summit_etl.extract.columns import ReadPlan, plan_read
from summit_etl.extract.ranges import split_read
from summit_etl.identifiers import TableName
from summit_etl.load import target as targets
from summit_etl.load.locks import target_lock
from summit_etl.load.writer import LoadPlan
from summit_etl.runs.batch import stream_into_target
from summit_etl.runs.context import (
    RunContext,
    RunHooks,
    RunOutcome,
    RunRequest,
    Stage,
    StageFailure,
)
from summit_etl.runs.lifecycle import recorded_run
from summit_etl.store import slices as slice_store
from summit_etl.store.db import connect
from summit_etl.timeouts import timed_url
from summit_etl.transform import build_transformer

log = logging.getLogger("summit_etl.engine")

_KEY = re.compile(r"^([1-9][0-9]*)-of-([1-9][0-9]*)$")


class SliceError(ValueError):
    """The pipeline cannot be loaded in slices, or the slice asked for does not exist."""


@dataclass(frozen=True)
class Slice:
    number: int  # 1-based
    count: int

    @classmethod
    def parse(cls, key: str) -> Slice:
        match = _KEY.match(key)
        if match is None or int(match[1]) > int(match[2]):
            raise SliceError(f"slice {key!r} is not of the form '<n>-of-<count>', 1 <= n <= count")
        return cls(int(match[1]), int(match[2]))

    @property
    def key(self) -> str:
        return f"{self.number}-of-{self.count}"


def slice_keys(count: int) -> list[str]:
    return [Slice(n, count).key for n in range(1, count + 1)]


def run_slice(
    config: PipelineConfig,
    request: RunRequest,
    summit_url: str,
    part: Slice,
    backfill: str | None,
    hooks: RunHooks | None = None,
) -> RunOutcome:
    """Load slice `part` of `config` and record the run; `backfill`: the id of the backfill
    the run belongs to, whose slices share one split."""
    return recorded_run(
        RunContext(config, request, summit_url, hooks=hooks or RunHooks()),
        lambda ctx: _load_slice(ctx, part, backfill),
    )


def _load_slice(ctx: RunContext, part: Slice, backfill: str | None) -> None:
    config, clock = ctx.config, ctx.clock
    with connect(ctx.summit_url) as summit:
        slice_store.note_slice(summit, ctx.request.run_id, part.key)
    _refuse(config, part)
    source = config.source.table_name
    assert source is not None  # slice_refusal refuses a source query
    target = config.loading.target_name
    source_url = timed_url(config.source.url, config.timeouts)
    try:
        plan = clock.run(Stage.extraction, lambda: _shared_plan(ctx, source, part, backfill))
    except Exception as exc:
        raise StageFailure(Stage.extraction, exc) from exc
    ranges = plan.ranges()
    if part.number > len(ranges):
        log.info(
            f"slice {part.key} is empty: the table splits into {len(ranges)} ranges",
            extra={**ctx.log_context, "stage": "extraction"},
        )
        return
    within = ranges[part.number - 1]
    where = sql.SQL("WHERE {}").format(within.predicate())
    try:
        transformer = build_transformer(
            config.transformation.transformations, source_url=source_url
        )
    except Exception as exc:
        raise StageFailure(Stage.transformation, exc) from exc
    # A target that is still missing is created by the slice that gets there first: that
    # DDL takes the whole target, so such a slice waits for every writer (and they for it).
    creating = config.loading.create_table and not _exists(ctx.target_url, target)
    _check_same_order(source_url, source, ctx.target_url, target, plan.split_column)
    load_plan = LoadPlan(
        strategy=config.loading.strategy,
        key=config.merge_key,
        create_table=creating,
        replace=config.loading.strategy is LoadStrategy.bulk,
        schema_changes=config.schema_changes,
        within=within,
    )

    def before_commit(conn: psycopg.Connection) -> None:
        with connect(ctx.summit_url) as summit:
            stored = slice_store.current(summit, config.id)
        if stored is None or stored.version != plan.version:
            raise SliceError(
                f"the split of {config.source.label} changed while slice {part.key} loaded "
                "(another backfill of its slices started): nothing was written; run it again"
            )
        ctx.interrupts.hold()

    def read_plan() -> ReadPlan:
        return plan_read(source_url, source.ident, True, config, where)

    def queries(read: ReadPlan) -> list[str]:
        return [source_db.select_sql(config.source, None, None, read, within.predicate())]

    read = clock.run(Stage.extraction, read_plan)
    ctx.outcome.load = stream_into_target(
        ctx, queries, read, load_plan, transformer, before_commit
    )


def _refuse(config: PipelineConfig, part: Slice) -> None:
    """Fail the run, saying why, when the pipeline cannot load this slice."""
    refusal = slice_refusal(config)
    if refusal is None and part.count != config.extraction.parallelism:
        refusal = (
            f"slice {part.key} is not one of the pipeline's {config.extraction.parallelism} "
            "(extraction.parallelism changed since the run was launched)"
        )
    if refusal is not None:
        raise StageFailure(Stage.extraction, SliceError(f"pipeline {config.id}: {refusal}"))


def _check_same_order(
    source_url: str, source: TableName, target_url: str, target: TableName, column: str
) -> None:
    """A range of the source's column must be the same rows in the target's: the column
    sorts the same way in both (a missing target or column is the writer's to report)."""
    ordered, target_ordered = (
        _ordering(source_url, source, column),
        _ordering(target_url, target, column),
    )
    if target_ordered is not None and target_ordered != ordered:
        raise StageFailure(
            Stage.loading,
            SliceError(
                f"{column} is {target_ordered} in the target {target} but {ordered} in the "
                "source: a range of one is not the same rows in the other"
            ),
        )


def _shared_plan(
    ctx: RunContext, source: TableName, part: Slice, backfill: str | None
) -> slice_store.SlicePlan:
    """The split this slice reads by: the stored one when it fits, else a new one."""
    config = ctx.config

    def fits(plan: slice_store.SlicePlan | None) -> bool:
        return (
            plan is not None
            and plan.parts == part.count
            and (backfill is None or plan.made_for == backfill)
        )

    with connect(ctx.summit_url) as summit:
        stored = slice_store.current(summit, config.id)
    if stored is not None and fits(stored):
        return stored
    split = split_read(timed_url(config.source.url, config.timeouts), source, part.count)
    if split[0].column is None:
        raise SliceError(
            f"source {source} has no primary key: its slices would be ctid ranges, which "
            "name places in the source and nothing in the target"
        )
    # No slice loads while the split changes: each checks the split it read by under its
    # shared lock (before_commit), so slices that load at once all use one split.
    with targets.connect(ctx.target_url) as target:
        targets.execute(target, target_lock(config.loading.target_name))
        with connect(ctx.summit_url) as summit:
            stored = slice_store.current(summit, config.id)
            if not fits(stored):  # else another slice of this backfill stored one first
                stored = slice_store.replace(summit, config.id, split, part.count, backfill)
        target.commit()
    assert stored is not None
    log.info(
        f"split {config.source.label} into {len(stored.bounds) + 1} ranges of "
        f"{stored.split_column}",
        extra={**ctx.log_context, "stage": "extraction", "backfill": backfill},
    )
    return stored


def _exists(url: str, table: TableName) -> bool:
    with connect(url) as conn:
        row = conn.execute("SELECT to_regclass(%s)", (table.ident.as_string(conn),)).fetchone()
    return row is not None and row[0] is not None


def _ordering(url: str, table: TableName, column: str) -> str | None:
    """How the column's values sort: its type, and its collation's locale for text (the
    database's own for the default collation); None when the table or column is missing."""
    with connect(url) as conn:
        row = conn.execute(
            """
            SELECT format_type(a.atttypid, NULL) || coalesce(' COLLATE ' || CASE
                   WHEN c.collname = 'default'
                   THEN (SELECT datcollate FROM pg_database WHERE datname = current_database())
                   ELSE c.collname END, '')
              FROM pg_attribute a
              LEFT JOIN pg_collation c ON c.oid = a.attcollation
             WHERE a.attrelid = to_regclass(%s) AND a.attname = %s AND NOT a.attisdropped
            """,
            (table.ident.as_string(conn), column),
        ).fetchone()
    return str(row[0]) if row else None
