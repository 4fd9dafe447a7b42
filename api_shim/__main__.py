"""`python -m api_shim`: serve the API with uvicorn on ETL_SERVICE_HOST:ETL_SERVICE_PORT."""

from __future__ import annotations

import uvicorn

from api_shim.settings import ApiSettings


def main() -> None:
    settings = ApiSettings.from_env()
    settings.check_bind()
    uvicorn.run(
        "api_shim.app:create_app",
        factory=True,
        # A second worker uses the second core: the routes are CPU-bound in Python.
        workers=settings.workers,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
