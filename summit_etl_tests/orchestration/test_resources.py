"""The summit resource reaches Dagster through EnvVar: the UI never sees its password."""

from __future__ import annotations

import pytest
from dagster import build_resources
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster._serdes import serialize_value

from summit_etl.orchestration.factory import build_definitions
from summit_etl.orchestration.resources import SummitDatabase
from summit_etl.registry import Registry

URL = "postgresql://etl:s3cret@db.internal:5432/summit"


def test_the_ui_sees_the_variable_and_the_run_gets_the_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", URL)
    defs = build_definitions(Registry(), URL)
    # What the webserver serves to the UI about this code location.
    snapshot = serialize_value(RepositorySnap.from_def(defs.get_repository_def()))
    assert "s3cret" not in snapshot and "DATABASE_URL" in snapshot
    with build_resources({"summit": defs.resources["summit"]}) as resources:
        assert resources.summit.url == URL


def test_a_url_not_from_the_environment_is_passed_as_it_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with build_resources({"summit": SummitDatabase.for_url("postgresql://h/d")}) as resources:
        assert resources.summit.url == "postgresql://h/d"
