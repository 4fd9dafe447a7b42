"""Quality rules inside real runs: Great Expectations on real batches, scores, blocking
rules, quarantine with its invariant, replay, reports and the runbook's trend query."""

from __future__ import annotations

from typing import Any

import pytest

from summit_etl.config import LoadStrategy
from summit_etl.engine import StageFailure
from summit_etl.quality import target as target_module
from summit_etl.quality.replay import replay_quarantine
from summit_etl.registry import parse_pipeline
from summit_etl_tests.quality.people import outcome_of, people, pipeline, rule, run
from summit_etl_tests.support import RUNBOOK_PSQL, run_sql

__all__ = ["people"]  # a fixture


ROW_RULES = [
    ("not_null", {"field": "email"}, "completeness", 1),
    ("not_null", {"field": "country"}, "completeness", 0),
    ("format", {"field": "email", "format": "email"}, "validity", 0),  # nulls are not judged
    ("format", {"field": "phone", "format": "phone"}, "validity", 1),
    ("format", {"field": "site", "format": "url"}, "validity", 1),
    ("format", {"field": "token", "format": "uuid"}, "validity", 0),
    ("format", {"field": "country", "format": "regex", "pattern": "^(DE|FR)$"}, "validity", 1),
    ("range", {"field": "age", "min": 18, "max": 120}, "accuracy", 1),
    ("range", {"field": "age", "max": 120}, "accuracy", 0),
    ("accepted_values", {"field": "country", "values": ["DE", "FR"]}, "consistency", 1),
    ("accepted_values", {"field": "country", "values": ["DE", "FR", "XX"]}, "consistency", 0),
    ("unique", {"field": "id"}, "uniqueness", 0),
    ("unique", {"field": "country"}, "uniqueness", 0),
    ("type", {"field": "age", "type": "int"}, "validity", 0),
    ("type", {"field": "age", "type": "string"}, "validity", 3),
]


@pytest.mark.parametrize(("kind", "config", "dimension", "failing"), ROW_RULES)
def test_each_row_rule_type(people: str, target_url: str, summit_url: str, kind: str,
                            config: dict[str, Any], dimension: str, failing: int) -> None:
    outcome = run(pipeline(people, target_url, [rule("r", dimension, kind, config)]), summit_url)
    result = outcome_of(outcome.quality_report, "r")
    assert (result["evaluated"], result["failed"]) == (3, failing)
    assert result["passed"] is (failing == 0)


def test_unique_spans_batches(people: str, target_url: str, summit_url: str) -> None:
    run_sql(people, "UPDATE public.people SET country = 'DE' WHERE id = 3")
    config = pipeline(people, target_url, [rule("u", "uniqueness", "unique", {"field": "country"})])
    config = config.model_copy(update={"extraction": config.extraction.model_copy(update={"batch_size": 1})})
    result = outcome_of(run(config, summit_url).quality_report, "u")
    assert result["failed"] == 1  # row 3 repeats row 1's country from an earlier batch


@pytest.mark.parametrize("action", ["warn", "quarantine"])
def test_unique_spans_the_target_across_runs(people: str, target_url: str, summit_url: str, action: str) -> None:
    """Appends: a value loaded by an earlier run counts as a repeat; one that only this
    run's batches repeat counts once, whether it was loaded or quarantined."""
    run_sql(people, "UPDATE public.people SET country = 'DE' WHERE id = 3")  # repeats row 1
    config = pipeline(people, target_url, [rule("u", "uniqueness", "unique", {"field": "email"}, action=action),
                                           rule("c", "uniqueness", "unique", {"field": "country"}, action=action)])
    config = config.model_copy(update={"loading": config.loading.model_copy(update={"strategy": "append_only"})})
    run_sql(target_url, "CREATE SCHEMA dw")
    run_sql(target_url, "CREATE TABLE dw.people (id bigint, email text, age int, country text, phone text,"
                        " site text, born date, token uuid, updated_at timestamptz)")
    run_sql(target_url, "INSERT INTO dw.people (id, email) VALUES (100, 'bob@example.com')")  # an earlier load
    report = run(config, summit_url).quality_report
    email, country = outcome_of(report, "u"), outcome_of(report, "c")
    assert (email["evaluated"], email["failed"]) == (3, 1)  # bob is already in the target
    assert (country["evaluated"], country["failed"]) == (3, 1)  # row 3, counted by the batches
    message = next(i["message"] for i in report["issues"] if i["ruleId"] == "u")
    assert message == "1 rows of dw.people repeat an earlier row's email"


