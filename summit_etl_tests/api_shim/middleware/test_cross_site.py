"""Requests a web page on another site makes a browser send are refused with 403."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from api_shim.middleware.cross_site import CrossSiteMiddleware


def _client(*origins: str) -> TestClient:
    async def ok(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(
        routes=[Route("/admin/stop-all", ok, methods=["GET", "POST"])],
        middleware=[Middleware(CrossSiteMiddleware, allowed_origins=frozenset(origins))],
    )
    return TestClient(app, base_url="http://localhost:4020")


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "http://evil.example"},
        {"origin": "null"},  # sandboxed frames and file:// pages
        {"origin": "http://localhost:9999"},  # another port is another origin
        {"sec-fetch-site": "cross-site"},
        {"origin": "http://localhost:4020", "sec-fetch-site": "cross-site"},
    ],
)
def test_cross_site_requests_are_refused(headers: dict[str, str]) -> None:
    for method in ("GET", "POST"):
        assert _client().request(method, "/admin/stop-all", headers=headers).status_code == 403


@pytest.mark.parametrize(
    "headers",
    [
        {},  # curl, scripts
        {"origin": "http://localhost:4020", "sec-fetch-site": "same-origin"},
        {"sec-fetch-site": "none"},  # typed into the address bar
    ],
)
def test_same_origin_and_non_browser_requests_pass(headers: dict[str, str]) -> None:
    assert _client().post("/admin/stop-all", headers=headers).status_code == 200


def test_a_configured_origin_passes() -> None:
    client = _client("https://ops.example")
    headers = {"origin": "https://ops.example", "sec-fetch-site": "cross-site"}
    assert client.post("/admin/stop-all", headers=headers).status_code == 200
    headers = {"origin": "https://ops.example.evil", "sec-fetch-site": "cross-site"}
    assert client.post("/admin/stop-all", headers=headers).status_code == 403
