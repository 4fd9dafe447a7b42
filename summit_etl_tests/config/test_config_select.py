"""Queries in configurations are one plain SELECT, as PostgreSQL's own parser reads them."""

from __future__ import annotations

from typing import Any

import pytest

from summit_etl.config.select import check_select
from summit_etl.registry import ConfigError, parse_pipeline
from summit_etl_tests.config.test_config_pipeline import base

REFUSED = [
    ("SELECT 1; DROP TABLE users", "but it holds 2 statements"),
    ("SELECT * FROM users;\nDELETE FROM users", "but it holds 2 statements"),
    ("DELETE FROM users", "not a DELETE statement"),
    ("WITH gone AS (DELETE FROM users RETURNING *) SELECT * FROM gone", "data-modifying DELETE"),
    ("WITH x AS (UPDATE users SET a = 1 RETURNING *) SELECT * FROM x", "data-modifying UPDATE"),
    ("SELECT * INTO stolen FROM users", "SELECT INTO"),
    ("SELECT * FROM users FOR UPDATE", "locking clause"),
    ("SELECT * FROM (SELECT * FROM users FOR SHARE) AS u", "locking clause"),
    ("SELEC * FROM users", "is not valid SQL"),
    ("  ", "but it holds no statement"),
    ("SELECT 1" + " " * 100_000, "is longer than 100000 characters"),
]
ACCEPTED = [
    "SELECT id, name FROM public.users WHERE name <> ';'",
    "WITH recent AS (SELECT * FROM orders) SELECT * FROM recent",
    "SELECT 1 UNION ALL SELECT 2",
    "SELECT id FROM users;",
]


@pytest.mark.parametrize(("query", "reason"), REFUSED)
def test_anything_but_one_plain_select_is_refused_with_the_reason(query: str, reason: str) -> None:
    with pytest.raises(ValueError, match=f"^source.query .*{reason}"):
        check_select(query, "source.query")


@pytest.mark.parametrize("query", ACCEPTED)
def test_plain_selects_pass_unchanged(query: str) -> None:
    assert check_select(query, "source.query") == query


def _problems(**overrides: Any) -> str:
    with pytest.raises(ConfigError) as info:
        parse_pipeline(base(**overrides), "request body")
    return str(info.value)


def test_source_join_and_custom_sql_queries_are_checked_naming_the_setting() -> None:
    bad = "SELECT 1; DROP TABLE users"
    assert "source.query must be a single SELECT" in _problems(
        source={"url": "postgresql://h/d", "query": bad}
    )
    join = {"type": "join", "query": bad, "on": ["id"]}
    assert "join.query must be a single SELECT" in _problems(
        transformation={"transformations": [join]}
    )
    rule = {
        "id": "adults",
        "dimension": "validity",
        "rule": {"type": "custom_sql", "config": {"query": f"SELECT * FROM {{batch}}; {bad}"}},
    }
    message = _problems(quality={"rules": [rule]})
    assert "quality.rules.0" in message
    assert "quality rule 'adults' query must be a single SELECT" in message


def test_a_custom_sql_rule_still_needs_its_batch_and_accepts_a_plain_select() -> None:
    rule = {
        "id": "adults",
        "dimension": "validity",
        "rule": {"type": "custom_sql", "config": {"query": "SELECT * FROM users WHERE age < 18"}},
    }
    assert "from {batch}" in _problems(quality={"rules": [rule]})
    rule["rule"]["config"]["query"] = "SELECT * FROM {batch} WHERE age < 18"  # type: ignore[index]
    config = parse_pipeline(base(quality={"rules": [rule]}), "request body")
    assert config.quality.rules[0].rule.config["query"].endswith("age < 18")
