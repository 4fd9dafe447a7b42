"""Table-level rules (referential, freshness, row_count, custom_sql) in SQL on the loaded
target, through Great Expectations' SQL datasource."""

from __future__ import annotations

import warnings
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from summit_etl.identifiers import TableName
from summit_etl.quality.context import ephemeral_context
from summit_etl.quality.rules import CompiledRule, failure_of, rule_of, target_expectation
from summit_etl.quality.scoring import RuleOutcome


def _sqlalchemy_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="postgresql+psycopg2"))


# Freshness compares a column's newest value with now minus maxAgeSeconds, so it needs a
# column PostgreSQL can subtract an interval from.
_TEMPORAL_TYPES = {"timestamptz", "timestamp", "date"}


class FreshnessColumnError(ValueError):
    pass


def _oldest_allowed(conn: psycopg.Connection, table: TableName, rule: CompiledRule) -> Any:
    """now() - maxAgeSeconds, computed by the server and cast to the column's type, so
    that comparing it with the column's max means what the same SQL comparison would."""
    found = conn.execute(
        "SELECT t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
        "WHERE a.attrelid = %s::regclass AND a.attname = %s AND NOT a.attisdropped",
        (table.ident.as_string(conn), rule.field),
    ).fetchone()
    if found is None:
        raise FreshnessColumnError(f"{table} has no column {rule.field!r}")
    if found[0] not in _TEMPORAL_TYPES:
        raise FreshnessColumnError(
            f"column {rule.field!r} of {table} is {found[0]}: freshness needs a date or timestamp"
        )
    query = sql.SQL("SELECT (now() - make_interval(secs => %s))::{}").format(sql.SQL(found[0]))
    row = conn.execute(query, (float(rule.rule.rule.config["maxAgeSeconds"]),)).fetchone()
    return row[0] if row else None


def rules_on_target(
    rules: list[CompiledRule], *, stream_saw_every_row: bool, merge_key: list[str]
) -> list[CompiledRule]:
    """The table-level rules, and the `unique` rules whose field the target may repeat
    from rows this run did not stream: not after a load that replaced the target (the
    stream saw every row), nor on the key a merge keeps unique."""
    return [
        rule
        for rule in rules
        if rule.on_target
        or (
            rule.rule.rule.type == "unique"
            and not stream_saw_every_row
            and [str(rule.field)] != merge_key
        )
    ]


def check_target(
    rules: list[CompiledRule],
    outcomes: dict[str, RuleOutcome],
    target_url: str,
    table: TableName,
    row_count: int,
) -> None:
    """Run `rules` (see rules_on_target) on `table` and record their outcomes.

    A table-level rule passes or fails as a whole; it weighs as many rows as the run
    loaded, so that its dimension score stays row-weighted like the others. A `unique`
    rule adds the repeats the target holds beyond those its batches already counted.
    """
    if not rules:
        return
    import great_expectations as gx

    weight = max(row_count, 1)
    fresh = [rule for rule in rules if rule.rule.rule.type == "freshness"]
    expectations = [target_expectation(rule) for rule in rules if rule not in fresh]
    if fresh:  # their bounds come from the target's clock and column types
        with psycopg.connect(target_url) as conn:
            for rule in fresh:
                try:
                    oldest = _oldest_allowed(conn, table, rule)
                except FreshnessColumnError as exc:
                    _could_not_run(outcomes[rule.id], weight, str(exc))
                    continue
                expectations.append(target_expectation(rule, oldest))
    if not expectations:
        return
    context = ephemeral_context()
    source = context.data_sources.add_postgres(
        "target", connection_string=_sqlalchemy_url(target_url)
    )
    # schema_name is deprecated in favour of a schema in the connection settings, which
    # Great Expectations' PostgreSQL source does not read yet.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        asset = source.add_table_asset(
            "table", table_name=table.name, schema_name=table.schema or "public"
        )
    suite = gx.ExpectationSuite(name="table_rules", expectations=expectations)
    results = (
        asset.add_batch_definition_whole_table("all")
        .get_batch()
        .validate(context.suites.add(suite), result_format={"result_format": "SUMMARY"})
    )
    for result in results.results:
        rule_id = rule_of(result)
        outcome = outcomes[rule_id]
        observed = result.result.get("observed_value")
        if failure := failure_of(result):
            _could_not_run(outcome, weight, failure)
            continue
        kind = outcome.rule.rule.type
        if kind == "unique" and isinstance(observed, int):
            _add_target_repeats(outcome, observed, table, weight)
        elif kind in ("referential", "custom_sql") and isinstance(observed, int):
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


def _add_target_repeats(
    outcome: RuleOutcome, repeats: int, table: TableName, weight: int
) -> None:
    """Repeats in the target that the batches did not count: values already loaded by
    earlier runs. Repeats the batches counted were loaded too, unless quarantined. With
    no batches judged (a CDC run), the target's repeats weigh like a table rule's."""
    if not outcome.evaluated:
        outcome.add(weight, min(repeats, weight), [])
    else:
        loaded = 0 if outcome.rule.action == "quarantine" else outcome.failed
        extra = min(max(repeats - loaded, 0), outcome.evaluated - outcome.failed)
        outcome.add(0, extra, [])
    if repeats:
        field = outcome.rule.rule.config["field"]
        outcome.message = f"{repeats} rows of {table} repeat an earlier row's {field}"


def _could_not_run(outcome: RuleOutcome, weight: int, reason: object) -> None:
    outcome.add(weight, weight, [])
    outcome.message = f"rule could not run: {reason}"
