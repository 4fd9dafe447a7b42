"""Table-level rules (referential, freshness, row_count, custom_sql) in SQL on the loaded
target, through Great Expectations' SQL datasource."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from summit_etl.identifiers import TableName
from summit_etl.quality.rules import CompiledRule, rule_of, target_expectation
from summit_etl.quality.scoring import RuleOutcome


def _sqlalchemy_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="postgresql+psycopg2"))


def check_target(
    rules: list[CompiledRule],
    outcomes: dict[str, RuleOutcome],
    target_url: str,
    table: TableName,
    row_count: int,
) -> None:
    """Run the table-level rules on `table` and record their outcomes.

    A table-level rule passes or fails as a whole; it weighs as many rows as the run
    loaded, so that its dimension score stays row-weighted like the others.
    """
    if not rules:
        return
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    source = context.data_sources.add_postgres(
        "target", connection_string=_sqlalchemy_url(target_url)
    )
    asset = source.add_table_asset(
        "table", table_name=table.name, schema_name=table.schema or "public"
    )
    suite = gx.ExpectationSuite(name="table_rules")
    for rule in rules:
        suite.add_expectation(target_expectation(rule))
    results = (
        asset.add_batch_definition_whole_table("all")
        .get_batch()
        .validate(context.suites.add(suite), result_format={"result_format": "SUMMARY"})
    )
    weight = max(row_count, 1)
    for result in results.results:
        rule_id = rule_of(result)
        outcome = outcomes[rule_id]
        observed = result.result.get("observed_value")
        if result.exception_info and result.exception_info.get("raised_exception"):
            outcome.add(weight, weight, [])
            outcome.message = (
                f"rule could not run: {result.exception_info.get('exception_message')}"
            )
            continue
        kind = outcome.rule.rule.type
        if kind in ("referential", "custom_sql") and isinstance(observed, int):
            # Counts of offending rows: row-weighted like the row rules.
            outcome.add(max(row_count, observed), observed, [])
            outcome.message = f"{observed} rows of {table} fail {outcome.rule.name or rule_id}"
        else:
            outcome.add(
                weight, 0 if result.success else weight, [observed] if observed is not None else []
            )
            if not result.success:
                outcome.message = (
                    f"{outcome.rule.name or rule_id} failed on {table} (observed {observed})"
                )
