"""The target side of CDC: the target table, its change log, and the committed offsets.

The offset of record lives in the target database (`summit_cdc_offsets`, in the target
table's schema), because only there can it commit in the same transaction as the rows
and the change log it describes; `etl_cdc_watermarks` in the summit database mirrors it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import psycopg
import pyarrow as pa
from psycopg import sql

from summit_etl.cdc.changes import Offset
from summit_etl.config import LoadStrategy, PipelineConfig
from summit_etl.identifiers import TableName, check_name
from summit_etl.load import target as targets
from summit_etl.load.target import SCD2_COLUMNS
from summit_etl.load.writer import LoadError
from summit_etl.schema import contract
from summit_etl.schema.contract import SchemaChange
from summit_etl.timeouts import timed_url

_log = logging.getLogger("summit_etl.cdc")

OFFSETS_TABLE = "summit_cdc_offsets"
CHANGES_SUFFIX = "_changes"


@dataclass(frozen=True)
class CdcTarget:
    url: str
    table: TableName
    log: TableName  # `<target>_changes`
    offsets: TableName
    columns: list[str]  # target columns that the source's rows carry
    key: list[str]
    strategy: LoadStrategy
    include_old: bool
    schema_changes: tuple[SchemaChange, ...] = ()  # found (and acted on) when prepared


def prepare(config: PipelineConfig, target_url: str, source_schema: pa.Schema) -> CdcTarget:
    """Create what is missing (target if configured, change log, offsets) and describe it."""
    table = config.loading.target_name
    scd2 = config.loading.strategy is LoadStrategy.scd_type2
    changes: list[SchemaChange] = []
    with targets.connect(target_url) as conn:
        columns = targets.inspect(conn, table)
        if columns is not None:  # the source's schema against the target's: its contract
            mode = contract.mode_for(config.schema_changes, conn, table)
            changes = contract.reconcile(conn, table, columns, source_schema, mode, scd2)
            conn.commit()
            columns = targets.inspect(conn, table) if changes else columns
        if columns is None:
            if not config.loading.create_table:
                raise LoadError(
                    f"target table {table} does not exist; create it or set "
                    "loading.createTable: true"
                )
            # An append-only target keeps every version of a key: no key constraint.
            appends = config.loading.strategy in (LoadStrategy.append_only, LoadStrategy.bulk)
            key = [] if appends else config.merge_key
            targets.create(conn, table, source_schema, key, scd2)
            conn.commit()
            columns = targets.inspect(conn, table) or []
    names = [c.name for c in columns if not (scd2 and c.name in SCD2_COLUMNS)]
    missing = [k for k in config.merge_key if k not in names]
    if missing:
        raise LoadError(f"key column(s) {missing} are not columns of the target {table}")
    target = CdcTarget(
        url=target_url,
        table=table,
        log=table.with_suffix(CHANGES_SUFFIX),
        offsets=TableName(table.schema, OFFSETS_TABLE),
        columns=[n for n in names if n in source_schema.names],
        key=config.merge_key,
        strategy=config.loading.strategy,
        include_old=config.cdc.include_old_values if config.cdc else True,
        schema_changes=tuple(changes),
    )
    with psycopg.connect(target_url, autocommit=True) as conn:
        _create_bookkeeping(conn, target)
    return target


def _create_bookkeeping(conn: psycopg.Connection, target: CdcTarget) -> None:
    conn.execute(
        sql.SQL(
            """
            CREATE TABLE IF NOT EXISTS {log} (
                id              bigserial PRIMARY KEY,
                changed_at      timestamptz NOT NULL,
                operation       text NOT NULL,
                primary_key     jsonb NOT NULL,
                old_values      jsonb,
                new_values      jsonb,
                source_position text NOT NULL UNIQUE,
                run_id          text,
                applied_at      timestamptz NOT NULL DEFAULT now()
            )
            """
        ).format(log=target.log.ident)
    )
    # The runbook archives the change log by `changed_at`.
    index = check_name(f"{target.log.name}_changed_at"[:63], "index")
    conn.execute(
        sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (changed_at)").format(
            sql.Identifier(index), target.log.ident
        )
    )
    conn.execute(
        sql.SQL(
            """
            CREATE TABLE IF NOT EXISTS {} (
                pipeline_id   text NOT NULL,
                source_table  text NOT NULL,
                position      text,
                lsn           text,
                snapshot_done boolean NOT NULL DEFAULT false,
                run_id        text,
                updated_at    timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (pipeline_id, source_table)
            )
            """
        ).format(target.offsets.ident)
    )
    # Added after the first release: tables created before it gain them here.
    conn.execute(
        sql.SQL(
            "ALTER TABLE {} ADD COLUMN IF NOT EXISTS generation text, "
            "ADD COLUMN IF NOT EXISTS capture text, ADD COLUMN IF NOT EXISTS snapshot text"
        ).format(target.offsets.ident)
    )


def _offsets(config: PipelineConfig) -> TableName:
    return TableName(config.loading.target_name.schema, OFFSETS_TABLE)


def _exists(conn: psycopg.Connection, table: TableName) -> bool:
    row = conn.execute("SELECT to_regclass(%s)", (table.ident.as_string(conn),)).fetchone()
    return row is not None and row[0] is not None


def _has_rows(conn: psycopg.Connection, table: TableName) -> bool:
    row = conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(table.ident)).fetchone()
    return bool(row and row[0])


def committed_offset(config: PipelineConfig, summit_url: str) -> Offset | None:
    """The offset the target committed; None when the pipeline must start from nothing:
    before its first batch, or when the target is gone or was emptied while the source
    has rows (the offset then describes rows that are no longer there: snapshot again)."""
    offsets = _offsets(config)
    table = config.loading.target_name
    url = timed_url(config.target_url(summit_url), config.timeouts)
    with psycopg.connect(url, autocommit=True) as conn:
        if not _exists(conn, offsets):
            return None
        # As a document, so that offsets tables from before a column was added still read.
        row = conn.execute(
            sql.SQL(
                "SELECT to_jsonb(o) FROM {} AS o WHERE pipeline_id = %s AND source_table = %s"
            ).format(offsets.ident),
            (config.id, config.source.label),
        ).fetchone()
        if row is None:
            return None
        reason = None
        if not _exists(conn, table):
            reason = "the target table does not exist"
        elif not _has_rows(conn, table) and _source_has_rows(config):
            reason = "the target table is empty but the source is not"
    if reason is not None:
        _log.warning(
            "CDC offset set aside: starting again with a snapshot",
            extra={"pipelineId": config.id, "target": str(table), "reason": reason},
        )
        return None
    return _offset(row[0])


def _offset(doc: dict[str, Any]) -> Offset:
    return Offset(
        value=doc.get("position"),
        lsn=doc.get("lsn"),
        snapshot_done=bool(doc.get("snapshot_done")),
        generation=doc.get("generation"),
        capture=doc.get("capture"),
        snapshot=doc.get("snapshot"),
    )


def _source_has_rows(config: PipelineConfig) -> bool:
    table = config.source.table_name
    if table is None:
        return False
    with psycopg.connect(timed_url(config.source.url, config.timeouts), autocommit=True) as conn:
        return _has_rows(conn, table)


def forget_offset(config: PipelineConfig, summit_url: str) -> bool:
    """The pipeline is deleted: drop its offset row, so a pipeline created later with the
    same id starts with a snapshot. True when there was one."""
    offsets = _offsets(config)
    url = timed_url(config.target_url(summit_url), config.timeouts)
    with psycopg.connect(url, autocommit=True) as conn:
        if not _exists(conn, offsets):
            return False
        cursor = conn.execute(
            sql.SQL("DELETE FROM {} WHERE pipeline_id = %s").format(offsets.ident), (config.id,)
        )
    return cursor.rowcount > 0


def write_offset(
    conn: psycopg.Connection,
    target: CdcTarget,
    pipeline_id: str,
    source_table: str,
    offset: Offset,
    run_id: str,
) -> None:
    """Part of the apply transaction: the offset commits with the rows it covers."""
    conn.execute(
        sql.SQL(
            """
            INSERT INTO {} (pipeline_id, source_table, position, lsn, snapshot_done, run_id,
                            generation, capture, snapshot)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (pipeline_id, source_table) DO UPDATE
               SET position = EXCLUDED.position, lsn = EXCLUDED.lsn,
                   snapshot_done = EXCLUDED.snapshot_done, run_id = EXCLUDED.run_id,
                   generation = EXCLUDED.generation, capture = EXCLUDED.capture,
                   snapshot = EXCLUDED.snapshot, updated_at = now()
            """
        ).format(target.offsets.ident),
        (
            pipeline_id,
            source_table,
            offset.value,
            offset.lsn,
            offset.snapshot_done,
            run_id,
            offset.generation,
            offset.capture,
            offset.snapshot,
        ),
    )
