"""Probes of issue 10 against the real service: a body cannot read secrets, run code or
extra SQL, or name a missing column; the original system's step shape is accepted."""

from __future__ import annotations

from typing import Any

import httpx

from summit_etl_tests.api_shim.conftest import Stack
from summit_etl_tests.api_shim.test_api_pipelines import new_pipeline


def refused(api: httpx.Client, body: dict[str, Any]) -> str:
    response = api.post("/pipelines", json=body)
    assert response.status_code == 400, response.text
    assert api.get(f"/pipelines/{body['id']}").status_code == 404  # nothing stored
    return response.text


def with_steps(pipeline_id: str, *steps: dict[str, Any]) -> dict[str, Any]:
    return {**new_pipeline(pipeline_id), "transformation": {"transformations": list(steps)}}


def test_hostile_configs_are_400_naming_the_field(api: httpx.Client, stack: Stack) -> None:
    leak = new_pipeline("leaky")
    leak["source"]["table"] = "${DATABASE_URL}"
    text = refused(api, leak)
    assert "source.table" in text and stack.summit_url not in text
    assert "'os:system' is not a public function of the modules" in refused(
        api, with_steps("code", {"type": "custom", "function": "os:system"})
    )
    rule = {"id": "sneaky", "dimension": "accuracy", "rule": {
        "type": "custom_sql", "config": {"query": "SELECT * FROM {batch}; DROP TABLE pipelines"}}}
    assert "quality rule 'sneaky' query must be a single SELECT" in refused(
        api, {**new_pipeline("sneaky"), "quality": {"rules": [rule]}}
    )
    typo = with_steps("typo", {"type": "filter", "expression": "emial IS NOT NULL"})
    assert "transformation step 1 (filter): column(s) 'emial' will not be in its rows" in refused(
        api, typo
    )


def test_the_original_systems_nested_steps_are_accepted(api: httpx.Client) -> None:
    body = with_steps(
        "nested-shape",
        {"type": "filter", "name": "real-users", "order": 2,
         "config": {"expression": "user_id > 0"}},
        {"type": "map", "name": "rename", "order": 1,
         "config": {"fieldMapping": {"user_id": "id", "email": "email"}}},
    )
    created = api.post("/pipelines", json=body)
    assert created.status_code == 201, created.text
    assert api.delete("/pipelines/nested-shape").status_code == 204
