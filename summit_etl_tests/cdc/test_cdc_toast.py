"""log_based updates that leave a TOASTed column untouched: pgoutput sends such a value as
'unchanged' (not its content); the target must keep the value, never NULL it."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from summit_etl.engine import RunRequest, run_pipeline
from summit_etl.registry import parse_pipeline
from summit_etl_tests.cdc.cdc_support import raw_pipeline
from summit_etl_tests.support import run_sql

# ~32 kB of random hex: compresses to well over the 2 kB TOAST threshold, so it is
# stored out of line and an update of another column does not rewrite it.
BIG = "(SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 1000))"


@pytest.mark.parametrize("identity", ["DEFAULT", "FULL"])
def test_unchanged_toast_values_keep_the_target_value(
    identity: str,
    logical_database: Callable[[], str],
    target_url: str,
    summit_url: str,
) -> None:
    source = logical_database()
    run_sql(source, "CREATE TABLE public.docs (id int PRIMARY KEY, body text, n int)")
    run_sql(source, f"ALTER TABLE public.docs REPLICA IDENTITY {identity}")
    run_sql(source, f"INSERT INTO public.docs SELECT g, {BIG}, 0 FROM generate_series(1, 3) g")
    # Two pipelines (two slots) on the same changes: a merge and a history target.
    configs = {}
    for loading in ("upsert", "scd_type2"):
        raw = raw_pipeline(
            "log_based", source, target_url, pipeline_id=f"docs-{loading.replace('_', '-')}",
            loading={"strategy": loading},
        )
        raw["source"]["table"] = "public.docs"
        raw["loading"]["targetTable"] = f"dw.docs_{loading}"
        configs[loading] = parse_pipeline(raw, "test")

    def run() -> None:
        for config in configs.values():
            outcome = run_pipeline(config, RunRequest(run_id=str(uuid.uuid4())), summit_url)
            assert outcome.status == "success"

    def rows(url: str, table: str, where: str = "true") -> list[tuple]:
        return run_sql(url, f"SELECT id, md5(body), length(body), n FROM {table} WHERE {where} ORDER BY id")

    def check() -> None:
        expected = rows(source, "public.docs")
        assert rows(target_url, "dw.docs_upsert") == expected
        assert rows(target_url, "dw.docs_scd_type2", "is_current") == expected

    run()  # the snapshot
    check()
    assert rows(source, "public.docs")[0][2] > 8192

    # Captured: n changes, body does not (pgoutput: 'u'); for row 2 the body changes first
    # and is then left untouched by a second update in the same batch.
    run_sql(source, "UPDATE public.docs SET n = n + 1 WHERE id = 1")
    run_sql(source, f"UPDATE public.docs SET body = {BIG} WHERE id = 2")
    run_sql(source, "UPDATE public.docs SET n = 7 WHERE id = 2")
    run()
    check()
    for table in ("dw.docs_upsert", "dw.docs_scd_type2"):
        assert run_sql(target_url, f"SELECT count(*) FROM {table} WHERE body IS NULL") == [(0,)]
