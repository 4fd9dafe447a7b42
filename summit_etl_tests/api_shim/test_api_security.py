"""Bearer tokens on every mutating route when ETL_API_TOKENS is set."""

from __future__ import annotations

import httpx

from summit_etl_tests.api_shim.conftest import Stack

MUTATIONS = [
    ("POST", "/pipelines"), ("PUT", "/pipelines/users-sync"), ("DELETE", "/pipelines/users-sync"),
    ("POST", "/pipelines/users-sync/execute"), ("POST", "/pipelines/users-sync/backfill"),
    ("POST", "/pipelines/users-sync/runs/x/cancel"), ("POST", "/pipelines/users-cdc/cdc/start"),
    ("POST", "/pipelines/users-cdc/cdc/stop"), ("POST", "/admin/stop-all"), ("POST", "/admin/resume-all"),
]


def test_mutations_need_a_valid_token_reads_do_not(stack: Stack) -> None:
    with stack.api(ETL_API_TOKENS="s3cret-one,s3cret-two") as url, httpx.Client(base_url=url, timeout=60) as client:
        for method, path in MUTATIONS:
            missing = client.request(method, path)
            assert missing.status_code == 401, (method, path)
            assert missing.headers["www-authenticate"].startswith("Bearer")
            wrong = client.request(method, path, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 403, (method, path)
        assert client.get("/pipelines").status_code == 200
        assert client.get("/health").status_code == 200
        allowed = client.post("/pipelines/users-sync/cdc/start", headers={"Authorization": "Bearer s3cret-two"})
        assert allowed.status_code == 400  # past authentication, refused on its merits
