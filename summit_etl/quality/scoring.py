"""Rule outcomes → dimension scores → the overall score (SPEC §5)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import date, time
from typing import Any

from summit_etl.config.quality import Dimension, QualityRule, QualityWeights

_SECRET_FIELD = re.compile(r"pass(word)?|secret|token|api_?key|credential", re.IGNORECASE)
EXAMPLES_PER_RULE = 5


def example_value(field: str | None, value: Any) -> Any:
    """An offending value as JSON can hold it; masked when the field looks secret."""
    if field and _SECRET_FIELD.search(field):
        return "***"
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool | str) or (isinstance(value, int | float) and math.isfinite(value)):
        return value
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)


@dataclass
class RuleOutcome:
    """What a rule saw over the whole run: rows evaluated, rows failing, a few examples."""

    rule: QualityRule
    evaluated: int = 0
    failed: int = 0
    examples: list[Any] = field(default_factory=list)
    message: str = ""

    @property
    def pass_rate(self) -> float:
        return (
            100.0
            if self.evaluated == 0
            else 100.0 * (self.evaluated - self.failed) / self.evaluated
        )

    @property
    def passed(self) -> bool:
        return self.pass_rate >= self.rule.threshold

    def add(self, evaluated: int, failed: int, examples: list[Any]) -> None:
        self.evaluated += evaluated
        self.failed += failed
        room = EXAMPLES_PER_RULE - len(self.examples)
        if room > 0:
            field = self.rule.rule.config.get("field")
            self.examples.extend(example_value(field, v) for v in examples[:room])


def dimension_scores(
    outcomes: list[RuleOutcome], penalties: dict[str, float] | None = None
) -> dict[str, float]:
    """Each dimension's row-weighted pass rate over its rules; 100 with no rules.

    `penalties` caps a dimension (timeliness under an SLA overrun) at the given score.
    """
    scores = {}
    for dimension in Dimension:
        mine = [o for o in outcomes if o.rule.dimension is dimension]
        evaluated = sum(o.evaluated for o in mine)
        failed = sum(o.failed for o in mine)
        score = 100.0 if evaluated == 0 else 100.0 * (evaluated - failed) / evaluated
        if penalties and dimension.value in penalties:
            score = min(score, penalties[dimension.value])
        scores[dimension.value] = round(score, 2)
    return scores


def overall_score(scores: dict[str, float], weights: QualityWeights) -> float:
    weight_of = weights.model_dump()
    total = sum(weight_of.values())
    if total == 0:
        return round(sum(scores.values()) / len(scores), 2)
    return round(sum(scores[d] * weight_of[d] for d in scores) / total, 2)


def issues(outcomes: list[RuleOutcome]) -> list[dict[str, Any]]:
    """One issue per rule that saw failing rows (or failed its threshold)."""
    found = []
    for outcome in outcomes:
        if outcome.failed == 0 and outcome.passed:
            continue
        rule = outcome.rule
        found.append(
            {
                "severity": rule.severity,
                "type": rule.rule.type,
                "ruleId": rule.id,
                "ruleName": rule.name or rule.id,
                "dimension": rule.dimension.value,
                "field": rule.rule.config.get("field"),
                "message": outcome.message
                or (
                    f"{outcome.failed} of {outcome.evaluated} rows failed {rule.name or rule.id} "
                    f"(pass rate {outcome.pass_rate:.2f}%, threshold {rule.threshold:g}%)"
                ),
                "affectedRecords": outcome.failed,
                "passRate": round(outcome.pass_rate, 2),
                "threshold": rule.threshold,
                "passed": outcome.passed,
                "action": rule.action,
                "examples": outcome.examples,
            }
        )
    return found
