"""CDC under schema changes: a column added to the source mid-stream reaches the target
(evolve, the default for a target Summit created), with the values captured after it was
added; trigger capture keeps working after ALTER TABLE; the change is recorded."""

from __future__ import annotations

import uuid

import pytest

from summit_etl.engine import RunRequest, run_pipeline
from summit_etl.registry import parse_pipeline
from summit_etl_tests.cdc.cdc_support import create_source, insert, raw_pipeline
from summit_etl_tests.support import run_sql


@pytest.mark.parametrize("strategy", ["trigger", "log_based"])
def test_a_column_added_mid_stream_reaches_the_target(
    strategy: str,
    cdc_source: str,
    target_url: str,
    summit_url: str,
) -> None:
    source = cdc_source
    create_source(source, rows=2)
    config = parse_pipeline(raw_pipeline(strategy, source, target_url), "test")

    def run() -> None:
        outcome = run_pipeline(config, RunRequest(run_id=str(uuid.uuid4())), summit_url)
        assert outcome.status == "success"

    run()
    run_sql(source, "UPDATE public.users SET email = 'before@x.org' WHERE id = 1")
    run_sql(source, "ALTER TABLE public.users ADD COLUMN tier varchar(8)")
    run_sql(source, "UPDATE public.users SET tier = 'gold' WHERE id = 2")
    insert(source, 3, 3)
    run_sql(source, "UPDATE public.users SET tier = 'new' WHERE id = 3")
    run()
    assert run_sql(target_url, "SELECT id, email, tier FROM dw.users ORDER BY id") == [
        (1, "before@x.org", None),
        (2, "u2@x.org", "gold"),
        (3, "u3@x.org", "new"),
    ]
    assert run_sql(
        target_url, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'dw.users'::regclass AND attname = 'tier'"
    ) == [("character varying(8)",)]
    assert run_sql(summit_url, "SELECT column_name, change, action FROM etl_schema_changes") == [
        ("tier", "added", "added_column")
    ]
