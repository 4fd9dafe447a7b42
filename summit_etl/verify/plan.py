"""What a verification compares: which source and target columns, keyed how, over which rows.

A pipeline is verifiable when each target row should equal one source row: no
transformation steps, or only `map` steps that rename columns. Everything else (filters,
derived columns, aggregates, joins, custom code) changes rows in ways a comparison with the
source cannot undo, and is refused with the step named.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from summit_etl.config import LoadStrategy, PipelineConfig
from summit_etl.config.transforms import MapTransform
from summit_etl.extract.postgres import primary_key, source_relation
from summit_etl.identifiers import TableName
from summit_etl.load.target import SCD2_COLUMNS


class VerifyUnsupported(ValueError):
    """The pipeline's configuration makes a row-by-row comparison with its source impossible."""


@dataclass(frozen=True)
class Side:
    """One side of the comparison: a relation and, per compared column, its expression."""

    url: str
    relation: sql.Composable
    keys: list[sql.Composable]  # in key order; the first one partitions the key space
    columns: list[sql.Composable]  # in the order of `VerifyPlan.columns`
    where: sql.Composable | None = None


@dataclass(frozen=True)
class VerifyPlan:
    source: Side
    target: Side
    key: list[str]  # target column names
    columns: list[str]  # target column names compared (keys included)


def _lineage(config: PipelineConfig, source_columns: list[str]) -> dict[str, str]:
    """Each column the steps put out → the source column it carries. Raises when a step does
    more than select and rename."""
    lineage = {c: c for c in source_columns}
    for position, step in enumerate(config.transformation.transformations, start=1):
        if not isinstance(step, MapTransform):
            raise VerifyUnsupported(
                f"pipeline {config.id!r} cannot be verified against its source: transformation "
                f"step {position} ({step.type}) changes rows, so target rows are not source rows; "
                "verify compares pipelines whose steps only select and rename columns (map)"
            )
        renamed = {t: lineage[s] for t, s in step.field_mapping.items() if s in lineage}
        if step.include_unmapped:
            used = set(step.field_mapping.values())
            renamed |= {name: origin for name, origin in lineage.items() if name not in used}
        lineage = renamed
    return lineage


def _columns(url: str, relation: sql.Composable) -> list[str] | None:
    """The relation's column names; None when it does not exist."""
    with psycopg.connect(url) as conn:
        try:
            cursor = conn.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(relation))
        except psycopg.errors.UndefinedTable:
            return None
        return [c.name for c in cursor.description or []]


def plan(config: PipelineConfig, summit_url: str) -> VerifyPlan:
    """The comparison for `config`, from the columns both sides have today."""
    target_table: TableName = config.loading.target_name
    target_url = config.target_url(summit_url)
    source_rel = sql.SQL("(SELECT * FROM {}) AS s").format(source_relation(config.source))
    source_cols = _columns(config.source.url, source_relation(config.source))
    if source_cols is None:
        raise VerifyUnsupported(f"source table {config.source.label} does not exist")
    lineage = _lineage(config, source_cols)
    target_cols = _columns(target_url, target_table.ident)
    if target_cols is None:
        raise VerifyUnsupported(f"target table {target_table} does not exist yet: run the pipeline")
    scd2 = config.loading.strategy is LoadStrategy.scd_type2

    compared = [
        c for c in target_cols if c in lineage and not (scd2 and c in SCD2_COLUMNS)
    ]
    key = config.merge_key
    if not key and config.source.table_name is not None:
        source_key = primary_key(config.source.url, config.source.table_name)
        reverse = {lineage[c]: c for c in compared}
        key = [reverse[k] for k in source_key if k in reverse]
    if not key:
        raise VerifyUnsupported(
            f"pipeline {config.id!r} has no key to compare rows by: set loading.upsertKey "
            "or give the source a primary key"
        )
    missing_keys = [k for k in key if k not in compared]
    if missing_keys:
        raise VerifyUnsupported(
            f"key column(s) {missing_keys} are not in both the source and the target {target_table}"
        )

    def side(url: str, relation: sql.Composable, expr: dict[str, sql.Composable]) -> Side:
        return Side(url, relation, [expr[k] for k in key], [expr[c] for c in compared])

    source_side = side(
        config.source.url,
        source_rel,
        {c: sql.SQL("s.{}").format(sql.Identifier(lineage[c])) for c in compared},
    )
    target_side = side(
        target_url,
        sql.SQL("{} AS s").format(target_table.ident),
        {c: sql.SQL("s.{}").format(sql.Identifier(c)) for c in compared},
    )
    if scd2:  # history rows are the target's own; only current versions mirror the source
        target_side = Side(
            target_side.url,
            target_side.relation,
            target_side.keys,
            target_side.columns,
            sql.SQL("s.is_current"),
        )
    return VerifyPlan(source_side, target_side, key, compared)
