"""Tokens with roles: 401 without a valid token, 403 with too small a role, open routes open."""

from __future__ import annotations

import logging

import pytest
from starlette.testclient import TestClient

from api_shim.app import create_app
from api_shim.settings import ApiSettings, parse_tokens

TOKENS = parse_tokens("admin:tok-admin, operate:tok-operate ,read:tok-read")
SETTINGS = ApiSettings(tokens=TOKENS, database_url="postgresql://127.0.0.1:1/none")

# (method, path, least role); the unit app has no database, so a request that passes
# authentication ends in 503/404/400 from the route: anything but 401/403.
CASES = [
    ("GET", "/metrics", "read"),
    ("GET", "/pipelines", "read"),
    ("GET", "/pipelines/p/runs", "read"),
    ("GET", "/quality/reports/latest", "read"),
    ("POST", "/pipelines/p/execute", "operate"),
    ("POST", "/pipelines/p/backfill", "operate"),
    ("POST", "/pipelines/p/runs/r/cancel", "operate"),
    ("POST", "/pipelines/p/cdc/start", "operate"),
    ("POST", "/pipelines/p/cdc/stop", "operate"),
    ("POST", "/pipelines/p/runs/r/quarantine/replay", "operate"),
    ("POST", "/pipelines", "admin"),
    ("PUT", "/pipelines/p", "admin"),
    ("DELETE", "/pipelines/p", "admin"),
    ("POST", "/admin/stop-all", "admin"),
    ("POST", "/admin/resume-all", "admin"),
]
ORDER = ["read", "operate", "admin"]


@pytest.fixture(scope="module")
def client() -> TestClient:
    # No `with`: the lifespan (database pool, Dagster client) is not started.
    return TestClient(create_app(SETTINGS), base_url="http://localhost", raise_server_exceptions=False)


@pytest.mark.parametrize(("method", "path", "least"), CASES)
def test_each_route_needs_its_role(client: TestClient, method: str, path: str, least: str) -> None:
    missing = client.request(method, path)
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    wrong = client.request(method, path, headers={"authorization": "Bearer tok-nope"})
    assert wrong.status_code == 401
    for role in ORDER:
        response = client.request(method, path, headers={"authorization": f"Bearer tok-{role}"})
        if ORDER.index(role) < ORDER.index(least):
            assert response.status_code == 403, (role, response.text)
            assert f"{least} needed" in response.json()["error"]
        else:
            assert response.status_code not in (401, 403), (role, response.text)


def test_health_and_the_openapi_document_need_no_token(client: TestClient) -> None:
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/health").status_code not in (401, 403)


def test_unknown_paths_need_a_token_too(client: TestClient) -> None:
    assert client.get("/nothing-here").status_code == 401


def test_tokens_never_reach_the_log(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        client.post("/admin/stop-all", headers={"authorization": "Bearer tok-read"})
        client.post("/admin/stop-all", headers={"authorization": "Bearer tok-guess"})
    assert caplog.records
    assert not [r for r in caplog.records if "tok-" in str(vars(r))]


def test_without_tokens_everything_is_open_on_loopback() -> None:
    open_client = TestClient(create_app(ApiSettings(database_url=SETTINGS.database_url)), base_url="http://localhost", raise_server_exceptions=False)
    assert open_client.post("/admin/stop-all").status_code not in (401, 403)
