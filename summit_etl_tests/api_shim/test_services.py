"""Hostile request bodies and query strings are a 400 naming the field, never a 500."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from api_shim.errors import http_error
from api_shim.models import ExecuteRequest
from api_shim.services import json_body, model_body, query_flag, query_int


async def _body(request: Request) -> JSONResponse:
    return JSONResponse(await json_body(request))


async def _execute(request: Request) -> JSONResponse:
    body = await model_body(request, ExecuteRequest)
    return JSONResponse({"fullReload": body.full_reload, "wait": query_flag(request, "wait")})


def _runs(request: Request) -> JSONResponse:
    return JSONResponse({"limit": query_int(request, "limit", 20, 1, 1000)})


CLIENT = TestClient(
    Starlette(
        routes=[
            Route("/body", _body, methods=["POST"]),
            Route("/execute", _execute, methods=["POST"]),
            Route("/runs", _runs),
        ],
        exception_handlers={HTTPException: http_error},
    ),
    raise_server_exceptions=True,  # anything but an ApiError fails the test
)


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b'{"name": "a\\u0000b"}', "name contains a NUL character"),
        (b'{"a": {"b\\u0000": 1}}', "a key in a contains a NUL character"),
        (b'{"a": [1, {"b": "\\u0000"}]}', "a.1.b contains a NUL character"),
        (b'{"name": "\xff\xfe\xfa"}', "not valid UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "nests deeper than"),
        (b'{"a": ' + b"[" * 40 + b"]" * 40 + b"}", "nests deeper than 32 levels at a.0.0"),
        (b'{"n": 1' + b"0" * 5000 + b"}", "invalid number"),
        (b'{"n": 1e999}', "out of range"),
        (b'{"n": NaN}', "NaN is not a JSON number"),
        (b'{"n": -Infinity}', "-Infinity is not a JSON number"),
        (b'{"a": ', "not valid JSON"),
        (b"[1]", "must be a JSON object"),
    ],
)
def test_hostile_bodies_are_a_400_saying_what(content: bytes, says: str) -> None:
    response = CLIENT.post("/body", content=content)
    assert response.status_code == 400
    assert says in response.json()["error"]


def test_a_plain_body_passes() -> None:
    response = CLIENT.post("/body", content='{"name": "été", "n": 1.5, "big": 123456789012345678901234567890}')
    assert response.json() == {"name": "été", "n": 1.5, "big": 123456789012345678901234567890}


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b'{"fullReload": "yes"}', "fullReload: Input should be a valid boolean"),
        (b'{"fullReload": 1}', "fullReload: Input should be a valid boolean"),
        (b'{"full": true}', "full: Extra inputs are not permitted"),
    ],
)
def test_request_models_name_wrong_and_unknown_fields(content: bytes, says: str) -> None:
    response = CLIENT.post("/execute", content=content)
    assert response.status_code == 400
    assert says in response.json()["details"]


def test_request_models_read_their_fields() -> None:
    assert CLIENT.post("/execute?wait=true", content=b'{"fullReload": true}').json() == {"fullReload": True, "wait": True}
    assert CLIENT.post("/execute").json() == {"fullReload": False, "wait": False}


@pytest.mark.parametrize(
    ("url", "field"),
    [("/runs?limit=0", "limit"), ("/runs?limit=1001", "limit"), ("/runs?limit=%D9%A3", "limit"),
     ("/runs?limit=" + "9" * 5000, "limit"), ("/runs?limit=-1", "limit"), ("/execute?wait=yes", "wait")],
)
def test_query_values_out_of_shape_are_a_400_naming_them(url: str, field: str) -> None:
    response = CLIENT.post(url) if url.startswith("/execute") else CLIENT.get(url)
    assert response.status_code == 400
    assert response.json()["details"] == {"field": field}
    assert CLIENT.get("/runs?limit=1000").json() == {"limit": 1000}
