"""A pipeline's full read as Dagster static partitions, so that a backfill spreads one big
table over the run workers of a cluster.

A pipeline with `extraction.parallelism: N` (N > 1) that can be loaded in slices
(config/slicing.py says when) gets the job `slices_of_<id>`: N static partitions named
'1-of-N' … 'N-of-N'. The names are stable; the key ranges behind them are worked out when
the runs start (the split follows the data). A run of one partition loads one range and
records a materialization of the pipeline's target; a backfill over all partitions (the
Dagster UI's, or `POST /pipelines/{id}/backfill` with `{"partitioned": true}`) reloads
the whole table, its runs loading at once.

No `from __future__ import annotations` here: Dagster reads the op's annotations.
"""

from dagster import (
    AssetMaterialization,
    JobDefinition,
    OpExecutionContext,
    StaticPartitionsDefinition,
    in_process_executor,
    job,
    op,
)

from summit_etl.config import PipelineConfig
from summit_etl.orchestration.assets import outcome_metadata
from summit_etl.orchestration.cancel import CancelWatch
from summit_etl.orchestration.keys import (
    BACKFILL_TAG,
    SLICE_TAG,
    run_trigger,
    slices_job_name,
    target_key,
)
from summit_etl.orchestration.resources import SummitDatabase
from summit_etl.runs.context import RunHooks, RunRequest
from summit_etl.runs.slice import Slice, run_slice, slice_keys


def slices_job(config: PipelineConfig) -> JobDefinition:
    name = slices_job_name(config.id)

    @op(name=name + "_load", tags={SLICE_TAG: config.id})
    def load_slice(context: OpExecutionContext, summit: SummitDatabase) -> None:
        tags = dict(context.run.tags)
        part = Slice.parse(context.partition_key)
        request = RunRequest(context.run.run_id, trigger=run_trigger(tags))
        hooks = RunHooks(cancel_requested=CancelWatch(context.instance, context.run.run_id))
        outcome = run_slice(
            config, request, summit.prepared_url(), part, tags.get(BACKFILL_TAG), hooks
        )
        context.log_event(
            AssetMaterialization(
                asset_key=target_key(config),
                description=f"slice {part.key} of pipeline {config.id}",
                metadata={"slice": part.key, **outcome_metadata(outcome)},
            )
        )

    @job(
        name=name,
        description=f"Reloads pipeline {config.id} ({config.name}) one key range per partition",
        partitions_def=StaticPartitionsDefinition(slice_keys(config.extraction.parallelism)),
        tags={SLICE_TAG: config.id},
        # One step, run in the run worker's own process, as the pipelines' own jobs are.
        executor_def=in_process_executor,
    )
    def slices() -> None:
        load_slice()

    return slices