@pytest.mark.parametrize(
    ("kind", "config", "passes"),
    [
        ("referential", {"field": "country", "table": "dw.countries", "column": "code"}, False),
        ("referential", {"field": "id", "table": "dw.people", "column": "id"}, True),
        ("freshness", {"field": "updated_at", "maxAgeSeconds": 3600}, True),
        ("freshness", {"field": "born", "maxAgeSeconds": 60}, False),
        ("row_count", {"min": 1, "max": 10}, True),
        ("row_count", {"min": 5}, False),
        ("custom_sql", {"query": "SELECT * FROM {batch} WHERE age < 18"}, False),
        ("custom_sql", {"query": "SELECT * FROM {batch} WHERE age > 120"}, True),
    ],
)
def test_table_rules_run_in_sql_on_the_target(people: str, target_url: str, summit_url: str,
                                              kind: str, config: dict[str, Any], passes: bool) -> None:
    run_sql(target_url, "CREATE SCHEMA dw; CREATE TABLE dw.countries (code text); INSERT INTO dw.countries VALUES ('DE'), ('FR')")
    outcome = run(pipeline(people, target_url, [rule("t", "consistency", kind, config)]), summit_url)
    assert outcome_of(outcome.quality_report, "t")["passed"] is passes, [i["message"] for i in outcome.quality_report["issues"]]
    assert not any("could not run" in i["message"] for i in outcome.quality_report["issues"])


def test_a_table_rule_that_cannot_run_fails_with_the_database_error(people: str, target_url: str, summit_url: str) -> None:
    broken = rule("t", "accuracy", "custom_sql", {"query": "SELECT * FROM {batch} WHERE no_such_column > 0"})
    report = run(pipeline(people, target_url, [broken]), summit_url).quality_report
    [issue] = report["issues"]
    assert issue["message"].startswith("rule could not run: ") and 'column "no_such_column" does not exist' in issue["message"]
    assert outcome_of(report, "t")["passed"] is False


def test_freshness_reports_the_newest_value_and_refuses_columns_that_cannot_age(
        people: str, target_url: str, summit_url: str) -> None:
    report = run(pipeline(people, target_url, [
        rule("born-recently", "timeliness", "freshness", {"field": "born", "maxAgeSeconds": 60}),
        rule("country-fresh", "timeliness", "freshness", {"field": "country", "maxAgeSeconds": 60}),
    ]), summit_url).quality_report
    issues = {i["ruleId"]: i for i in report["issues"]}
    assert issues["born-recently"]["examples"] == ["2010-07-07"]  # the newest value, too old
    assert "column 'country' of dw.people is text: freshness needs a date or timestamp" in issues["country-fresh"]["message"]
    assert report["dimensions"]["timeliness"] == 0


def test_scores_match_hand_computed_figures(people: str, target_url: str, summit_url: str) -> None:
    rules = [
        rule("email-present", "completeness", "not_null", {"field": "email"}),
        rule("adult", "accuracy", "range", {"field": "age", "min": 18}),
        rule("known-country", "consistency", "accepted_values", {"field": "country", "values": ["DE", "FR"]}),
        rule("email-format", "validity", "format", {"field": "email", "format": "email"}),
    ]
    report = run(pipeline(people, target_url, rules), summit_url).quality_report
    third = round(200 / 3, 2)
    assert report["dimensions"] == {
        "completeness": third, "accuracy": third, "consistency": third,
        "timeliness": 100.0, "validity": 100.0, "uniqueness": 100.0,
    }
    # (20 + 25 + 15) * 66.67 + (15 + 15 + 10) * 100, over 100
    assert report["overallScore"] == pytest.approx((60 * 200 / 3 + 40 * 100) / 100, abs=0.01)
    weighted = run(pipeline(people, target_url, rules, weights={"completeness": 1, "accuracy": 0, "consistency": 0,
                                                               "timeliness": 0, "validity": 1, "uniqueness": 0}), summit_url)
    assert weighted.quality_report["overallScore"] == pytest.approx((200 / 3 + 100) / 2, abs=0.01)
    issue = next(i for i in report["issues"] if i["ruleId"] == "adult")
    assert issue["affectedRecords"] == 1 and issue["examples"] == [17] and issue["field"] == "age"
    stats = report["statistics"]
    assert stats["totalRecords"] == 3 and stats["nullCounts"]["email"] == 1
    assert stats["distinctCounts"]["country"] == 3 and stats["minValues"]["age"] == 17 and stats["maxValues"]["age"] == 41


