"""`${VAR}` only in connection URLs, only from allowed variables, and never echoed."""

from __future__ import annotations

import pytest

from summit_etl.config import ConfigPolicy, JoinTransform
from summit_etl.registry import ConfigError, parse_pipeline
from summit_etl_tests.config.test_config_pipeline import base

SECRET = "postgresql://etl:s3cret@db.internal:5432/summit"
ENV = {"DATABASE_URL": SECRET, "SRC_URL": "postgresql://h/src", "AWS_SECRET_ACCESS_KEY": "k3y"}


def problems(raw: dict, environ: dict[str, str] = ENV) -> str:
    with pytest.raises(ConfigError) as info:
        parse_pipeline(raw, "request body", environ=environ)
    return str(info.value)


def test_url_fields_are_interpolated_with_defaults() -> None:
    raw = base(
        source={"url": "${SRC_URL}", "table": "t"},
        loading={"targetTable": "a.b", "targetUrl": "${NOPE_URL:-postgresql://h/fallback}"},
        transformation={"transformations": [{"type": "join", "url": "${DATABASE_URL}",
                                             "table": "t", "on": ["id"]}]},
    )
    config = parse_pipeline(raw, "x", environ=ENV)
    assert config.source.url == "postgresql://h/src"
    assert config.loading.target_url == "postgresql://h/fallback"
    step = config.transformation.transformations[0]
    assert isinstance(step, JoinTransform) and step.url == SECRET


def test_a_missing_variable_is_named() -> None:
    message = problems(base(source={"url": "${NOPE_URL}", "table": "t"}))
    assert "source.url" in message and "environment variable NOPE_URL is not set" in message


def test_other_fields_are_never_interpolated_so_a_value_is_never_echoed() -> None:
    message = problems(base(source={"url": "${SRC_URL}", "table": "${DATABASE_URL}"}))
    assert "source.table" in message and "${DATABASE_URL}" in message
    assert "s3cret" not in message and "db.internal" not in message
    config = parse_pipeline(
        base(name="Users ${DATABASE_URL}", description="from ${SRC_URL}"), "x", environ=ENV
    )
    assert (config.name, config.description) == ("Users ${DATABASE_URL}", "from ${SRC_URL}")


def test_only_allowed_variables_may_be_read(monkeypatch: pytest.MonkeyPatch) -> None:
    message = problems(base(source={"url": "${AWS_SECRET_ACCESS_KEY}", "table": "t"}))
    assert "environment variable AWS_SECRET_ACCESS_KEY may not be read" in message
    assert "k3y" not in message
    monkeypatch.setenv("SUMMIT_CONFIG_ENV_ALLOW", "SRC_URL, WAREHOUSE_*")
    assert "DATABASE_URL may not be read" in problems(
        base(source={"url": "${DATABASE_URL}", "table": "t"})
    )
    policy = ConfigPolicy.from_env()
    assert policy.allows_variable("WAREHOUSE_DSN") and policy.allows_variable("SRC_URL")
    assert not policy.allows_variable("DATABASE_URL")
