"""Table-level rules after the commit: their own READ ONLY transaction, one savepoint per
rule, on a real target."""

from __future__ import annotations

from summit_etl.config.quality import QualityRule
from summit_etl.identifiers import TableName
from summit_etl.quality.rules import CompiledRule
from summit_etl.quality.scoring import RuleOutcome
from summit_etl.quality.target import check_target_read_only
from summit_etl_tests.support import run_sql


def custom_sql(rule_id: str, query: str) -> CompiledRule:
    rule = QualityRule.model_validate(
        {"id": rule_id, "dimension": "accuracy", "rule": {"type": "custom_sql", "config": {"query": query}}}
    )
    return CompiledRule(rule, None)


def test_rules_after_the_commit_cannot_write_and_fail_one_by_one(target_url: str) -> None:
    run_sql(target_url, "CREATE TABLE people (id int, age int); INSERT INTO people VALUES (1, 17), (2, 30)")
    # A plain SELECT, as config validation requires, calling a function that writes.
    run_sql(target_url, "CREATE FUNCTION wipe() RETURNS int LANGUAGE sql AS 'DELETE FROM people; SELECT 1'")
    rules = [
        custom_sql("sneaky", "SELECT * FROM {batch} WHERE wipe() = 1"),
        custom_sql("minors", "SELECT * FROM {batch} WHERE age < 18;"),
    ]
    outcomes = {r.id: RuleOutcome(r.rule) for r in rules}
    check_target_read_only(rules, outcomes, target_url, TableName.parse("people"), 2)
    assert outcomes["sneaky"].message == "rule could not run: cannot execute DELETE in a read-only transaction"
    assert (outcomes["sneaky"].evaluated, outcomes["sneaky"].failed) == (2, 2)
    assert (outcomes["minors"].evaluated, outcomes["minors"].failed) == (2, 1)  # judged after the refusal
    assert run_sql(target_url, "SELECT count(*) FROM people") == [(2,)]
