"""What a pipeline takes for itself: its Dagster name and the tables it writes.

Two pipelines cannot share either: ids that differ only where Dagster names do not
(`a-b`, `a_b`) would share one job and one replication slot, and a target table is one
pipeline's. Nor may a pipeline write the summit database's own tables, or the change
log and offsets that CDC pipelines keep beside their targets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from psycopg.conninfo import conninfo_to_dict

from summit_etl.config import ExtractionStrategy, PipelineConfig
from summit_etl.identifiers import TableName

# Tables of the summit database (migrations) that hold summit's state.
SUMMIT_TABLES = frozenset(
    {
        "alembic_version",
        "data_quality_reports",
        "etl_admin_stops",
        "etl_alerts",
        "etl_cdc_watermarks",
        "etl_quarantine",
        "etl_schema_changes",
        "etl_watermarks",
        "pipeline_runs",
        "pipelines",
    }
)
# Kept by CDC pipelines in their target's schema (summit_etl.cdc.target).
CDC_OFFSETS_TABLE = "summit_cdc_offsets"
CDC_LOG_SUFFIX = "_changes"
_LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1", "/tmp", "/var/run/postgresql"}


class ClaimConflict(ValueError):
    """The pipeline wants a name or table that is taken; `field` is the config key."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


def dagster_name(pipeline_id: str) -> str:
    """The id as Dagster and PostgreSQL name it (job, schedule, sensor, replication slot)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", pipeline_id)


@dataclass(frozen=True)
class _Table:
    database: tuple[str, str, str]  # host, port, dbname
    schema: str
    name: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"


def database_of(url: str) -> tuple[str, str, str]:
    """(host, port, database) of a URL; loopback spellings count as one host."""
    try:
        params = conninfo_to_dict(url)
    except Exception:  # an unparsable URL is reported by the run that uses it
        return ("?", "?", url)
    host = str(params.get("host") or "")
    host = "localhost" if host in _LOCAL_HOSTS else host
    return host, str(params.get("port") or "5432"), str(params.get("dbname") or "")


def _tables(config: PipelineConfig, summit_url: str) -> list[_Table]:
    """The target, and for CDC pipelines its change log."""
    target: TableName = config.loading.target_name
    database = database_of(config.target_url(summit_url))
    schema = target.schema or "public"
    tables = [_Table(database, schema, target.name)]
    if config.extraction.strategy is ExtractionStrategy.cdc:
        tables.append(_Table(database, schema, target.name + CDC_LOG_SUFFIX))
    return tables


def check_claims(
    config: PipelineConfig, others: Iterable[PipelineConfig], summit_url: str
) -> None:
    """Raise ClaimConflict when `config` wants what is reserved or another pipeline's."""
    own = _tables(config, summit_url)
    target = own[0]
    if target.name == CDC_OFFSETS_TABLE:
        raise ClaimConflict(
            "loading.targetTable", f"{target} keeps the CDC offsets of the pipelines there"
        )
    if target.database == database_of(summit_url) and target.name in SUMMIT_TABLES and (
        target.schema == "public"
    ):
        raise ClaimConflict(
            "loading.targetTable", f"{target} is one of summit's own tables in the summit database"
        )
    for other in others:
        if other.id == config.id:
            continue
        if dagster_name(other.id) == dagster_name(config.id):
            raise ClaimConflict(
                "id",
                f"{config.id!r} and pipeline {other.id!r} map to the same Dagster job and "
                f"replication slot name ({dagster_name(config.id)}); choose another id",
            )
        theirs = _tables(other, summit_url)
        # Dagster keys a target's asset by schema and table, whatever the database.
        if (target.schema, target.name) == (theirs[0].schema, theirs[0].name):
            raise ClaimConflict(
                "loading.targetTable", f"{target} is already the target of pipeline {other.id!r}"
            )
        shared = set(own) & set(theirs)
        if shared:
            raise ClaimConflict(
                "loading.targetTable",
                f"{min(map(str, shared))} is already written by pipeline {other.id!r} "
                "(its target or CDC change log)",
            )
