"""`/pipelines`: YAML and API pipelines, validation, conflicts, and Dagster seeing changes."""

from __future__ import annotations

import copy
from typing import Any

import httpx

from summit_etl_tests.api_shim.conftest import Stack, free_port
from summit_etl_tests.support import run_sql


def new_pipeline(pipeline_id: str) -> dict[str, Any]:
    return {
        "id": pipeline_id,
        "name": "Users copy",
        "source": {"url": "${SOURCE_URL}", "table": "public.users"},
        "loading": {"strategy": "bulk", "targetTable": f"dw.{pipeline_id.replace('-', '_')}",
                    "targetUrl": "${TARGET_URL}", "createTable": True},
        "schedule": {"cron": "0 5 * * *"},
    }


def test_yaml_pipelines_are_listed(api: httpx.Client) -> None:
    listed = {p["id"]: p for p in api.get("/pipelines").json()}
    assert {"users-sync", "slow-sync", "broken-load", "users-cdc"} <= set(listed)
    assert listed["users-sync"]["origin"] == "file"
    assert listed["users-sync"]["config"]["source"]["url"] == "${SOURCE_URL}"  # secrets stay references


def test_unknown_pipeline_is_404(api: httpx.Client) -> None:
    for method, path in [("GET", "/pipelines/nope"), ("PUT", "/pipelines/nope"), ("DELETE", "/pipelines/nope"),
                         ("POST", "/pipelines/nope/execute"), ("GET", "/pipelines/nope/runs"),
                         ("POST", "/pipelines/nope/backfill"), ("POST", "/pipelines/nope/cdc/start")]:
        body = new_pipeline("nope") if method == "PUT" else None
        response = api.request(method, path, json=body)
        assert response.status_code == 404, (method, path)
        assert response.json()["error"] == "pipeline 'nope' not found"


def test_invalid_bodies_are_400_naming_the_field(api: httpx.Client) -> None:
    bad = new_pipeline("bad-one")
    bad["loading"]["strategy"] = "merge"
    bad["bogus"] = 1
    response = api.post("/pipelines", json=bad)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid pipeline configuration"
    details = " ".join(response.json()["details"])
    assert "loading.strategy: Input should be 'bulk'" in details and "bogus: unknown key" in details
    incremental = {**new_pipeline("bad-one"), "extraction": {"strategy": "incremental"}}
    details = " ".join(api.post("/pipelines", json=incremental).json()["details"])
    assert "extraction.incrementalColumn is required" in details
    assert api.post("/pipelines", content=b"{not json", headers={"content-type": "application/json"}).status_code == 400
    assert api.post("/pipelines", json=[1, 2]).status_code == 400
    compared_bulk = {**new_pipeline("bad-one"), "extraction": {"compareHashes": True}}
    details = " ".join(api.post("/pipelines", json=compared_bulk).json()["details"])
    assert "extraction.compareHashes compares the source's rows" in details
    assert api.get("/pipelines/bad-one").status_code == 404  # nothing stored


def test_create_read_replace_delete_with_dagster_in_step(api: httpx.Client, stack: Stack) -> None:
    body = new_pipeline("users-copy")
    created = api.post("/pipelines", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["origin"] == "api" and created.json()["version"] == 1
    assert api.post("/pipelines", json=body).status_code == 409

    # The new pipeline's job exists in Dagster at once: it runs.
    run = api.post("/pipelines/users-copy/execute?wait=true").json()
    assert run["status"] == "success" and run["recordsLoaded"] == 200
    assert run_sql(stack.target_url, "SELECT count(*) FROM dw.users_copy") == [(200,)]

    changed = copy.deepcopy(body)
    changed["schedule"]["cron"] = "0 6 * * *"
    replaced = api.put("/pipelines/users-copy", json=changed)
    assert replaced.status_code == 200 and replaced.json()["version"] == 2
    assert api.get("/pipelines/users-copy").json()["config"]["schedule"]["cron"] == "0 6 * * *"
    assert api.put("/pipelines/users-sync", json={**changed, "id": "users-sync"}).status_code == 409  # YAML-owned

    assert api.delete("/pipelines/users-copy").status_code == 204
    assert api.get("/pipelines/users-copy").status_code == 404
    schedules = httpx.post(stack.graphql_url, json={"query": "{ repositoriesOrError { ... on RepositoryConnection { nodes { schedules { name } } } } }"}).json()
    names = {s["name"] for n in schedules["data"]["repositoriesOrError"]["nodes"] for s in n["schedules"]}
    assert "pipeline_users_copy_schedule" not in names and "pipeline_users_sync_schedule" in names


def test_a_compared_pipeline_reads_only_what_changed_through_the_service(
    api: httpx.Client, stack: Stack
) -> None:
    body = new_pipeline("users-compared")
    body["extraction"] = {"strategy": "full", "compareHashes": True}
    body["loading"] |= {"strategy": "upsert", "upsertKey": ["id"]}
    del body["schedule"]
    assert api.post("/pipelines", json=body).status_code == 201
    try:
        runs = [api.post("/pipelines/users-compared/execute?wait=true").json() for _ in range(2)]
        # The first run has no target to compare with; the second finds nothing changed.
        assert [(r["status"], r["recordsExtracted"]) for r in runs] == [
            ("success", 200),
            ("success", 0),
        ], runs
        assert run_sql(stack.target_url, "SELECT count(*) FROM dw.users_compared") == [(200,)]
    finally:
        assert api.delete("/pipelines/users-compared").status_code == 204


def test_summit_tables_and_clashing_dagster_names_are_409(api: httpx.Client, stack: Stack) -> None:
    own = new_pipeline("steals-quarantine")
    own["loading"] = {"strategy": "bulk", "targetTable": "etl_quarantine", "createTable": True}  # summit database
    response = api.post("/pipelines", json=own)
    assert response.status_code == 409 and response.json()["details"] == {"field": "loading.targetTable"}
    assert "public.etl_quarantine is one of summit's own tables" in response.json()["error"]
    clash = new_pipeline("users_sync")  # users-sync (a YAML pipeline) has the same Dagster name
    response = api.post("/pipelines", json=clash)
    assert response.status_code == 409 and response.json()["details"] == {"field": "id"}
    assert api.get("/pipelines/users_sync").status_code == 404
    assert run_sql(stack.summit_url, "SELECT count(*) FROM pipelines WHERE pipeline_id IN ('users_sync', 'steals-quarantine')") == [(0,)]


def test_a_delete_that_cannot_reach_dagster_changes_nothing(api: httpx.Client, stack: Stack) -> None:
    """DELETE pauses the row before it stops the schedules and sensors in Dagster; when
    Dagster does not answer, it answers 503 and leaves the row as it was (enabled, there)."""
    assert api.post("/pipelines", json=new_pipeline("delete-no-dagster")).status_code == 201
    try:
        with stack.api(DAGSTER_GRAPHQL_URL=f"http://127.0.0.1:{free_port()}/graphql") as url:
            response = httpx.delete(f"{url}/pipelines/delete-no-dagster", timeout=60)
        assert response.status_code == 503 and "dagster" in response.json()["error"]
        enabled = "SELECT enabled FROM pipelines WHERE pipeline_id = 'delete-no-dagster'"
        assert run_sql(stack.summit_url, enabled) == [(True,)]
    finally:
        assert api.delete("/pipelines/delete-no-dagster").status_code == 204
