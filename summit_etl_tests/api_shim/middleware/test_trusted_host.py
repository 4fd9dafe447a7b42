"""Hosts outside the allow-list are refused, whatever the port (DNS rebinding)."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from api_shim.middleware.trusted_host import TrustedHostMiddleware, host_name
from api_shim.settings import allowed_hosts


def _client() -> TestClient:
    async def ok(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    hosts = allowed_hosts("127.0.0.1", "etl.internal")
    app = Starlette(
        routes=[Route("/", ok)], middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=hosts)]
    )
    return TestClient(app)


@pytest.mark.parametrize(
    "host", ["localhost:4020", "127.0.0.1:4020", "[::1]:4020", "localhost", "ETL.internal:8443"]
)
def test_loopback_and_configured_names_are_served(host: str) -> None:
    assert _client().get("/", headers={"host": host}).status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:4020", "localhost.evil.example", ""])
def test_other_hosts_are_refused_naming_the_setting(host: str) -> None:
    response = _client().get("/", headers={"host": host})
    assert response.status_code == 400
    assert "ETL_ALLOWED_HOSTS" in response.json()["error"]


def test_host_name_drops_the_port_only() -> None:
    assert host_name("[::1]:4020") == "[::1]"
    assert host_name("LocalHost:1") == "localhost"
    assert host_name("::1") == "::1"  # a bare IPv6 literal is not name:port
