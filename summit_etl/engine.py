"""Run a pipeline once: the entry point for Dagster assets, the CLI, tests and benchmarks.

The run itself lives in `summit_etl.runs`: its context, clock and record, and the batch
and CDC drivers.
"""

from __future__ import annotations

from summit_etl.config import ExtractionStrategy, PipelineConfig
from summit_etl.quality.run import gate_for
from summit_etl.runs.batch import run_batch
from summit_etl.runs.cdc import run_cdc
from summit_etl.runs.context import RunContext, RunHooks, RunOutcome, RunRequest, StageFailure
from summit_etl.runs.lifecycle import recorded_run

__all__ = ["RunHooks", "RunOutcome", "RunRequest", "StageFailure", "run_pipeline"]


def run_pipeline(
    config: PipelineConfig, request: RunRequest, summit_url: str, hooks: RunHooks | None = None
) -> RunOutcome:
    """Run `config` once and record it; raises StageFailure after recording a failure."""
    cdc = config.extraction.strategy is ExtractionStrategy.cdc
    ctx = RunContext(
        config,
        request,
        summit_url,
        gate=gate_for(config, request, summit_url, changes=cdc),
        hooks=hooks or RunHooks(),
    )
    return recorded_run(ctx, run_cdc if cdc else run_batch)
