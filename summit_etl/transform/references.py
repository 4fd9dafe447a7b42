"""Column references of the configured steps, checked before a pipeline is stored.

Expressions are parsed when a configuration is validated; this module goes one step
further when the source answers: it follows the source's columns through the steps
(a map renames them, derive adds some, aggregate keeps its keys and fields) and names
every step that reads a column its rows will not have. Where a step's output cannot be
known without running it (custom, flatten's expand, a join without `columns`), the
steps after it are left to the run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import psycopg
from psycopg import sql

from summit_etl.config import (
    AggregateTransform,
    DeduplicateTransform,
    DeriveTransform,
    FilterTransform,
    FlattenTransform,
    JoinTransform,
    MapTransform,
    NormalizeTransform,
    PipelineConfig,
    SourceConfig,
    Transformation,
    TypecastTransform,
)
from summit_etl.extract.postgres import source_relation
from summit_etl.transform.expressions import parse_expression

log = logging.getLogger(__name__)

# A create must not hang on a source that does not answer.
_CONNECT_TIMEOUT_SECONDS = 5
_STATEMENT_TIMEOUT_MS = 5_000


def _reads(spec: Transformation) -> list[str]:
    """The columns a step reads from the rows it is given."""
    if isinstance(spec, MapTransform):
        return list(spec.field_mapping.values())
    if isinstance(spec, FilterTransform):
        return list(parse_expression(spec.expression).columns)
    if isinstance(spec, TypecastTransform):
        return list(spec.type_mapping)
    if isinstance(spec, NormalizeTransform):
        return list(spec.fields)
    if isinstance(spec, AggregateTransform):
        return [*spec.group_by, *spec.aggregations]
    if isinstance(spec, JoinTransform):
        return list(spec.on)
    if isinstance(spec, FlattenTransform):
        return [spec.field]
    if isinstance(spec, DeduplicateTransform):
        return [*spec.keys, *([spec.order_by] if spec.order_by else [])]
    return []  # derive reads column by column (see _derive); custom reads what it likes


def _derive(spec: DeriveTransform, columns: list[str]) -> tuple[list[str], list[str]]:
    """Missing columns and the columns after a derive, whose columns may use earlier ones."""
    missing: list[str] = []
    for name, text in spec.columns.items():
        missing += [c for c in parse_expression(text).columns if c not in columns]
        columns = columns if name in columns else [*columns, name]
    return missing, columns


def _after(spec: Transformation, columns: list[str]) -> list[str] | None:
    """The columns a step hands on, or None when only running it would tell."""
    if isinstance(spec, MapTransform):
        used = set(spec.field_mapping.values())
        rest = [c for c in columns if c not in used] if spec.include_unmapped else []
        return [*spec.field_mapping, *rest]
    if isinstance(spec, AggregateTransform):
        return [*spec.group_by, *spec.aggregations]
    if isinstance(spec, JoinTransform):
        return None if spec.columns is None else [*columns, *spec.columns]
    if isinstance(spec, FlattenTransform) and spec.mode == "expand":
        return None
    if isinstance(spec, DeriveTransform):
        return _derive(spec, columns)[1]
    if spec.type == "custom":
        return None
    return columns


def check_steps(specs: Sequence[Transformation], columns: Sequence[str]) -> list[str]:
    """One problem per step that reads a column its rows will not have, when the first
    step is given `columns`."""
    problems: list[str] = []
    known: list[str] | None = list(columns)
    for index, spec in enumerate(specs):
        if known is None:
            break
        if isinstance(spec, DeriveTransform):
            missing = _derive(spec, known)[0]
        else:
            missing = [c for c in _reads(spec) if c not in known]
        if missing:
            names = ", ".join(repr(c) for c in dict.fromkeys(missing))
            problems.append(
                f"transformation step {index + 1} ({spec.type}): column(s) {names} will not "
                f"be in its rows (they have: {', '.join(known) or 'none'})"
            )
        known = _after(spec, known)
    return problems


def source_columns(source: SourceConfig) -> list[str] | None:
    """The source's column names, or None when the source does not answer (the check is
    then left to the first run, and the reason is logged)."""
    query = sql.SQL("SELECT * FROM {} LIMIT 0").format(source_relation(source))
    try:
        with psycopg.connect(source.url, connect_timeout=_CONNECT_TIMEOUT_SECONDS) as conn:
            conn.read_only = True  # the transaction below reads, whatever the query calls
            conn.execute(
                sql.SQL("SET LOCAL statement_timeout = {}").format(
                    sql.Literal(_STATEMENT_TIMEOUT_MS)
                )
            )
            cursor = conn.execute(query)
            columns = [column.name for column in cursor.description or []]
            conn.rollback()
            return columns
    except psycopg.Error as exc:
        log.warning(
            "the source did not answer; column references are checked at the first run",
            extra={"source": source.label, "error": str(exc)},
        )
        return None


def check_against_source(config: PipelineConfig) -> list[str]:
    """Problems with the steps' column references, against the source's columns when the
    source answers; none when it does not."""
    specs = config.transformation.transformations
    if not specs:
        return []
    columns = source_columns(config.source)
    return [] if columns is None else check_steps(specs, columns)
