"""Replay a run's quarantined rows once the rules or the data are fixed.

The rows are checked again against the pipeline's current quarantine rules; those that
pass now are loaded with the pipeline's loading strategy (in a transaction that holds
the target's lock) and marked replayed, the others stay in quarantine. Nothing is
deleted, and no row is loaded twice:
- target in the summit database: the rows are marked replayed inside the load's own
  transaction, only if still waiting; a concurrent replay that took them first makes
  this one roll back (ReplayConflict);
- target elsewhere: the rows are claimed first (committed), then loaded, then marked
  replayed. A crash between the claim and the mark leaves them `replaying`: never
  loaded twice, and visible to the operator, who decides.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pyarrow as pa
from psycopg.conninfo import conninfo_to_dict

from summit_etl.config import PipelineConfig
from summit_etl.config.quality import QualityConfig
from summit_etl.load.target import execute
from summit_etl.load.writer import LoadPlan, load
from summit_etl.quality.gate import QualityGate
from summit_etl.store import quarantine as quarantine_store
from summit_etl.store.db import connect
from summit_etl.store.quarantine import Held, decode_records

log = logging.getLogger(__name__)

_ROW = "_summit_row"


class ReplayConflict(RuntimeError):
    """Another replay of the same rows committed first; this one changed nothing."""


@dataclass
class _StillFailing:
    """Counts rows the rules still reject (they stay in quarantine as they are)."""

    rows: int = 0

    def write(
        self, rows: list[dict[str, Any]], failed_rules: list[list[str]], schema: pa.Schema
    ) -> None:
        self.rows += len(rows)


@dataclass(frozen=True)
class ReplayResult:
    replay_id: str
    replayed: int
    still_quarantined: int


@dataclass
class _Checked:
    passing: list[pa.Table] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    still: int = 0


def same_database(a: str, b: str) -> bool:
    """Whether two connection URLs name one database (same host, port and name)."""
    x, y = conninfo_to_dict(a), conninfo_to_dict(b)
    return all(
        (x.get(k) or d) == (y.get(k) or d)
        for k, d in (("host", "localhost"), ("port", "5432"), ("dbname", ""))
    )


def replay_quarantine(config: PipelineConfig, run_id: str, summit_url: str) -> ReplayResult:
    """Load the run's waiting rows that pass the current quarantine rules. Raises
    ReplayConflict when a concurrent replay of the same rows committed first."""
    replay_id = f"replay-{uuid.uuid4()}"
    target_url = config.target_url(summit_url)
    in_summit = same_database(target_url, summit_url)
    with connect(summit_url) as conn:
        held = (
            quarantine_store.waiting(conn, config.id, run_id)
            if in_summit
            else quarantine_store.claim(conn, config.id, run_id, replay_id)
        )
    if not held:
        return ReplayResult(replay_id, 0, 0)
    try:
        checked = _recheck(config, held)
        if checked.ids:
            plan = LoadPlan(config.loading.strategy, key=config.merge_key, create_table=False)
            load(
                target_url,
                config.loading.target_name,
                plan,
                checked.passing,
                before_commit=_mark_in_load(checked.ids, replay_id) if in_summit else None,
            )
    except BaseException:
        if not in_summit:
            with connect(summit_url) as conn:
                quarantine_store.release(conn, [h.id for h in held], replay_id)
        raise
    if not in_summit:
        with connect(summit_url) as conn, conn.transaction():
            conn.execute(quarantine_store.mark_replayed_sql(checked.ids, replay_id, claimed=True))
            quarantine_store.release(conn, [h.id for h in held], replay_id)
    log.info(
        "quarantine replayed",
        extra={
            "pipelineId": config.id,
            "runId": run_id,
            "replayId": replay_id,
            "replayed": len(checked.ids),
            "stillQuarantined": checked.still,
        },
    )
    return ReplayResult(replay_id, len(checked.ids), checked.still)


def _recheck(config: PipelineConfig, held: list[Held]) -> _Checked:
    """The held rows that pass the pipeline's current quarantine rules, with their ids."""
    rules = [r for r in config.quality.rules if r.action == "quarantine"]
    still = _StillFailing()
    gate = QualityGate(QualityConfig(rules=rules), still)
    checked = _Checked()
    by_schema: dict[bytes | None, list[Held]] = {}
    for row in held:
        key = None if row.schema is None else row.schema.serialize().to_pybytes()
        by_schema.setdefault(key, []).append(row)
    for rows in by_schema.values():
        table = decode_records([r.record for r in rows], rows[0].schema)
        # A row position column matches passing rows back to their quarantine ids.
        table = table.append_column(_ROW, pa.array(range(len(rows)), pa.int64()))
        for batch in gate.stream([table]):
            checked.ids.extend(rows[i].id for i in batch[_ROW].to_pylist())
            checked.passing.append(batch.drop_columns([_ROW]))
    checked.still = still.rows
    return checked


def _mark_in_load(ids: list[int], replay_id: str) -> Callable[[psycopg.Connection], None]:
    def mark(conn: psycopg.Connection) -> None:
        marked = execute(conn, quarantine_store.mark_replayed_sql(ids, replay_id, claimed=False))
        if len(marked) != len(ids):
            raise ReplayConflict(
                f"{len(ids) - len(marked)} of {len(ids)} rows were replayed by a concurrent "
                "replay first; nothing was loaded by this one"
            )

    return mark