def test_a_blocking_rule_stops_the_load_and_leaves_the_target_untouched(people: str, target_url: str, summit_url: str) -> None:
    run_sql(target_url, "CREATE SCHEMA dw; CREATE TABLE dw.people (id bigint PRIMARY KEY, email text)")
    run_sql(target_url, "INSERT INTO dw.people VALUES (99, 'kept@example.com')")
    config = pipeline(people, target_url, [rule("adult", "accuracy", "range", {"field": "age", "min": 18}, action="fail", threshold=100)])
    with pytest.raises(StageFailure) as info:
        run(config, summit_url)
    assert info.value.stage == "validation" and "blocking quality rule 'adult' failed" in str(info.value)
    assert run_sql(target_url, "SELECT id FROM dw.people") == [(99,)]
    status, errors = run_sql(summit_url, "SELECT status, errors FROM pipeline_runs")[0]
    assert status == "failed" and errors[0]["stage"] == "validation"
    assert run_sql(summit_url, "SELECT count(*) FROM data_quality_reports") == [(1,)]  # the report says why


def test_min_overall_score_fails_before_loading(people: str, target_url: str, summit_url: str) -> None:
    config = pipeline(people, target_url, [rule("email-present", "completeness", "not_null", {"field": "email"})],
                      minOverallScore=99)
    with pytest.raises(StageFailure, match="below minOverallScore 99"):
        run(config, summit_url)
    assert run_sql(target_url, "SELECT to_regclass('dw.people') IS NULL") == [(True,)]  # not even created


def test_quarantine_keeps_the_invariant_and_replay_loads_fixed_rows(people: str, target_url: str, summit_url: str) -> None:
    config = pipeline(people, target_url, [
        rule("email-present", "completeness", "not_null", {"field": "email"}, action="quarantine"),
        rule("adult", "accuracy", "range", {"field": "age", "min": 18}, action="quarantine"),
    ])
    outcome = run(config, summit_url)
    counts = outcome.counts
    assert outcome.status == "partial_success"
    assert (counts.records_extracted, counts.records_loaded, counts.records_quarantined) == (3, 2, 1)
    assert counts.records_extracted == counts.records_loaded + counts.records_filtered + counts.records_quarantined
    assert run_sql(target_url, "SELECT id FROM dw.people ORDER BY id") == [(1,), (2,)]
    run_id, record, failed = run_sql(summit_url, "SELECT run_id, record, failed_rules FROM etl_quarantine")[0]
    assert record["id"] == 3 and sorted(failed) == ["adult", "email-present"]
    assert run_sql(summit_url, "SELECT status, records_quarantined FROM pipeline_runs WHERE id = %s", (run_id,)) == [("partial_success", 1)]

    # Still failing: nothing moves.
    assert replay_quarantine(config, run_id, summit_url).replayed == 0
    # The rules are fixed (the person is a minor on purpose; email is optional now).
    relaxed = pipeline(people, target_url, [rule("adult", "accuracy", "range", {"field": "age", "min": 16}, action="quarantine")])
    result = replay_quarantine(relaxed, run_id, summit_url)
    assert (result.replayed, result.still_quarantined) == (1, 0)
    assert run_sql(target_url, "SELECT id, age FROM dw.people WHERE id = 3") == [(3, 17)]
    assert run_sql(summit_url, "SELECT replayed_at IS NOT NULL FROM etl_quarantine") == [(True,)]


def test_sla_overrun_lowers_timeliness(people: str, target_url: str, summit_url: str) -> None:
    config = pipeline(people, target_url, [rule("email-present", "completeness", "not_null", {"field": "email"})])
    config = config.model_copy(update={"sla": config.sla.model_copy(update={"max_duration_seconds": 0.000001})})
    report = run(config, summit_url).quality_report
    assert report["dimensions"]["timeliness"] < 1
    assert any(i["type"] == "sla" for i in report["issues"])


def test_reports_are_stored_for_the_runbooks_trend_query(people: str, target_url: str, summit_url: str) -> None:
    config = pipeline(people, target_url, [rule("email-present", "completeness", "not_null", {"field": "email"})])
    first, second = run(config, summit_url), run(config, summit_url)
    rows = run_sql(summit_url, RUNBOOK_PSQL["quality trend (weekly 3)"])
    assert len(rows) == 1 and float(rows[0][1]) == pytest.approx(first.quality_report["overallScore"])
    scores = run_sql(summit_url, "SELECT quality_score FROM pipeline_runs ORDER BY created_at")
    assert [s[0] for s in scores] == [first.quality_report["overallScore"], second.quality_report["overallScore"]]


