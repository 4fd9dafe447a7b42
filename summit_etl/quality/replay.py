"""Replay a run's quarantined rows once the rules or the data are fixed.

The rows are checked again against the pipeline's current quarantine rules; those that
pass now are loaded with the pipeline's loading strategy and marked replayed, the
others stay in quarantine. Nothing is deleted.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from summit_etl.config import PipelineConfig
from summit_etl.config.quality import QualityConfig
from summit_etl.load.writer import LoadPlan, load
from summit_etl.quality.gate import QualityGate
from summit_etl.store import quarantine as quarantine_store
from summit_etl.store.db import connect

log = logging.getLogger(__name__)


@dataclass
class _StillFailing:
    """Collects rows the rules still reject (they stay in quarantine as they are)."""

    rows: list[dict[str, Any]] = field(default_factory=list)

    def write(self, rows: list[dict[str, Any]], failed_rules: list[list[str]]) -> None:
        self.rows.extend(rows)


@dataclass(frozen=True)
class ReplayResult:
    replay_id: str
    replayed: int
    still_quarantined: int


def replay_quarantine(config: PipelineConfig, run_id: str, summit_url: str) -> ReplayResult:
    with connect(summit_url) as conn:
        pending = quarantine_store.pending(conn, config.id, run_id)
    replay_id = f"replay-{uuid.uuid4()}"
    if not pending:
        return ReplayResult(replay_id, 0, 0)
    rules = [r for r in config.quality.rules if r.action == "quarantine"]
    still = _StillFailing()
    gate = QualityGate(QualityConfig(rules=rules), still)
    # A row position column lets passing rows be matched back to their quarantine ids.
    table = pa.Table.from_pylist(
        [{**record, "_summit_row": i} for i, (_, record) in enumerate(pending)]
    )
    passing = [batch for batch in gate.stream([table]) if batch.num_rows]
    rows = [i for batch in passing for i in batch["_summit_row"].to_pylist()]
    if rows:
        plan = LoadPlan(config.loading.strategy, key=config.merge_key, create_table=False)
        load(
            config.target_url(summit_url),
            config.loading.target_name,
            plan,
            [batch.drop_columns(["_summit_row"]) for batch in passing],
        )
        with connect(summit_url) as conn:
            quarantine_store.mark_replayed(conn, [pending[i][0] for i in rows], replay_id)
    log.info(
        "quarantine replayed",
        extra={
            "pipelineId": config.id,
            "runId": run_id,
            "replayed": len(rows),
            "stillQuarantined": len(still.rows),
        },
    )
    return ReplayResult(replay_id, len(rows), len(still.rows))
