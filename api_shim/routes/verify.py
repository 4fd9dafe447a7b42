"""`POST /pipelines/{id}/verify`: compare the pipeline's source and target by key."""

from __future__ import annotations

import psycopg
from starlette.requests import Request
from starlette.responses import JSONResponse

from api_shim.errors import ApiError, DependencyDown
from api_shim.models import Verify
from api_shim.serialize import answer
from api_shim.services import pipeline_config, require_pipeline, services
from summit_etl.verify import VerifyUnsupported, verify_pipeline


def verify(request: Request) -> JSONResponse:
    svc = services(request)
    with svc.db.connection() as conn:
        config = pipeline_config(require_pipeline(conn, request.path_params["pipeline_id"]))
    try:
        return answer(Verify, verify_pipeline(config, svc.settings.database_url))
    except VerifyUnsupported as exc:
        raise ApiError(409, str(exc)) from exc
    except psycopg.OperationalError as exc:
        # The driver's message can carry host names but never the password; it is said
        # without the URL all the same.
        raise DependencyDown("source or target database", type(exc).__name__) from exc
