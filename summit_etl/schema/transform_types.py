"""Refuse, when a pipeline is created, transformation steps that cannot handle the type of
a column they read.

Columns Arrow has no lossless type for (arrays, intervals, ranges, network types,
composites, enums, xml...) reach transformations as PostgreSQL's text (see
extract/columns.py). Steps that only move or compare whole values (map, filter on
equality, group by, join, count) keep them exact; steps that compute with a value or order
by it would silently work on its text, so they are refused, naming the column.
"""

from __future__ import annotations

import logging

import psycopg

from summit_etl.config import PipelineConfig
from summit_etl.config.transforms import (
    AggregateTransform,
    DeduplicateTransform,
    FlattenTransform,
    NormalizeTransform,
    TypecastTransform,
)
from summit_etl.extract.columns import (
    SourceColumn,
    flattened_columns,
    source_columns,
    travels_as_text,
)
from summit_etl.extract.postgres import source_relation

log = logging.getLogger(__name__)


class TransformTypeError(ValueError):
    """A transformation step reads a column whose type it cannot handle."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def type_problems(config: PipelineConfig, columns: list[SourceColumn]) -> list[str]:
    """One line per step and column that cannot work; empty when every step fits."""
    lists = flattened_columns(config)
    textual = {c.name: c for c in columns if travels_as_text(c, lists)}
    problems: list[str] = []

    def refuse(index: int, kind: str, name: str, why: str) -> None:
        column = textual[name]
        problems.append(
            f"transformation.transformations[{index}] ({kind}): column {name!r} of type "
            f"{column.sql_type} {why}"
        )

    for index, step in enumerate(config.transformation.transformations):
        if isinstance(step, TypecastTransform):
            for name, cast in step.type_mapping.items():
                if name in textual and cast != "string":
                    refuse(index, "typecast", name, f"cannot be cast to {cast} here")
        elif isinstance(step, NormalizeTransform):
            for name in step.fields:
                if name in textual:
                    refuse(index, "normalize", name, "would be normalized as text, changing it")
        elif isinstance(step, AggregateTransform):
            for name, function in step.aggregations.items():
                if name in textual and function != "count":
                    refuse(index, "aggregate", name, f"has no {function} here")
        elif isinstance(step, DeduplicateTransform):
            if step.order_by in textual:
                refuse(index, "deduplicate", step.order_by, "cannot order rows here")
        elif isinstance(step, FlattenTransform) and step.field in textual:
            refuse(index, "flatten", step.field, "is neither an array nor JSON")
    return problems


def creation_problems(config: PipelineConfig) -> list[str]:
    """What the create path refuses: type problems of the transformation steps. A source
    that cannot be reached now is not a reason to refuse; its first run will say so."""
    if not config.transformation.transformations:
        return []
    try:
        check_transformations(config)
    except TransformTypeError as exc:
        return exc.problems
    except psycopg.OperationalError as exc:
        log.warning("source unreachable: transformation types not checked", extra={
            "pipelineId": config.id, "error": str(exc)})
    return []


def check_transformations(config: PipelineConfig) -> None:
    """For the create path: read the source's column types and raise if a step cannot
    handle one. Steps after a map or derive may name new columns: those are not checked."""
    source = config.source
    columns = source_columns(source.url, source_relation(source), source.table is not None)
    problems = type_problems(config, columns)
    if problems:
        raise TransformTypeError(problems)