def test_bad_rule_configs_are_rejected_with_the_pipeline() -> None:
    from summit_etl.registry import ConfigError

    with pytest.raises(ConfigError, match="rule.config needs 'field'"):
        pipeline("postgresql://x/y", "postgresql://x/z", [rule("r", "validity", "not_null", {})])
    # Table rules quote the target's name: an upper-case target is a target like any other.
    mixed_case = parse_pipeline({"id": "p", "name": "P", "source": {"url": "postgresql://x/y", "table": "public.people"},
                                 "quality": {"rules": [rule("rows", "completeness", "row_count", {"min": 1})]},
                                 "loading": {"strategy": "bulk", "targetTable": "dw.People", "targetUrl": "postgresql://x/z"}},
                                "test")
    assert mixed_case.loading.target_name.name == "People"
    with pytest.raises(ConfigError, match="unknown format 'emial'"):
        pipeline("postgresql://x/y", "postgresql://x/z", [rule("r", "validity", "format", {"field": "e", "format": "emial"})])


def test_a_blocking_row_count_rule_keeps_the_old_rows_when_a_full_reload_finds_none(
        people: str, target_url: str, summit_url: str) -> None:
    config = pipeline(people, target_url, [rule("rows", "completeness", "row_count", {"min": 1}, action="fail")])
    config = config.model_copy(update={"loading": config.loading.model_copy(update={"strategy": LoadStrategy.bulk})})
    run(config, summit_url)
    run_sql(people, "DELETE FROM public.people")
    with pytest.raises(StageFailure) as info:
        run(config, summit_url)
    assert info.value.stage == "validation"
    assert "blocking quality rule 'rows' failed" in str(info.value) and "(observed 0)" in str(info.value)
    assert run_sql(target_url, "SELECT id FROM dw.people ORDER BY id") == [(1,), (2,), (3,)]  # the TRUNCATE rolled back


def test_a_blocked_load_leaves_no_quarantine_and_its_retry_quarantines_once(
        people: str, target_url: str, summit_url: str) -> None:
    run_sql(target_url, "CREATE SCHEMA dw; CREATE TABLE dw.countries (code text); INSERT INTO dw.countries VALUES ('DE')")
    config = pipeline(people, target_url, [
        rule("email-present", "completeness", "not_null", {"field": "email"}, action="quarantine"),
        rule("known-country", "consistency", "referential",
             {"field": "country", "table": "dw.countries", "column": "code"}, action="fail"),
    ])
    # Row 3 is quarantined; of the loaded rows, FR is unknown: judged on the uncommitted load.
    with pytest.raises(StageFailure, match=r"blocking quality rule 'known-country' failed.*1 rows of dw.people fail"):
        run(config, summit_url)
    assert run_sql(target_url, "SELECT to_regclass('dw.people') IS NULL") == [(True,)]
    assert run_sql(summit_url, "SELECT status FROM etl_quarantine") == [("discarded",)]

    run_sql(target_url, "INSERT INTO dw.countries VALUES ('FR')")
    assert run(config, summit_url).status == "partial_success"
    assert run(config, summit_url).status == "partial_success"  # reads row 3 again
    statuses = run_sql(summit_url, "SELECT q.status, r.status FROM etl_quarantine q"
                                   " JOIN pipeline_runs r ON r.id = q.run_id ORDER BY q.id")
    assert statuses == [("discarded", "failed"), ("superseded", "partial_success"),
                        ("quarantined", "partial_success")]


def test_min_overall_score_waits_for_the_table_rules_and_blocks_before_the_commit(
        people: str, target_url: str, summit_url: str) -> None:
    config = pipeline(people, target_url, [rule("rows", "completeness", "row_count", {"min": 10})],
                      minOverallScore=90)  # a warn rule, but completeness 0 makes the score 80
    with pytest.raises(StageFailure, match="overall quality score 80.00 is below minOverallScore 90"):
        run(config, summit_url)
    assert run_sql(target_url, "SELECT to_regclass('dw.people') IS NULL") == [(True,)]


def test_a_blocking_query_runs_under_the_rule_timeout(
        people: str, target_url: str, summit_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(target_module, "RULE_TIMEOUT_SECONDS", 1)
    slow = rule("slow", "accuracy", "custom_sql", {"query": "SELECT * FROM {batch}, pg_sleep(5)"}, action="fail")
    with pytest.raises(StageFailure, match="quality rule 'slow' could not run in the load's transaction.*statement timeout"):
        run(pipeline(people, target_url, [slow]), summit_url)
    assert run_sql(target_url, "SELECT to_regclass('dw.people') IS NULL") == [(True,)]
