"""`cdc.triggerLevel`: statement-level capture records what row-level capture records, a
multi-row key change included, and a pipeline switched between the levels loses nothing."""

from __future__ import annotations

from collections.abc import Callable

from dagster import DagsterInstance

from summit_etl_tests.cdc.cdc_support import (
    Harness,
    change_log,
    create_source,
    raw_pipeline,
    source_rows,
    target_rows,
)
from summit_etl_tests.support import run_sql

CAPTURE_TRIGGERS = """
SELECT tgname, tgtype & 1 = 1 AS per_row FROM pg_trigger
 WHERE tgrelid = 'public.users'::regclass AND tgname LIKE 'summit_cdc_users%' ORDER BY tgname
"""


def _level(level: str, source: str, target: str, summit: str, instance: DagsterInstance) -> Harness:
    raw = raw_pipeline("trigger", source, target, cdc_options={"triggerLevel": level})
    return Harness(raw, summit, instance)


def test_a_multi_row_key_change_is_a_delete_and_an_insert_per_row(
    make_database: Callable[[str], str], target_url: str, summit_url: str, instance: DagsterInstance
) -> None:
    source = make_database("src")
    create_source(source, rows=4)
    cdc = _level("statement", source, target_url, summit_url, instance)
    assert all(r.success for r in cdc.cycle())
    # One statement: two keys moved, one row updated in place, one deleted, two inserted.
    run_sql(source, "UPDATE public.users SET id = id + 100 WHERE id IN (1, 2)")
    run_sql(source, "UPDATE public.users SET email = 'both', score = score + 1 WHERE id IN (3, 101)")
    run_sql(source, "DELETE FROM public.users WHERE id = 4")
    assert all(r.success for r in cdc.cycle())
    assert target_rows(target_url) == source_rows(source)
    operations = [(op, key) for op, key, *_ in change_log(target_url)][4:]
    assert sorted(operations[:4]) == [("DELETE", "1"), ("DELETE", "2"), ("INSERT", "101"), ("INSERT", "102")]
    assert sorted(operations[4:]) == [("DELETE", "4"), ("UPDATE", "101"), ("UPDATE", "3")]
    old_of_3 = next(old for op, key, old, *_ in change_log(target_url) if (op, key) == ("UPDATE", "3"))
    assert old_of_3["email"] == "u3@x.org"  # the old values of that row, paired by key


def test_switching_the_level_swaps_the_triggers_and_loses_no_change(
    make_database: Callable[[str], str], target_url: str, summit_url: str, instance: DagsterInstance
) -> None:
    source = make_database("src")
    create_source(source, rows=3)
    assert all(r.success for r in _level("row", source, target_url, summit_url, instance).cycle())
    assert run_sql(source, CAPTURE_TRIGGERS) == [("summit_cdc_users", True)]
    run_sql(source, "UPDATE public.users SET email = 'under row capture' WHERE id = 1")

    statement = _level("statement", source, target_url, summit_url, instance)
    assert all(r.success for r in statement.cycle())  # installs statement capture, applies
    assert run_sql(source, CAPTURE_TRIGGERS) == [
        ("summit_cdc_users", False), ("summit_cdc_users_d", False), ("summit_cdc_users_u", False)
    ]
    run_sql(source, "UPDATE public.users SET email = 'under statement capture' WHERE id IN (2, 3)")
    assert all(r.success for r in statement.cycle())
    assert target_rows(target_url) == source_rows(source)

    row = _level("row", source, target_url, summit_url, instance)
    run_sql(source, "UPDATE public.users SET email = 'still statement capture' WHERE id = 1")
    assert all(r.success for r in row.cycle())  # back to one row trigger, the change kept
    assert run_sql(source, CAPTURE_TRIGGERS) == [("summit_cdc_users", True)]
    run_sql(source, "DELETE FROM public.users WHERE id = 2")
    assert all(r.success for r in row.cycle())
    assert target_rows(target_url) == source_rows(source)
    emails = [new["email"] for op, _, _, new, *_ in change_log(target_url) if op == "UPDATE"]
    assert emails.count("under row capture") == emails.count("still statement capture") == 1
    assert emails.count("under statement capture") == 2
