"""The strict base of every configuration model, and checks the models share."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from summit_etl.identifiers import check_name


class Model(BaseModel):
    """Strict base: camelCase keys as in the SPEC, unknown keys rejected."""

    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True
    )


def identifier_list(names: list[str], what: str) -> list[str]:
    return [check_name(n, what) for n in names]


def check_select(query: str, what: str) -> str:
    """`query` if it is one SELECT (or WITH ... SELECT) statement."""
    head = query.lstrip().split(None, 1)[0].lower() if query.strip() else ""
    if head not in ("select", "with") or ";" in query.rstrip().rstrip(";"):
        raise ValueError(f"{what} must be a single SELECT (or WITH ... SELECT)")
    return query
