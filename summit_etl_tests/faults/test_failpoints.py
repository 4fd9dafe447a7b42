"""SIGKILL the run worker at every failpoint that applies to a pipeline, rerun, and compare
target with source key by key: nothing lost, nothing duplicated, nothing extra.

Each case loads the source once (clean), changes it (updates, inserts, deletes where the
strategy sees them), runs the job in a worker process that dies at the failpoint, then
runs again without one. The `@2` cases kill the second attempt of a full read that
started over (an 'infinity' in its last batch, read typed at first). docs/reliability.md
tabulates these cases.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import pytest

from summit_etl_tests.cdc.cdc_support import LogicalCluster
from summit_etl_tests.faults.fault_support import (
    CLEAN,
    ROWS,
    WIDE_ROWS,
    MakeDatabase,
    change_source,
    create_source,
    pipeline,
    scd2_versions,
    source_high_mark,
    tally,
    watermark,
)
from summit_etl_tests.faults.worker import KILLED, run_job, worker_exit
from summit_etl_tests.support import run_sql

CASES = [
    pytest.param("bulk", point, id=f"bulk-{point}")
    for point in ("extraction", "loading", "target-committed")
] + [
    pytest.param("upsert", point, id=f"incremental_upsert-{point}")
    for point in ("extraction", "loading", "target-committed")
] + [
    pytest.param("quarantine", "quarantine", id="incremental_upsert-quarantine")
] + [
    pytest.param("scd2", point, id=f"scd_type2-{point}")
    for point in ("extraction", "loading", "target-committed")
] + [
    pytest.param(case, f"{point}@2", id=f"{case}-restarted_read-{point}")
    for case, point in (("bulk", "extraction"), ("bulk", "loading"), ("scd2", "loading"))
] + [
    pytest.param(strategy, point, id=f"cdc_{strategy}-{point}")
    for strategy in ("trigger", "log_based")
    for point in ("extraction", "loading", "cdc-applied")
] + [
    pytest.param(case, point, id=f"{case}-{point}")
    for case, point in (
        ("compared_delta", "compared"),
        ("compared_delta", "loading"),
        ("compared_delta", "target-committed"),
        ("compared_scd2", "compared"),
        ("compared_scd2", "target-committed"),
    )
]
# What the rerun of a compared case reads: the changed and inserted rows, unless the killed
# run committed them (then nothing).
_COMPARED_REREAD = {"compared": 300 + 600, "loading": 300 + 600, "target-committed": 0}


@pytest.mark.parametrize(("case", "point"), CASES)
def test_a_run_killed_at_a_failpoint_is_recovered_by_the_next_run(
    case: str,
    point: str,
    cluster: LogicalCluster,
    cluster_database: MakeDatabase,
    summit: str,
) -> None:
    # Source (public.items) and target (dw.items) share a database: half the databases
    # to create and check-point keeps the suite within its time.
    source = target = cluster_database(cluster)
    create_source(source)
    raw = pipeline(case, f"faults-{case}-{point.replace('@', '-')}", source, target)
    quarantining = case == "quarantine"
    rule = "qty >= 0" if quarantining else "true"
    scd2 = case in ("scd2", "compared_scd2")
    assert run_job(raw, summit)
    assert tally(source, target, scd2=scd2, rule=rule) == CLEAN
    before = watermark(summit, raw["id"])

    deletes = case in ("bulk", "trigger", "log_based", "compared_delta")
    change_source(source, deletes=deletes, infinity="@" in point)
    assert worker_exit(raw, summit, failpoint=point) == KILLED  # it died at the point
    assert watermark(summit, raw["id"]) == before

    assert run_job(raw, summit)
    assert tally(source, target, scd2=scd2, rule=rule) == CLEAN
    if case.startswith("compared_"):  # the rerun compared, and read only what it had to
        (read,) = run_sql(
            summit,
            "SELECT records_extracted FROM pipeline_runs WHERE pipeline_id = %s "
            "AND status = 'success' ORDER BY created_at DESC LIMIT 1",
            (raw["id"],),
        )[0]
        assert read == _COMPARED_REREAD[point]
    if case in ("upsert", "quarantine"):
        assert datetime.fromisoformat(watermark(summit, raw["id"])) == source_high_mark(source)
    if scd2:  # the updated keys have two versions, no key has three
        restarted = "@" in point
        updated, inserted = 300 + restarted, 600 + WIDE_ROWS * restarted
        assert scd2_versions(target) == Counter({1: ROWS + inserted - updated, 2: updated})
    if quarantining:
        held = run_sql(
            summit,
            "SELECT record ->> 'id', count(*) FROM etl_quarantine WHERE pipeline_id = %s "
            "AND status = 'quarantined' GROUP BY record::text, record ->> 'id'",
            (raw["id"],),
        )
        failing = {str(i) for (i,) in run_sql(source, "SELECT id FROM public.items WHERE qty < 0")}
        assert failing <= {key for key, _ in held}  # none lost
        assert sum(n - 1 for _, n in held) == 0  # none held twice
