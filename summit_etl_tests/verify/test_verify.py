"""Verify on real databases: equal, missing, extra and changed rows, found through the
range bisection down to the row; scd_type2 current rows; renames; refusals."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from summit_etl import cli
from summit_etl.engine import RunRequest, run_pipeline
from summit_etl.registry import parse_pipeline
from summit_etl.verify import VerifyUnsupported, diff, verify_pipeline
from summit_etl_tests.support import run_sql

TABLE = """
CREATE TABLE {name} (
    id bigint PRIMARY KEY, name text, price numeric(12,2), at timestamptz, tags text[]
)
"""
FILL = """
INSERT INTO {name}
SELECT g, 'item ' || g, g / 4.0, '2025-01-01T00:00:00Z'::timestamptz + make_interval(secs => g),
       ARRAY['a', NULL, g::text]
  FROM generate_series(1, %s) g
"""


def pipeline(source_url: str, target_url: str, **overrides: Any) -> Any:
    raw: dict[str, Any] = {
        "id": "items",
        "name": "Items",
        "source": {"url": source_url, "table": "public.items"},
        "loading": {
            "strategy": "upsert",
            "targetTable": "public.items_copy",
            "targetUrl": target_url,
            "upsertKey": ["id"],
        },
    }
    raw.update(overrides)
    return parse_pipeline(raw, "test")


def make_equal(source_url: str, target_url: str, rows: int) -> None:
    run_sql(source_url, TABLE.format(name="public.items"))
    run_sql(source_url, FILL.format(name="public.items"), (rows,))
    run_sql(target_url, TABLE.format(name="public.items_copy"))
    run_sql(target_url, FILL.format(name="public.items_copy"), (rows,))


def test_equal_tables_match(source_url: str, target_url: str, summit_url: str) -> None:
    make_equal(source_url, target_url, 3000)
    answer = verify_pipeline(pipeline(source_url, target_url), summit_url)
    assert answer["status"] == "match"
    assert (answer["sourceRows"], answer["targetRows"]) == (3000, 3000)
    assert (answer["missing"], answer["extra"], answer["different"]) == (0, 0, 0)
    assert answer["examples"] == []
    assert answer["durationMs"] > 0


def test_missing_extra_and_changed_rows_are_found_through_bisection(
    source_url: str, target_url: str, summit_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small ranges force two levels of bisection before rows are compared.
    monkeypatch.setattr(diff, "SEGMENTS", 8)
    monkeypatch.setattr(diff, "ROW_LIMIT", 50)
    make_equal(source_url, target_url, 20000)
    run_sql(target_url, "DELETE FROM public.items_copy WHERE id IN (7, 9000, 19999)")
    run_sql(target_url, "INSERT INTO public.items_copy (id, name) VALUES (20001, 'x'), (-5, 'y')")
    run_sql(target_url, "UPDATE public.items_copy SET name = 'changed' WHERE id IN (1, 12345)")
    run_sql(target_url, "UPDATE public.items_copy SET tags = ARRAY['a'] WHERE id = 500")
    run_sql(target_url, "UPDATE public.items_copy SET at = at + interval '1 microsecond' WHERE id = 501")
    answer = verify_pipeline(pipeline(source_url, target_url), summit_url)
    assert answer["status"] == "differ"
    assert (answer["sourceRows"], answer["targetRows"]) == (20000, 19999)
    assert (answer["missing"], answer["extra"], answer["different"]) == (3, 2, 4)
    kinds = {(e["kind"], e["key"]["id"]) for e in answer["examples"]}
    assert ("missing", 9000) in kinds and ("extra", -5) in kinds and ("different", 12345) in kinds
    assert all(set(e) == {"kind", "key"} for e in answer["examples"])  # no values leave


def test_duplicated_target_rows_count_as_extra_and_composite_keys_compare_whole(
    source_url: str, target_url: str, summit_url: str
) -> None:
    ddl = "CREATE TABLE {} (region text, id int, v text, PRIMARY KEY (region, id))"
    run_sql(source_url, ddl.format("public.items"))
    run_sql(target_url, ddl.format("public.items_copy").replace(", PRIMARY KEY (region, id)", ""))
    fill = "INSERT INTO {} SELECT r, g, r || g FROM unnest(ARRAY['eu', 'us']) r, generate_series(1, 500) g"
    run_sql(source_url, fill.format("public.items"))
    run_sql(target_url, fill.format("public.items_copy"))
    run_sql(target_url, "INSERT INTO public.items_copy VALUES ('eu', 3, 'eu3')")  # a duplicate
    run_sql(target_url, "UPDATE public.items_copy SET v = 'x' WHERE region = 'us' AND id = 3")
    config = pipeline(
        source_url,
        target_url,
        loading={"strategy": "append_only", "targetTable": "public.items_copy", "targetUrl": target_url},
    )
    answer = verify_pipeline(config, summit_url)
    assert (answer["missing"], answer["extra"], answer["different"]) == (0, 1, 1)
    assert {"kind": "extra", "key": {"region": "eu", "id": 3}} in answer["examples"]


def test_scd_type2_targets_compare_their_current_rows(
    source_url: str, target_url: str, summit_url: str
) -> None:
    run_sql(source_url, TABLE.format(name="public.items"))
    run_sql(source_url, FILL.format(name="public.items"), (200,))
    run_sql(source_url, "ALTER TABLE public.items DROP COLUMN tags")
    config = pipeline(
        source_url,
        target_url,
        loading={
            "strategy": "scd_type2",
            "targetTable": "public.items_history",
            "targetUrl": target_url,
            "upsertKey": ["id"],
            "createTable": True,
        },
    )

    def run() -> None:
        run_pipeline(config, RunRequest(str(uuid.uuid4())), summit_url)

    run()
    assert verify_pipeline(config, summit_url)["status"] == "match"
    run_sql(source_url, "UPDATE public.items SET name = 'renamed' WHERE id = 10")
    changed = verify_pipeline(config, summit_url)
    assert (changed["status"], changed["different"], changed["targetRows"]) == ("differ", 1, 200)
    run()  # closes version 1 of id 10 and opens version 2: history is not compared
    assert run_sql(target_url, "SELECT count(*) FROM public.items_history")[0][0] == 201
    assert verify_pipeline(config, summit_url)["status"] == "match"


def test_renamed_columns_compare_with_their_source_columns(
    source_url: str, target_url: str, summit_url: str
) -> None:
    run_sql(source_url, TABLE.format(name="public.items"))
    run_sql(source_url, FILL.format(name="public.items"), (100,))
    run_sql(target_url, "CREATE TABLE public.items_copy (id bigint PRIMARY KEY, title text)")
    run_sql(target_url, "INSERT INTO public.items_copy SELECT g, 'item ' || g FROM generate_series(1, 100) g")
    steps = {"transformations": [
        {"type": "map", "fieldMapping": {"label": "name"}, "includeUnmapped": True},
        {"type": "map", "fieldMapping": {"id": "id", "title": "label"}},
    ]}
    config = pipeline(source_url, target_url, transformation=steps)
    assert verify_pipeline(config, summit_url)["status"] == "match"
    run_sql(target_url, "UPDATE public.items_copy SET title = 'other' WHERE id = 4")
    assert verify_pipeline(config, summit_url)["different"] == 1


def test_pipelines_that_change_rows_are_refused_with_the_step_named(
    source_url: str, target_url: str, summit_url: str
) -> None:
    make_equal(source_url, target_url, 10)
    steps = {"transformations": [{"type": "filter", "expression": "id > 3"}]}
    with pytest.raises(VerifyUnsupported, match=r"step 1 \(filter\) changes rows"):
        verify_pipeline(pipeline(source_url, target_url, transformation=steps), summit_url)


def test_a_missing_target_is_said_plainly(source_url: str, target_url: str, summit_url: str) -> None:
    run_sql(source_url, TABLE.format(name="public.items"))
    with pytest.raises(VerifyUnsupported, match="items_copy does not exist yet"):
        verify_pipeline(pipeline(source_url, target_url), summit_url)


def test_the_cli_answers_in_json_and_exits_1_on_differences(
    source_url: str, target_url: str, summit_url: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    make_equal(source_url, target_url, 50)
    run_sql(target_url, "DELETE FROM public.items_copy WHERE id = 1")
    raw = {"id": "items", "name": "Items", "source": {"url": source_url, "table": "public.items"},
           "loading": {"strategy": "upsert", "targetTable": "public.items_copy",
                       "targetUrl": target_url, "upsertKey": ["id"]}}
    (tmp_path / "items.yaml").write_text(json.dumps(raw))  # YAML is a superset of JSON
    monkeypatch.setenv("SUMMIT_PIPELINES_DIR", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", summit_url)
    assert cli.main(["verify", "items", "--json"]) == 1
    answer = json.loads(capsys.readouterr().out)
    assert (answer["status"], answer["missing"]) == ("differ", 1)
    assert cli.main(["verify", "nope"]) == 2
