"""Quality rules on CDC runs: row rules judge each batch's new values inside its
transaction, table rules the target once the run applied its changes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from summit_etl.engine import RunRequest, StageFailure, run_pipeline
from summit_etl.registry import ConfigError, parse_pipeline
from summit_etl_tests.cdc.cdc_support import create_source, raw_pipeline, target_rows
from summit_etl_tests.support import run_sql


def rule(rule_id: str, kind: str, config: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": rule_id, "dimension": "validity", "rule": {"type": kind, "config": config}, **extra}


def with_rules(raw: dict[str, Any], *rules: dict[str, Any]) -> Any:
    return parse_pipeline({**raw, "quality": {"rules": list(rules)}}, "test")


def rule_outcome(report: dict[str, Any], rule_id: str) -> dict[str, Any]:
    return next(r for r in report["rules"] if r["ruleId"] == rule_id)


@pytest.fixture
def source(make_database: Callable[[str], str]) -> str:
    url = make_database("src")
    create_source(url, rows=3)
    return url


def test_row_and_table_rules_report_on_a_cdc_run(source: str, target_url: str, summit_url: str) -> None:
    run_sql(source, "UPDATE public.users SET email = 'not-an-email' WHERE id = 2")
    config = with_rules(
        raw_pipeline("trigger", source, target_url),
        rule("email-format", "format", {"field": "email", "format": "email"}),
        rule("score-small", "range", {"field": "score", "max": 3}),
        rule("email-unique", "unique", {"field": "email"}),
        rule("rows", "row_count", {"min": 1}),
    )
    first = run_pipeline(config, RunRequest("cdc-q1", trigger="cdc"), summit_url)
    assert first.status == "success" and len(target_rows(target_url)) == 3  # warn rules load
    report = first.quality_report
    assert (rule_outcome(report, "email-format")["evaluated"], rule_outcome(report, "email-format")["failed"]) == (3, 1)
    assert rule_outcome(report, "score-small")["failed"] == 1  # 3.75 (numeric, typed by the target)
    assert rule_outcome(report, "email-unique")["passed"] and rule_outcome(report, "rows")["passed"]
    assert run_sql(summit_url, "SELECT count(*) FROM data_quality_reports WHERE pipeline_run_id = 'cdc-q1'") == [(1,)]

    # A key updated twice is no repeat; a value another key already holds is.
    run_sql(source, "UPDATE public.users SET email = 'u1@x.org' WHERE id = 3")
    run_sql(source, "UPDATE public.users SET score = 1 WHERE id = 3")
    report = run_pipeline(config, RunRequest("cdc-q2", trigger="cdc"), summit_url).quality_report
    assert rule_outcome(report, "email-format")["evaluated"] == 2
    assert rule_outcome(report, "email-unique")["failed"] == 1


def test_a_blocking_rule_rolls_the_batch_back_and_holds_the_offset(source: str, target_url: str, summit_url: str) -> None:
    raw = raw_pipeline("trigger", source, target_url)
    run_pipeline(with_rules(raw), RunRequest("cdc-b0", trigger="cdc"), summit_url)
    run_sql(source, "UPDATE public.users SET email = NULL WHERE id = 1")
    strict = with_rules(raw, rule("email-present", "not_null", {"field": "email"}, action="fail"))
    with pytest.raises(StageFailure, match="blocking quality rule 'email-present' failed") as failure:
        run_pipeline(strict, RunRequest("cdc-b1", trigger="cdc"), summit_url)
    assert failure.value.stage == "validation"
    assert run_sql(target_url, "SELECT email FROM dw.users WHERE id = 1") == [("u1@x.org",)]
    assert run_sql(target_url, "SELECT count(*) FROM dw.users_changes WHERE run_id = 'cdc-b1'") == [(0,)]
    assert run_sql(summit_url, "SELECT count(*) FROM data_quality_reports WHERE pipeline_run_id = 'cdc-b1'") == [(1,)]
    # Once the rule is relaxed, the held change applies: nothing was skipped.
    relaxed = with_rules(raw, rule("email-present", "not_null", {"field": "email"}))
    assert run_pipeline(relaxed, RunRequest("cdc-b2", trigger="cdc"), summit_url).status == "success"
    assert run_sql(target_url, "SELECT email FROM dw.users WHERE id = 1") == [(None,)]


def test_quarantine_is_refused_on_cdc_pipelines(source: str, target_url: str) -> None:
    raw = raw_pipeline("trigger", source, target_url)
    with pytest.raises(ConfigError, match="quality rules email-present quarantine rows, which a CDC pipeline cannot"):
        with_rules(raw, rule("email-present", "not_null", {"field": "email"}, action="quarantine"))
