"""The service command's URL handling."""

from __future__ import annotations

from summit_etl.cli import dagster_storage_url, with_database


def test_with_database_keeps_server_credentials_and_options() -> None:
    url = "postgresql://etl:s3cret@db.example:6543/summit?sslmode=require"
    assert with_database(url, "summit_demo") == "postgresql://etl:s3cret@db.example:6543/summit_demo?sslmode=require"


def test_dagster_storage_gets_its_own_database_on_psycopg2() -> None:
    assert dagster_storage_url("postgresql://localhost:5432/summit") == (
        "postgresql+psycopg2://localhost:5432/summit_dagster"
    )
