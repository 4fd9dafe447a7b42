"""The route table (api_shim/routing.py)."""

from __future__ import annotations

import pytest
from starlette.requests import Request
from starlette.responses import Response

from api_shim.app import TABLE
from api_shim.routing import Operation, RouteTable


async def _write(request: Request) -> Response:
    return Response(status_code=204)


def test_only_reads_may_have_stored_answers() -> None:
    with pytest.raises(ValueError, match="POST /things"):
        RouteTable({"/things": {"POST": Operation(_write, None, stored=True)}})
    assert any(op.stored for ops in TABLE.paths.values() for op in ops.values())
