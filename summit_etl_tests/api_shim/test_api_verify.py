"""`POST /pipelines/{id}/verify` on the real service: match, differ, refused, unknown."""

from __future__ import annotations

import httpx

from summit_etl_tests.api_shim.conftest import Stack
from summit_etl_tests.support import run_sql


def test_verify_answers_match_then_differ_and_refuses_what_it_cannot_compare(
    api: httpx.Client, stack: Stack
) -> None:
    body = {
        "id": "users-verified",
        "name": "Users verified",
        "source": {"url": "${SOURCE_URL}", "table": "public.users"},
        "loading": {"strategy": "upsert", "targetTable": "dw.users_verified",
                    "targetUrl": "${TARGET_URL}", "upsertKey": ["id"], "createTable": True},
    }
    assert api.post("/pipelines", json=body).status_code == 201
    try:
        assert api.post("/pipelines/users-verified/execute?wait=true").json()["status"] == "success"
        answer = api.post("/pipelines/users-verified/verify").json()
        assert answer["status"] == "match"
        assert answer["sourceRows"] == answer["targetRows"] == 200
        run_sql(stack.target_url, "UPDATE dw.users_verified SET email = 'x' WHERE id = 17")
        answer = api.post("/pipelines/users-verified/verify").json()
        assert (answer["status"], answer["different"]) == ("differ", 1)
        assert answer["examples"] == [{"kind": "different", "key": {"id": 17}}]

        filtered = {**body, "transformation": {"transformations": [
            {"type": "filter", "expression": "id > 10"}]}}
        assert api.put("/pipelines/users-verified", json=filtered).status_code == 200
        refused = api.post("/pipelines/users-verified/verify")
        assert refused.status_code == 409
        assert "step 1 (filter)" in refused.json()["error"]
    finally:
        api.delete("/pipelines/users-verified")
    assert api.post("/pipelines/users-verified/verify").status_code == 404
