"""The pipeline model: strict validation with errors that name the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from summit_etl.config import LoadStrategy, PipelineConfig
from summit_etl.registry import ConfigError, load_registry, parse_pipeline


def base(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "id": "users-sync",
        "name": "Users",
        "source": {"url": "postgresql://localhost/src", "table": "public.users"},
        "loading": {"strategy": "upsert", "targetTable": "analytics.users", "upsertKey": ["id"]},
    }
    for key, value in overrides.items():
        raw[key] = value
    return raw


def problems(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_pipeline(raw, "pipelines/users.yaml")
    return str(info.value)


def test_a_valid_config_has_sane_defaults() -> None:
    config = parse_pipeline(base(), "x")
    assert isinstance(config, PipelineConfig)
    assert config.loading.strategy is LoadStrategy.upsert
    assert config.extraction.batch_size == 50_000
    assert config.enabled is True
    assert config.quality.weights.accuracy == 25


def test_unknown_key_is_named() -> None:
    message = problems(base(extraction={"strategy": "full", "bathSize": 10}))
    assert "pipelines/users.yaml" in message
    assert "extraction.bathSize: unknown key" in message


def test_bad_strategy_is_named() -> None:
    message = problems(base(loading={"strategy": "merge", "targetTable": "a.b"}))
    assert "loading.strategy" in message
    assert "'bulk'" in message  # the accepted values are listed


def test_incremental_needs_its_column() -> None:
    message = problems(base(extraction={"strategy": "incremental"}))
    assert "extraction.incrementalColumn is required" in message


def test_parallel_reads_are_full_reads_of_a_table() -> None:
    assert parse_pipeline(base(), "x").extraction.parallelism == 1
    config = parse_pipeline(base(extraction={"strategy": "full", "parallelism": 4}), "x")
    assert config.extraction.parallelism == 4
    assert "extraction.parallelism" in problems(base(extraction={"parallelism": 17}))
    incremental = {"strategy": "incremental", "incrementalColumn": "at", "parallelism": 2}
    message = problems(base(extraction=incremental))
    assert "extraction.parallelism above 1" in message
    query = {"url": "postgresql://localhost/src", "query": "SELECT 1 AS id"}
    message = problems(base(source=query, extraction={"parallelism": 2}))
    assert "needs extraction.strategy 'full' and source.table" in message


def test_merge_strategies_need_a_key() -> None:
    message = problems(base(loading={"strategy": "scd_type2", "targetTable": "a.b"}))
    assert "loading.upsertKey is required" in message


@pytest.mark.parametrize(
    ("section", "field", "value"),
    [
        ("source", "table", "users; DROP TABLE users"),
        ("source", "table", 'public."users"'),
        ("loading", "targetTable", "a.b.c.d"),
        ("loading", "upsertKey", ["id) OR 1=1 --"]),
    ],
)
def test_injection_attempts_in_names_are_rejected(section: str, field: str, value: Any) -> None:
    raw = base()
    raw[section] = {**raw[section], field: value}
    message = problems(raw)
    assert f"{section}." in message
    assert "valid SQL identifier" in message or "too many parts" in message


def test_source_query_must_be_one_select() -> None:
    raw = base(source={"url": "postgresql://x/y", "query": "DELETE FROM users"})
    assert "single SELECT" in problems(raw)
    raw = base(source={"url": "postgresql://x/y", "query": "SELECT 1; DROP TABLE users"})
    assert "single SELECT" in problems(raw)


def test_bad_pipeline_id_and_cron() -> None:
    assert "id: String should match pattern" in problems(base(id="Users Sync"))
    assert "schedule.cron" in problems(base(schedule={"cron": "every day"}))


def test_one_bad_file_does_not_stop_the_others(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(
        "id: good\nname: Good\nsource: {url: 'postgresql://h/d', table: t}\n"
        "loading: {strategy: bulk, targetTable: t2}\n"
    )
    (tmp_path / "bad.yaml").write_text(
        "id: bad\nname: Bad\nsource: {url: 'postgresql://h/d', table: t}\n"
        "loading: {strategy: nope, targetTable: t2}\n"
    )
    (tmp_path / "broken.yaml").write_text("id: [unclosed\n")
    registry = load_registry(tmp_path, summit_url=None)
    assert list(registry.pipelines) == ["good"]
    origins = sorted(Path(e.origin).name for e in registry.errors)
    assert origins == ["bad.yaml", "broken.yaml"]
    assert any("loading.strategy" in str(e) for e in registry.errors)
    assert any("not valid YAML" in str(e) for e in registry.errors)


def test_the_shipped_example_pipelines_are_valid() -> None:
    registry = load_registry(Path(__file__).parents[2] / "pipelines", summit_url=None)
    assert registry.errors == []
    assert {"customers-full", "orders-incremental", "customers-history"} <= set(registry.pipelines)
