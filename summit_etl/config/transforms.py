"""The transformation steps of SPEC §2, applied in order to every batch."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from summit_etl.config.base import Model, check_select, identifier_list
from summit_etl.identifiers import TableName, check_name


class MapTransform(Model):
    type: Literal["map"]
    field_mapping: dict[str, str]
    include_unmapped: bool = False

    @field_validator("field_mapping")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        for target, source in value.items():
            check_name(target, "map target field")
            check_name(source, "map source field")
        return value


class FilterTransform(Model):
    type: Literal["filter"]
    expression: str = Field(min_length=1)


CastType = Literal["int", "float", "string", "bool", "date", "timestamp", "decimal", "json"]


class TypecastTransform(Model):
    type: Literal["typecast"]
    type_mapping: dict[str, CastType]
    on_error: Literal["fail", "null"] = "fail"

    @field_validator("type_mapping")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        for field in value:
            check_name(field, "typecast field")
        return value


NormalizeOp = Literal["trim", "lower", "upper", "empty_to_null", "date", "timestamp", "number"]


class NormalizeTransform(Model):
    type: Literal["normalize"]
    fields: dict[str, list[NormalizeOp]]

    @field_validator("fields")
    @classmethod
    def _names(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for field in value:
            check_name(field, "normalize field")
        return value


class DeriveTransform(Model):
    type: Literal["derive"]
    columns: dict[str, str]

    @field_validator("columns")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        for field in value:
            check_name(field, "derived column")
        return value


AggregateFunction = Literal["sum", "avg", "count", "min", "max"]


class AggregateTransform(Model):
    type: Literal["aggregate"]
    group_by: list[str] = Field(min_length=1)
    aggregations: dict[str, AggregateFunction] = Field(min_length=1)

    @field_validator("group_by")
    @classmethod
    def _group(cls, value: list[str]) -> list[str]:
        return identifier_list(value, "aggregate groupBy")

    @field_validator("aggregations")
    @classmethod
    def _aggs(cls, value: dict[str, str]) -> dict[str, str]:
        for field in value:
            check_name(field, "aggregate field")
        return value


class JoinTransform(Model):
    type: Literal["join"]
    url: str | None = None  # defaults to the source's url
    table: str | None = None
    query: str | None = None
    on: list[str] = Field(min_length=1)
    columns: list[str] | None = None  # lookup columns to add; default all but the keys
    how: Literal["left", "inner"] = "left"

    @field_validator("table")
    @classmethod
    def _table(cls, value: str | None) -> str | None:
        if value is not None:
            TableName.parse(value, "join.table")
        return value

    @field_validator("on", "columns")
    @classmethod
    def _cols(cls, value: list[str] | None) -> list[str] | None:
        return identifier_list(value, "join column") if value is not None else None

    @model_validator(mode="after")
    def _table_xor_query(self) -> JoinTransform:
        if (self.table is None) == (self.query is None):
            raise ValueError("join needs exactly one of 'table' or 'query'")
        if self.query is not None:
            check_select(self.query, "join.query")
        return self


class FlattenTransform(Model):
    type: Literal["flatten"]
    field: str
    # explode: one row per array element; expand: object keys become `<field>_<key>` columns
    mode: Literal["explode", "expand"] = "explode"

    @field_validator("field")
    @classmethod
    def _field(cls, value: str) -> str:
        return check_name(value, "flatten field")


class DeduplicateTransform(Model):
    type: Literal["deduplicate"]
    keys: list[str] = Field(min_length=1)
    order_by: str | None = None  # keep the row with the greatest value; default: the last seen

    @field_validator("keys")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        return identifier_list(value, "deduplicate key")

    @field_validator("order_by")
    @classmethod
    def _order(cls, value: str | None) -> str | None:
        return check_name(value, "deduplicate orderBy") if value is not None else None


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
