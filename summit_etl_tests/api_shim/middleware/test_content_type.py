"""Mutating requests with a body (or any Content-Type) must be application/json; a bodiless
POST without one (curl -X POST, as in the runbook) passes."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from api_shim.middleware.content_type import JsonContentTypeMiddleware


def _client() -> TestClient:
    async def ok(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(
        routes=[Route("/x", ok, methods=["GET", "POST", "PUT", "DELETE"])],
        middleware=[Middleware(JsonContentTypeMiddleware)],
    )
    return TestClient(app, base_url="http://localhost")


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"{}", "text/plain"),
        (b"a=1", "application/x-www-form-urlencoded"),
        (b"", "application/x-www-form-urlencoded"),  # an empty HTML form still sends one
        (b"", "multipart/form-data; boundary=x"),
        (b"{}", None),
        (b"{}", "application/jsonp"),
    ],
)
def test_anything_but_json_is_refused_with_415(content: bytes, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    for method in ("POST", "PUT", "DELETE"):
        response = _client().request(method, "/x", content=content, headers=headers)
        assert response.status_code == 415, (method, content, content_type)
        assert response.json()["error"] == "the request body must be sent as application/json"


@pytest.mark.parametrize(
    "headers", [{}, {"content-type": "application/json"}, {"content-type": "Application/JSON; charset=utf-8"}]
)
def test_json_and_bodiless_requests_pass(headers: dict[str, str]) -> None:
    assert _client().post("/x", headers=headers).status_code == 200
    if headers:
        assert _client().put("/x", content=b"{}", headers=headers).status_code == 200


def test_reads_are_not_checked() -> None:
    assert _client().get("/x", headers={"content-type": "text/plain"}).status_code == 200
