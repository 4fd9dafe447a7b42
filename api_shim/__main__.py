"""`python -m api_shim`: serve the API with uvicorn on ETL_SERVICE_HOST:ETL_SERVICE_PORT."""

from __future__ import annotations

import uvicorn

from api_shim.app import create_app
from api_shim.settings import ApiSettings
from summit_etl.logs import configure_logging
from summit_etl.settings import Settings


def main() -> None:
    settings = ApiSettings.from_env()
    settings.check_bind()
    configure_logging(Settings.from_env())
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
