"""Every CDC strategy end to end: sensor ticks on a real Dagster instance launch runs that
apply inserts, updates and (where the strategy sees them) deletes to the target and its
change log, in the target's own transaction."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from decimal import Decimal

import pytest
from dagster import DagsterInstance

from summit_etl_tests.cdc.cdc_support import (
    CAPTURES_DELETES,
    STRATEGIES,
    Harness,
    change_log,
    create_source,
    insert,
    raw_pipeline,
    source_rows,
    target_rows,
)
from summit_etl_tests.support import run_sql


@pytest.fixture(params=STRATEGIES)
def strategy(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def cdc_source(cdc_source: str) -> str:
    """The shared fixture's database, with three rows in its source table."""
    create_source(cdc_source, rows=3)
    return cdc_source


def test_inserts_updates_and_deletes_reach_target_and_change_log(
    strategy: str, cdc_source: str, target_url: str, summit_url: str, instance: DagsterInstance
) -> None:
    cdc = Harness(raw_pipeline(strategy, cdc_source, target_url), summit_url, instance)
    first = cdc.cycle()
    assert len(first) == 1 and first[0].success
    assert target_rows(target_url) == source_rows(cdc_source)
    assert [(op, key) for op, key, *_ in change_log(target_url)] == [("INSERT", "1"), ("INSERT", "2"), ("INSERT", "3")]
    run_id = first[0].run_id
    assert run_sql(summit_url, "SELECT status, trigger, records_loaded FROM pipeline_runs WHERE id = %s", (run_id,)) == [("success", "cdc", 3)]

    run_sql(cdc_source, "UPDATE public.users SET email = 'changed@x.org', score = 99.99 WHERE id = 1")
    run_sql(cdc_source, "DELETE FROM public.users WHERE id = 2")
    insert(cdc_source, 4, 4)
    second = cdc.cycle()
    assert len(second) == 1 and second[0].success
    expected = source_rows(cdc_source)
    if strategy not in CAPTURES_DELETES:  # polling cannot see a row that is gone
        expected = sorted([*expected, (2, "u2@x.org", Decimal("2.50"), {"n": 2})])
    assert target_rows(target_url) == expected
    new = [row for row in change_log(target_url) if row[5] == second[0].run_id]
    operations = sorted((op, key) for op, key, *_ in new)
    assert ("UPDATE", "1") in operations and ("INSERT", "4") in operations
    assert (("DELETE", "2") in operations) is (strategy in CAPTURES_DELETES)
    update = next(row for row in new if row[0] == "UPDATE")
    assert update[2]["email"] == "u1@x.org" and update[3]["email"] == "changed@x.org"
    assert Decimal(str(update[3]["score"])) == Decimal("99.99")

    # Caught up: the next tick launches nothing, says so, and its cursor agrees with
    # etl_cdc_watermarks, whose last_processed_time moves forward.
    before = cdc.watermark()
    idle = cdc.tick()
    assert not idle.run_requests and "caught up" in (idle.skip_message or "")
    after = cdc.watermark()
    assert before is not None and after is not None
    assert after[0] == before[0] and after[2] > before[2]
    assert f'"watermark": "{after[0]}"' in (cdc.cursor or "") or after[0] is None


def test_many_changes_in_one_poll_with_shared_timestamps(
    strategy: str, cdc_source: str, target_url: str, summit_url: str, instance: DagsterInstance
) -> None:
    cdc = Harness(raw_pipeline(strategy, cdc_source, target_url), summit_url, instance)
    assert all(r.success for r in cdc.cycle())
    # 450 rows from one transaction share one updated_at, over several batches of 100;
    # then three updates of the same rows in three transactions.
    insert(cdc_source, 100, 549)
    for round_ in range(3):
        run_sql(cdc_source, "UPDATE public.users SET score = score + 1, email = %s WHERE id BETWEEN 100 AND 119", (f"r{round_}",))
    if strategy in CAPTURES_DELETES:
        run_sql(cdc_source, "DELETE FROM public.users WHERE id BETWEEN 540 AND 549")
    runs = cdc.cycle()
    assert len(runs) == 1 and runs[0].success
    assert target_rows(target_url) == source_rows(cdc_source) or strategy not in CAPTURES_DELETES
    log = change_log(target_url)
    positions = Counter(row[4] for row in log)
    assert max(positions.values()) == 1
    per_key = Counter(key for _, key, *_ in log)
    if strategy in CAPTURES_DELETES:
        # every change is kept: insert + 3 updates for 100..119, insert + delete for 540..549
        assert all(per_key[str(k)] == 4 for k in range(100, 120))
        assert all(per_key[str(k)] == 2 for k in range(540, 550))
        assert len(log) == 3 + 450 + 60 + 10
    else:
        # polling sees the newest version of each row once
        assert all(per_key[str(k)] == 1 for k in range(100, 550))
        assert len(log) == 3 + 450
    assert not cdc.tick().run_requests


def test_scd_type2_keeps_history_of_captured_changes(
    make_database: Callable[[str], str], target_url: str, summit_url: str, instance: DagsterInstance
) -> None:
    source = make_database("src")
    create_source(source, rows=2)
    cdc = Harness(raw_pipeline("trigger", source, target_url, loading={"strategy": "scd_type2"}), summit_url, instance)
    assert all(r.success for r in cdc.cycle())
    run_sql(source, "UPDATE public.users SET email = 'new@x.org' WHERE id = 1")
    run_sql(source, "UPDATE public.users SET email = email WHERE id = 2")  # no real change
    run_sql(source, "DELETE FROM public.users WHERE id = 2")
    assert all(r.success for r in cdc.cycle())
    history = run_sql(target_url, "SELECT id, email, is_current, effective_to IS NULL FROM dw.users ORDER BY id, effective_from")
    assert history == [
        (1, "u1@x.org", False, False),
        (1, "new@x.org", True, True),
        (2, "u2@x.org", False, False),
    ]
