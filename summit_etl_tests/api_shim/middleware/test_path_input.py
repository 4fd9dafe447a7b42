"""Control characters in paths and query strings are a 400, not a database error."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from api_shim.middleware.path_input import PathInputMiddleware


def _client() -> TestClient:
    async def ok(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.path_params["pipeline_id"])

    app = Starlette(
        routes=[Route("/pipelines/{pipeline_id}/runs", ok)],
        middleware=[Middleware(PathInputMiddleware)],
    )
    return TestClient(app, base_url="http://localhost")


@pytest.mark.parametrize(
    "url", ["/pipelines/%00/runs", "/pipelines/a%0Ab/runs", "/pipelines/x/runs?status=%00", "/pipelines/x/runs?%01=1"]
)
def test_control_characters_are_refused(url: str) -> None:
    response = _client().get(url)
    assert response.status_code == 400
    assert "control character" in response.json()["error"]


def test_other_text_passes() -> None:
    response = _client().get("/pipelines/%C3%A9t%C3%A9%FF/runs?status=ok")
    assert response.status_code == 200 and response.text.startswith("été")
