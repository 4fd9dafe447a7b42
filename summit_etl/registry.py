"""Where pipelines come from: `pipelines/*.yaml` and the `pipelines` table.

A bad configuration is reported (file or row, field, problem) and skipped; it never
stops the other pipelines from loading.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import yaml
from psycopg import Connection
from pydantic import ValidationError

from summit_etl.claims import ClaimConflict, check_claims
from summit_etl.config import ConfigPolicy, PipelineConfig
from summit_etl.identifiers import InvalidIdentifierError
from summit_etl.store import pipelines as pipeline_store
from summit_etl.store.db import connect

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A pipeline configuration that cannot be used; `origin` is its file or table row."""

    def __init__(self, origin: str, problems: list[str]) -> None:
        self.origin = origin
        self.problems = problems
        super().__init__(f"{origin}: " + "; ".join(problems))


def describe_validation_error(error: ValidationError) -> list[str]:
    """One line per problem: `field.path: what is wrong`."""
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        problems.append(f"{where}: {message}")
    return problems


def parse_pipeline(
    raw: Any, origin: str, environ: dict[str, str] | None = None, *, trusted: bool = False
) -> PipelineConfig:
    """Validate one raw configuration (as parsed from YAML or JSON) into a PipelineConfig.
    `trusted`: it is an operator's file, not a request body (see config.policy)."""
    if not isinstance(raw, dict):
        raise ConfigError(origin, ["the configuration must be a mapping of keys to values"])
    policy = ConfigPolicy.from_env(trusted=trusted, environ=environ)
    try:
        return PipelineConfig.model_validate(raw, context=policy.context())
    except ValidationError as exc:
        raise ConfigError(origin, describe_validation_error(exc)) from None
    except InvalidIdentifierError as exc:
        raise ConfigError(origin, [str(exc)]) from None


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), [f"not valid YAML: {exc}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError(str(path), ["the file must hold one mapping (a pipeline)"])
    return raw


@dataclass
class Registry:
    summit_url: str = ""
    pipelines: dict[str, PipelineConfig] = field(default_factory=dict)
    raw: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: list[ConfigError] = field(default_factory=list)
    from_files: set[str] = field(default_factory=set)

    def add(self, raw: Any, origin: str, *, from_file: bool = False) -> None:
        try:
            config = parse_pipeline(raw, origin, trusted=from_file)
            if config.id in self.pipelines:
                raise ConfigError(origin, [f"id: pipeline {config.id!r} is defined twice"])
            check_claims(config, self.pipelines.values(), self.summit_url)
        except ClaimConflict as exc:
            self.reject(ConfigError(origin, [str(exc)]))
            return
        except ConfigError as exc:
            self.reject(exc)
            return
        self.pipelines[config.id] = config
        self.raw[config.id] = raw
        if from_file:
            self.from_files.add(config.id)

    def reject(self, error: ConfigError) -> None:
        self.errors.append(error)
        log.error(
            "invalid pipeline configuration",
            extra={"origin": error.origin, "problems": error.problems},
        )


def load_registry(pipelines_dir: Path, summit_url: str | None) -> Registry:
    """Every pipeline from the YAML files, then those created through the API."""
    registry = Registry(summit_url or "")
    for path in sorted(pipelines_dir.glob("*.y*ml")):
        try:
            registry.add(read_yaml(path), str(path), from_file=True)
        except ConfigError as exc:
            registry.reject(exc)
    if summit_url is None:
        return registry
    try:
        with connect(summit_url) as conn:
            rows = pipeline_store.list_rows(conn)
    except psycopg.Error as exc:
        log.warning(
            "pipelines table unreadable; only YAML pipelines are loaded", extra={"error": str(exc)}
        )
        return registry
    for row in rows:
        if row.origin == "api":
            registry.add(row.config, f"pipelines table row {row.pipeline_id!r}")
    return registry


def sync_files_to_table(registry: Registry, summit_url: str) -> None:
    """Give every YAML pipeline its row, so operators can pause it with SQL."""
    with connect(summit_url) as conn:
        for pipeline_id in registry.from_files:
            config = registry.pipelines[pipeline_id]
            pipeline_store.sync_file_pipeline(conn, registry.raw[pipeline_id], config.enabled)


def check_claims_against_table(conn: Connection, config: PipelineConfig, summit_url: str) -> None:
    """Raise ClaimConflict when `config` clashes with a pipeline of the `pipelines` table
    (which holds the YAML pipelines too); rows that no longer validate claim nothing."""
    others = []
    for row in pipeline_store.list_rows(conn):
        try:
            others.append(parse_pipeline(row.config, row.pipeline_id))
        except ConfigError:
            continue
    check_claims(config, others, summit_url)
