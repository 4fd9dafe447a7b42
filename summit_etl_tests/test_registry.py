"""The registry refuses YAML pipelines that clash, with a config error naming the file."""

from __future__ import annotations

from pathlib import Path

import yaml

from summit_etl.registry import load_registry


def write(folder: Path, pipeline_id: str, target: str) -> None:
    document = {"id": pipeline_id, "name": pipeline_id,
                "source": {"url": "postgresql://127.0.0.1/src", "table": "public.users"},
                "loading": {"strategy": "bulk", "targetTable": target, "targetUrl": "postgresql://127.0.0.1/dst"}}
    (folder / f"{pipeline_id}.yaml").write_text(yaml.safe_dump(document))


def test_yaml_ids_with_one_dagster_name_are_a_config_error(tmp_path: Path) -> None:
    write(tmp_path, "a-b", "dw.first")
    write(tmp_path, "a_b", "dw.second")
    registry = load_registry(tmp_path, None)
    assert list(registry.pipelines) == ["a-b"]
    [error] = registry.errors
    assert error.origin.endswith("a_b.yaml")
    assert error.problems[0].startswith("id: 'a_b' and pipeline 'a-b' map to the same Dagster job")


def test_yaml_target_of_summit_state_is_a_config_error(tmp_path: Path) -> None:
    summit = "postgresql://127.0.0.1/dst"  # this registry's summit database is the target's
    write(tmp_path, "sneaky", "public.etl_quarantine")
    registry = load_registry(tmp_path, None)
    assert "sneaky" in registry.pipelines  # without a summit database there is nothing to guard
    registry = load_registry(tmp_path, summit)  # the pipelines table is unreadable: files only
    assert registry.pipelines == {}
    assert "loading.targetTable: public.etl_quarantine is one of summit's own tables" in str(registry.errors[0])
