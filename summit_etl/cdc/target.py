"""The target side of CDC: the target table, its change log, and the committed offsets.

The offset of record lives in the target database (`summit_cdc_offsets`, in the target
table's schema), because only there can it commit in the same transaction as the rows
and the change log it describes; `etl_cdc_watermarks` in the summit database mirrors it.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
import pyarrow as pa
from psycopg import sql

from summit_etl.cdc.changes import Offset
from summit_etl.config import LoadStrategy, PipelineConfig
from summit_etl.extract.postgres import adbc_connection
from summit_etl.identifiers import TableName, check_name
from summit_etl.load import target as targets
from summit_etl.load.target import SCD2_COLUMNS
from summit_etl.load.writer import LoadError
from summit_etl.schema import contract
from summit_etl.schema.contract import SchemaChange

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
    with adbc_connection(target_url) as conn:
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
            targets.create(conn, table, source_schema, config.merge_key, scd2)
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


def committed_offset(config: PipelineConfig, summit_url: str) -> Offset | None:
    """The offset the target committed; None before its first batch was ever applied."""
    offsets = TableName(config.loading.target_name.schema, OFFSETS_TABLE)
    with psycopg.connect(config.target_url(summit_url), autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass(%s)", (offsets.ident.as_string(conn),)).fetchone()
        if exists is None or exists[0] is None:
            return None
        row = conn.execute(
            sql.SQL(
                "SELECT position, lsn, snapshot_done FROM {} "
                "WHERE pipeline_id = %s AND source_table = %s"
            ).format(offsets.ident),
            (config.id, config.source.label),
        ).fetchone()
    return Offset(value=row[0], lsn=row[1], snapshot_done=row[2]) if row else None


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
            INSERT INTO {} (pipeline_id, source_table, position, lsn, snapshot_done, run_id)
            VALUES (%s, %s, %s, %s, %s, %s)
            ON CONFLICT (pipeline_id, source_table) DO UPDATE
               SET position = EXCLUDED.position, lsn = EXCLUDED.lsn,
                   snapshot_done = EXCLUDED.snapshot_done, run_id = EXCLUDED.run_id,
                   updated_at = now()
            """
        ).format(target.offsets.ident),
        (pipeline_id, source_table, offset.value, offset.lsn, offset.snapshot_done, run_id),
    )
