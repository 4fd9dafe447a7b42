"""A small people table with a few bad rows, and the pipeline and rule shapes the quality
tests build on it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from summit_etl.engine import RunRequest, run_pipeline
from summit_etl.registry import parse_pipeline
from summit_etl_tests.support import run_sql


@pytest.fixture
def people(source_url: str) -> str:
    run_sql(
        source_url,
        "CREATE TABLE public.people (id bigint PRIMARY KEY, email text, age int, country text,"
        " phone text, site text, born date, token uuid, updated_at timestamptz NOT NULL DEFAULT now())",
    )
    run_sql(
        source_url,
        """
        INSERT INTO public.people (id, email, age, country, phone, site, born, token) VALUES
          (1, 'ann@example.com', 34, 'DE', '+49 30 1234567', 'https://a.example', '1990-01-01', '8f2b8c9e-4a43-4a53-9d1e-1c2b3d4e5f60'),
          (2, 'bob@example.com', 41, 'FR', '+33 1 23456789', 'https://b.example', '1983-05-02', '9f2b8c9e-4a43-4a53-9d1e-1c2b3d4e5f61'),
          (3, NULL,              17, 'XX', 'not a phone',    'ftp:/nope',         '2010-07-07', NULL)
        """,
    )
    return source_url


def rule(rule_id: str, dimension: str, kind: str, config: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": rule_id, "dimension": dimension, "rule": {"type": kind, "config": config}, **extra}


def pipeline(source: str, target: str, rules: list[dict[str, Any]], **quality: Any) -> Any:
    return parse_pipeline(
        {
            "id": "people",
            "name": "People",
            "source": {"url": source, "table": "public.people"},
            "quality": {"rules": rules, **quality},
            "loading": {"strategy": "upsert", "targetTable": "dw.people", "targetUrl": target,
                        "upsertKey": ["id"], "createTable": True},
        },
        "test",
    )


def run(config: Any, summit: str) -> Any:
    return run_pipeline(config, RunRequest(run_id=str(uuid.uuid4())), summit)


def outcome_of(report: dict[str, Any], rule_id: str) -> dict[str, Any]:
    return next(r for r in report["rules"] if r["ruleId"] == rule_id)
