"""Quality rules (SPEC §5) → Great Expectations expectations.

Row-level rules run on each batch as it streams (so quarantine can act before the
load); rules about the whole table (referential, freshness, row_count, custom_sql)
run in SQL on the target (quality/target.py). Rule configs are checked when the
pipeline config is validated, so a bad rule is rejected with the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from summit_etl.config.select import check_select
from summit_etl.identifiers import TableName, check_name

if TYPE_CHECKING:  # great_expectations takes seconds to import: only runs with rules pay it
    from great_expectations.expectations import Expectation

    from summit_etl.config.quality import QualityRule

FORMATS = {
    "email": r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
    "phone": r"^\+?[0-9][0-9 ()./-]{5,}[0-9]$",
    "url": r"^https?://[^\s/$.?#][^\s]*$",
    # ISO dates with a real month and day number (calendar checks would cost a Python
    # call per value: ~10 s per million rows through Great Expectations' strftime rule).
    "date": r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$",
    "uuid": r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
}
TYPE_NAMES = {
    "int": ["int", "int8", "int16", "int32", "int64", "Int64"],
    "float": ["float", "float32", "float64", "Float64"],
    "string": ["str", "object", "string"],
    "bool": ["bool", "boolean"],
    "timestamp": [
        "datetime64",
        "datetime64[ns]",
        "datetime64[us]",
        "datetime64[us, UTC]",
        "Timestamp",
    ],
    "date": ["object", "date", "datetime64[ns]"],
}
ROW_RULES = {"not_null", "format", "range", "unique", "accepted_values", "type"}
TARGET_RULES = {"referential", "freshness", "row_count", "custom_sql"}


class RuleConfigError(ValueError):
    pass


def _need(config: dict[str, Any], key: str, rule_id: str) -> Any:
    if key not in config:
        raise RuleConfigError(f"quality rule {rule_id!r}: rule.config needs {key!r}")
    return config[key]


def _field(config: dict[str, Any], rule_id: str) -> str:
    return check_name(_need(config, "field", rule_id), f"quality rule {rule_id!r} field")


def check_rule_config(rule: QualityRule) -> None:
    """Raise RuleConfigError when a rule's config is incomplete or unsafe."""
    spec, rid = rule.rule, rule.id
    config = spec.config
    if spec.type in ROW_RULES or spec.type in ("referential", "freshness"):
        _field(config, rid)
    if spec.type == "format":
        kind = _need(config, "format", rid)
        if kind == "regex":
            _need(config, "pattern", rid)
        elif kind not in FORMATS:
            raise RuleConfigError(
                f"quality rule {rid!r}: unknown format {kind!r} "
                f"(use {', '.join([*FORMATS, 'regex'])})"
            )
    elif spec.type == "range" and "min" not in config and "max" not in config:
        raise RuleConfigError(f"quality rule {rid!r}: a range needs 'min', 'max' or both")
    elif spec.type == "accepted_values" and not isinstance(_need(config, "values", rid), list):
        raise RuleConfigError(f"quality rule {rid!r}: 'values' must be a list")
    elif spec.type == "type" and _need(config, "type", rid) not in TYPE_NAMES:
        raise RuleConfigError(f"quality rule {rid!r}: type must be one of {', '.join(TYPE_NAMES)}")
    elif spec.type == "referential":
        TableName.parse(_need(config, "table", rid), f"quality rule {rid!r} table")
        check_name(_need(config, "column", rid), f"quality rule {rid!r} column")
    elif spec.type == "freshness" and not isinstance(
        _need(config, "maxAgeSeconds", rid), int | float
    ):
        raise RuleConfigError(f"quality rule {rid!r}: maxAgeSeconds must be a number")
    elif spec.type == "row_count" and "min" not in config and "max" not in config:
        raise RuleConfigError(f"quality rule {rid!r}: row_count needs 'min', 'max' or both")
    elif spec.type == "custom_sql":
        query = str(_need(config, "query", rid))
        if "{batch}" not in query:
            raise RuleConfigError(
                f"quality rule {rid!r}: query must be a SELECT of the offending rows "  # noqa: S608
                "from {batch}"
            )
        # {batch} becomes a relation when the rule runs; any name stands in for it here.
        try:
            check_select(query.replace("{batch}", "batch"), f"quality rule {rid!r} query")
        except ValueError as exc:
            raise RuleConfigError(str(exc)) from None


@dataclass(frozen=True)
class CompiledRule:
    rule: QualityRule
    field: str | None

    @property
    def id(self) -> str:
        return self.rule.id

    @property
    def on_target(self) -> bool:
        return self.rule.rule.type in TARGET_RULES


def compile_rules(rules: list[QualityRule]) -> list[CompiledRule]:
    compiled = []
    for rule in rules:
        check_rule_config(rule)
        field = rule.rule.config.get("field")
        compiled.append(CompiledRule(rule, str(field) if field else None))
    return compiled


def row_expectation(rule: CompiledRule) -> Expectation:
    """The expectation a row-level rule runs on each batch, tagged with the rule's id."""
    import great_expectations.expectations as gxe

    config, kind, column = rule.rule.rule.config, rule.rule.rule.type, str(rule.field)
    meta = {"rule_id": rule.id}
    if kind == "not_null":
        return gxe.ExpectColumnValuesToNotBeNull(column=column, meta=meta)
    if kind == "format":
        pattern = config["pattern"] if config["format"] == "regex" else FORMATS[config["format"]]
        return gxe.ExpectColumnValuesToMatchRegex(column=column, regex=pattern, meta=meta)
    if kind == "range":
        return gxe.ExpectColumnValuesToBeBetween(
            column=column, min_value=config.get("min"), max_value=config.get("max"), meta=meta
        )
    if kind == "unique":
        return gxe.ExpectColumnValuesToBeUnique(column=column, meta=meta)
    if kind == "accepted_values":
        return gxe.ExpectColumnValuesToBeInSet(column=column, value_set=config["values"], meta=meta)
    if kind == "type":
        return gxe.ExpectColumnValuesToBeInTypeList(
            column=column, type_list=TYPE_NAMES[config["type"]], meta=meta
        )
    raise RuleConfigError(f"quality rule {rule.id!r} ({kind}) does not run on batches")


def rule_of(result: Any) -> str:
    """The id of the rule a Great Expectations validation result belongs to."""
    config = result.expectation_config
    if config is None or "rule_id" not in (config.meta or {}):
        raise RuleConfigError("a validation result carries no rule id")
    return str(config.meta["rule_id"])


def failure_of(result: Any) -> str | None:
    """Why Great Expectations could not evaluate a result's expectation, or None. A single
    expectation reports one exception; a suite reports one per metric that raised."""
    info = result.exception_info or {}
    reports = [info] if "raised_exception" in info else list(info.values())
    messages = [str(r.get("exception_message")) for r in reports if r.get("raised_exception")]
    return "; ".join(dict.fromkeys(messages)) or None
