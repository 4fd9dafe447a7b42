"""The transformation steps of SPEC §2, applied in order to every batch.

A step is written flat (`{type: map, fieldMapping: ...}`) or as the original system wrote
it, its settings nested (`{type: map, name: rename, order: 1, config: {fieldMapping: ...}}`);
steps with an `order` run in that order, in the places the ordered steps hold, and
steps without one keep their place.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from summit_etl.config.base import Model, qualified_table, sql_name
from summit_etl.config.environment import ConnectionUrl
from summit_etl.config.policy import CUSTOM_MODULES_SETTING, policy_of
from summit_etl.config.select import check_select


def _check_expression(text: str) -> str:
    """Expressions are parsed when the configuration is validated, not at the first run."""
    from summit_etl.transform.expressions import parse_expression  # transform imports config

    parse_expression(text)
    return text


Expression = Annotated[str, Field(min_length=1), AfterValidator(_check_expression)]


class Step(Model):
    """What every step may carry besides its settings: a label and a place in the order."""

    name: str | None = None
    order: int | None = None


class MapTransform(Step):
    type: Literal["map"]
    field_mapping: dict[
        Annotated[str, sql_name("map target field")], Annotated[str, sql_name("map source field")]
    ]
    include_unmapped: bool = False


class FilterTransform(Step):
    type: Literal["filter"]
    expression: Expression


CastType = Literal["int", "float", "string", "bool", "date", "timestamp", "decimal", "json"]


class TypecastTransform(Step):
    type: Literal["typecast"]
    type_mapping: dict[Annotated[str, sql_name("typecast field")], CastType]
    on_error: Literal["fail", "null"] = "fail"


NormalizeOp = Literal["trim", "lower", "upper", "empty_to_null", "date", "timestamp", "number"]


class NormalizeTransform(Step):
    type: Literal["normalize"]
    fields: dict[Annotated[str, sql_name("normalize field")], list[NormalizeOp]]


class DeriveTransform(Step):
    type: Literal["derive"]
    columns: dict[Annotated[str, sql_name("derived column")], Expression]


AggregateFunction = Literal["sum", "avg", "count", "min", "max"]


class AggregateTransform(Step):
    type: Literal["aggregate"]
    group_by: list[Annotated[str, sql_name("aggregate groupBy")]] = Field(min_length=1)
    aggregations: dict[Annotated[str, sql_name("aggregate field")], AggregateFunction] = Field(
        min_length=1
    )


class JoinTransform(Step):
    type: Literal["join"]
    url: ConnectionUrl | None = None  # defaults to the source's url
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


class FlattenTransform(Step):
    type: Literal["flatten"]
    field: Annotated[str, sql_name("flatten field")]
    # explode: one row per array element; expand: object keys become `<field>_<key>` columns
    mode: Literal["explode", "expand"] = "explode"


class DeduplicateTransform(Step):
    type: Literal["deduplicate"]
    keys: list[Annotated[str, sql_name("deduplicate key")]] = Field(min_length=1)
    # keep the row with the greatest value; default: the last seen
    order_by: Annotated[str, sql_name("deduplicate orderBy")] | None = None


class CustomTransform(Step):
    type: Literal["custom"]
    function: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")] = Field(
        description="dotted path 'package.module:function' taking and returning a DataFrame"
    )

    @field_validator("function")
    @classmethod
    def _allowed(cls, value: str, info: ValidationInfo) -> str:
        policy = policy_of(info.context)
        if not policy.allows_function(value):
            allowed = ", ".join(policy.custom_modules) or "none"
            raise ValueError(
                f"custom step function {value!r} is not a public function of the modules "
                f"that pipelines created over the API may call (allowed: {allowed}; the "
                f"operator sets {CUSTOM_MODULES_SETTING}, or defines the pipeline in a file "
                "of the pipelines folder)"
            )
        return value


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


def _flat(step: Any) -> Any:
    """A nested step (`{type, name?, order?, config: {...}}`) with its settings lifted up."""
    if not (isinstance(step, dict) and isinstance(step.get("config"), dict)):
        return step
    outer = {key: value for key, value in step.items() if key != "config"}
    clashes = sorted(set(outer) & set(step["config"]))
    if clashes:
        raise ValueError(
            f"step {step.get('name') or step.get('type')!r} sets {', '.join(clashes)} both "
            "beside and inside 'config'"
        )
    return {**outer, **step["config"]}


class TransformationConfig(Model):
    transformations: list[Transformation] = Field(default_factory=list)

    @field_validator("transformations", mode="before")
    @classmethod
    def _nested_shape(cls, steps: Any) -> Any:
        return [_flat(step) for step in steps] if isinstance(steps, list) else steps

    @field_validator("transformations")
    @classmethod
    def _in_order(cls, steps: list[Transformation]) -> list[Transformation]:
        """Ordered steps, sorted by `order` (ties keep their order), fill the places that
        ordered steps hold; the others stay where they were written."""
        places = [i for i, step in enumerate(steps) if step.order is not None]
        ordered = sorted((steps[i] for i in places), key=lambda step: step.order or 0)
        result = list(steps)
        for place, step in zip(places, ordered, strict=True):
            result[place] = step
        return result
