"""A pipeline's end: deleting it retires everything it owned, so that a pipeline created
later with the same id starts fresh (SPEC §2 "Lifecycle").

What it owned lives in three places: capture on the source (trigger, replication slot
and publication), the offset on the target (`summit_cdc_offsets`), and its rows in the
summit database (watermarks, the `etl_cdc_watermarks` row, the `pipelines` row). The
schedule and the CDC sensor are Dagster's: the API stops them before calling this.
"""

from __future__ import annotations

import logging
from typing import Any

from summit_etl.cdc.sources import release_capture
from summit_etl.cdc.target import OFFSETS_TABLE, forget_offset
from summit_etl.config import ExtractionStrategy
from summit_etl.registry import ConfigError, parse_pipeline
from summit_etl.store import cdc_watermarks, watermarks
from summit_etl.store import pipelines as pipeline_store
from summit_etl.store.db import connect
from summit_etl.store.locks import CAPTURE, pipeline_lock

log = logging.getLogger(__name__)


def retire_pipeline(raw: dict[str, Any], summit_url: str) -> bool:
    """Retire the pipeline stored as `raw` and delete its row; False when there was none.

    Source and target may be unreachable by now: what cannot be removed there is logged
    with what to remove by hand, and the pipeline is deleted all the same (its offset
    would be set aside anyway, see `summit_etl.cdc.target.committed_offset`).
    """
    pipeline_id = str(raw.get("id", ""))
    # A sensor tick or run that would install capture again waits, then finds the row gone.
    with pipeline_lock(summit_url, CAPTURE, pipeline_id):
        release_capture(raw)
        _forget_target_offset(raw, summit_url)
        with connect(summit_url, autocommit=False) as conn, conn.transaction():
            retired = watermarks.retire(conn, pipeline_id)
            forgotten = cdc_watermarks.forget(conn, pipeline_id)
            deleted = pipeline_store.delete(conn, pipeline_id)
    log.info(
        "pipeline retired",
        extra={
            "pipelineId": pipeline_id,
            "watermarksRetired": retired,
            "cdcWatermarksRemoved": forgotten,
        },
    )
    return deleted


def _forget_target_offset(raw: dict[str, Any], summit_url: str) -> None:
    try:
        config = parse_pipeline(raw, "deleted pipeline")
    except ConfigError:
        return  # an invalid configuration never ran, so it wrote no offset
    if config.extraction.strategy is not ExtractionStrategy.cdc:
        return
    try:
        forget_offset(config, summit_url)
    except Exception as exc:
        log.error(
            "could not remove the CDC offset on the target; delete it by hand",
            extra={
                "pipelineId": config.id,
                "table": OFFSETS_TABLE,
                "error": str(exc),
            },
        )
