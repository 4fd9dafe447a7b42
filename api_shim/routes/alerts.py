"""`/alerts`: the alerts of the monitoring rules, and acknowledging one."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from api_shim import serialize
from api_shim.errors import ApiError
from api_shim.services import services
from summit_etl.store import alerts as alert_store

MAX_LIMIT = 1000


def _choice(request: Request, name: str, allowed: tuple[str, ...]) -> str | None:
    value = request.query_params.get(name)
    if value is not None and value not in allowed:
        raise ApiError(400, f"{name} must be one of {', '.join(allowed)}", {"field": name})
    return value


def list_alerts(request: Request) -> JSONResponse:
    status = _choice(request, "status", alert_store.STATUSES)
    severity = _choice(request, "severity", alert_store.SEVERITIES)
    raw_limit = request.query_params.get("limit", "100")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
        raise ApiError(
            400, f"limit must be a whole number from 1 to {MAX_LIMIT}", {"field": "limit"}
        )
    with services(request).db.connection() as conn:
        found = alert_store.list_alerts(conn, status, severity, int(raw_limit))
    return JSONResponse([serialize.alert(a) for a in found])


def acknowledge(request: Request) -> JSONResponse:
    raw_id = request.path_params["alert_id"]
    if not raw_id.isdigit() or int(raw_id) > 2**63 - 1:
        raise ApiError(404, f"alert {raw_id!r} not found")
    with services(request).db.connection() as conn:
        alert = alert_store.acknowledge(conn, int(raw_id), by="api")
    if alert is None:
        raise ApiError(404, f"alert {raw_id} not found")
    return JSONResponse(serialize.alert(alert))
