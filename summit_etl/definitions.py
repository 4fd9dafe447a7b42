"""The Dagster code location: every pipeline in `pipelines/` and the `pipelines` table."""

from summit_etl.logs import configure_logging
from summit_etl.orchestration.factory import build_definitions
from summit_etl.orchestration.run_workers import warm_run_workers
from summit_etl.registry import load_registry
from summit_etl.settings import Settings

settings = Settings.from_env()
configure_logging(settings)
warm_run_workers()
defs = build_definitions(
    load_registry(settings.pipelines_dir, settings.database_url), settings.database_url
)
