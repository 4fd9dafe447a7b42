"""Custom steps: any module in the operator's files, only allowed prefixes over the API."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from summit_etl.registry import ConfigError, Registry, load_registry, parse_pipeline
from summit_etl_tests.config.test_config_pipeline import base

FUNCTION = "summit_etl_tests.transform.transform_support:add_total"


def with_custom(function: str = FUNCTION, pipeline_id: str = "users-sync") -> dict:
    step = {"type": "custom", "function": function}
    return base(id=pipeline_id, transformation={"transformations": [step]})


def test_request_bodies_may_call_no_module_by_default() -> None:
    with pytest.raises(ConfigError) as info:
        parse_pipeline(with_custom("os:system"), "request body")
    message = str(info.value)
    assert "transformation.transformations.0.custom.function" in message
    assert "'os:system' is not a public function of the modules" in message
    assert "SUMMIT_CUSTOM_MODULES" in message


def test_allowed_prefixes_match_whole_module_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUMMIT_CUSTOM_MODULES", "summit_etl_tests.transform, acme")
    assert parse_pipeline(with_custom(), "request body").transformation.transformations
    for refused in ("acme_evil:f", "summit_etl_tests.config:f", "os:system", "acme:__loader__",
                    "acme._private:f"):
        with pytest.raises(ConfigError, match="is not a public function of the modules"):
            parse_pipeline(with_custom(refused), "request body")
    assert parse_pipeline(with_custom("acme.steps:f"), "request body")


def test_the_registry_trusts_files_but_not_table_rows(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(with_custom("os:getcwd", "mine")))
    registry = load_registry(tmp_path, summit_url=None)
    assert list(registry.pipelines) == ["mine"] and registry.errors == []
    rows = Registry()
    rows.add(with_custom("os:getcwd", "theirs"), "pipelines table row 'theirs'")
    assert rows.pipelines == {}
    assert "is not a public function of the modules" in str(rows.errors[0])
