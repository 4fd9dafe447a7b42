"""Which pipelines can be loaded in slices (runs/slice.py, orchestration/slices.py).

Decided from the configuration alone, so the API can answer it without loading the engine.
"""

from __future__ import annotations

from summit_etl.config.pipeline import ExtractionStrategy, LoadStrategy, PipelineConfig

# The target's rows mirror the source's by key, so one range of them can be rebuilt alone.
# append_only would append a range twice, scd_type2 would lose its history and delta's
# full-snapshot delete would remove every row outside the range.
SLICEABLE = (LoadStrategy.bulk, LoadStrategy.upsert, LoadStrategy.scd_type1)
# Steps whose output rows depend on rows outside the range.
_WHOLE_TABLE_STEPS = ("aggregate", "deduplicate")


def slice_refusal(config: PipelineConfig) -> str | None:
    """Why the pipeline has no slices, or None when it has `extraction.parallelism`."""
    strategy = config.loading.strategy
    if config.extraction.parallelism == 1:
        return "extraction.parallelism is 1: set it to the number of slices"
    if config.extraction.strategy is ExtractionStrategy.cdc:
        return "a CDC pipeline applies captured changes; it is not reloaded in slices"
    if config.source.table_name is None:
        return "slices split a source table by its primary key; a source query has none"
    if strategy not in SLICEABLE:
        return (
            f"loading.strategy {strategy.value} cannot rebuild one key range alone; slices "
            f"load {', '.join(s.value for s in SLICEABLE)}"
        )
    if config.quality.rules:
        return "quality rules judge the whole table, which one slice does not hold"
    steps = [s.type for s in config.transformation.transformations if s.type in _WHOLE_TABLE_STEPS]
    if steps:
        return f"{' and '.join(sorted(set(steps)))} steps need rows outside one key range"
    return None
