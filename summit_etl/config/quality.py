"""The quality block of SPEC §2 and §5: rules, dimensions and weights."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from summit_etl.config.base import Model


class Dimension(StrEnum):
    completeness = "completeness"
    accuracy = "accuracy"
    consistency = "consistency"
    timeliness = "timeliness"
    validity = "validity"
    uniqueness = "uniqueness"


class QualityWeights(Model):
    completeness: float = Field(default=20, ge=0)
    accuracy: float = Field(default=25, ge=0)
    consistency: float = Field(default=15, ge=0)
    timeliness: float = Field(default=15, ge=0)
    validity: float = Field(default=15, ge=0)
    uniqueness: float = Field(default=10, ge=0)


class RuleSpec(Model):
    type: Literal[
        "not_null",
        "format",
        "range",
        "unique",
        "accepted_values",
        "type",
        "referential",
        "freshness",
        "row_count",
        "custom_sql",
    ]
    config: dict[str, Any] = Field(default_factory=dict)


class QualityRule(Model):
    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    name: str | None = None
    dimension: Dimension
    rule: RuleSpec
    threshold: float = Field(default=100, ge=0, le=100)
    severity: Literal["critical", "high", "medium", "low"] = "medium"
    action: Literal["warn", "quarantine", "fail"] = "warn"

    @model_validator(mode="after")
    def _complete(self) -> QualityRule:
        from summit_etl.quality.rules import check_rule_config

        check_rule_config(self)
        return self


class QualityConfig(Model):
    weights: QualityWeights = Field(default_factory=QualityWeights)
    min_overall_score: float | None = Field(default=None, ge=0, le=100)
    rules: list[QualityRule] = Field(default_factory=list)
