"""The strict base of every configuration model, and checks the models share."""

from __future__ import annotations

from functools import partial

from pydantic import AfterValidator, BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from summit_etl.identifiers import TableName, check_name


class Model(BaseModel):
    """Strict base: camelCase keys as in the SPEC, unknown keys rejected."""

    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True
    )


def sql_name(what: str) -> AfterValidator:
    """For `Annotated[str, sql_name("cdc.trackingColumn")]`: a plain SQL identifier, or an
    error that names the setting."""
    return AfterValidator(partial(check_name, what=what))


def _check_table(qualified: str, what: str) -> str:
    TableName.parse(qualified, what)
    return qualified


def qualified_table(what: str) -> AfterValidator:
    """For `Annotated[str, qualified_table("loading.targetTable")]`: `table` or `schema.table`."""
    return AfterValidator(partial(_check_table, what=what))

