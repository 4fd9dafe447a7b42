"""The transformation steps of SPEC §2, applied in order to every batch."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from summit_etl.config.base import Model, check_select, qualified_table, sql_name


class MapTransform(Model):
    type: Literal["map"]
    field_mapping: dict[
        Annotated[str, sql_name("map target field")], Annotated[str, sql_name("map source field")]
    ]
    include_unmapped: bool = False


class FilterTransform(Model):
    type: Literal["filter"]
    expression: str = Field(min_length=1)


CastType = Literal["int", "float", "string", "bool", "date", "timestamp", "decimal", "json"]


class TypecastTransform(Model):
    type: Literal["typecast"]
    type_mapping: dict[Annotated[str, sql_name("typecast field")], CastType]
    on_error: Literal["fail", "null"] = "fail"


NormalizeOp = Literal["trim", "lower", "upper", "empty_to_null", "date", "timestamp", "number"]


class NormalizeTransform(Model):
    type: Literal["normalize"]
    fields: dict[Annotated[str, sql_name("normalize field")], list[NormalizeOp]]


class DeriveTransform(Model):
    type: Literal["derive"]
    columns: dict[Annotated[str, sql_name("derived column")], str]


AggregateFunction = Literal["sum", "avg", "count", "min", "max"]


class AggregateTransform(Model):
    type: Literal["aggregate"]
    group_by: list[Annotated[str, sql_name("aggregate groupBy")]] = Field(min_length=1)
    aggregations: dict[Annotated[str, sql_name("aggregate field")], AggregateFunction] = Field(
        min_length=1
    )


class JoinTransform(Model):
    type: Literal["join"]
    url: str | None = None  # defaults to the source's url
    table: Annotated[str, qualified_table("join.table")] | None = None
    query: str | None = None
    on: list[Annotated[str, sql_name("join column")]] = Field(min_length=1)
    # lookup columns to add; default all but the keys
    columns: list[Annotated[str, sql_name("join column")]] | None = None
    how: Literal["left", "inner"] = "left"

    @model_validator(mode="after")
    def _table_xor_query(self) -> JoinTransform:
        if (self.table is None) == (self.query is None):
            raise ValueError("join needs exactly one of 'table' or 'query'")
        if self.query is not None:
            check_select(self.query, "join.query")
        return self


class FlattenTransform(Model):
    type: Literal["flatten"]
    field: Annotated[str, sql_name("flatten field")]
    # explode: one row per array element; expand: object keys become `<field>_<key>` columns
    mode: Literal["explode", "expand"] = "explode"


class DeduplicateTransform(Model):
    type: Literal["deduplicate"]
    keys: list[Annotated[str, sql_name("deduplicate key")]] = Field(min_length=1)
    # keep the row with the greatest value; default: the last seen
    order_by: Annotated[str, sql_name("deduplicate orderBy")] | None = None


class CustomTransform(Model):
    type: Literal["custom"]
    function: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")] = Field(
        description="dotted path 'package.module:function' taking and returning a DataFrame"
    )


Transformation = Annotated[
    MapTransform
    | FilterTransform
    | TypecastTransform
    | NormalizeTransform
    | DeriveTransform
    | AggregateTransform
    | JoinTransform
    | FlattenTransform
    | DeduplicateTransform
    | CustomTransform,
    Field(discriminator="type"),
]


class TransformationConfig(Model):
    transformations: list[Transformation] = Field(default_factory=list)
