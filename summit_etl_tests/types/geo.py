"""A source table of PostGIS geometry and geography columns (PostGIS created in the
scratch database), the check that a target holds the same hex EWKB under the same declared
types, and `requires_postgis`: the collection-time mark for servers without the package."""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest

from summit_etl.engine import RunRequest, run_pipeline
from summit_etl.registry import parse_pipeline
from summit_etl_tests.support import ADMIN_URL, run_sql
from summit_etl_tests.types.wide import declared_types

COLUMNS = {
    "p": "geometry(Point,4326)",
    "pz": "geometry(PointZ,3857)",
    "any_geom": "geometry",
    "gg": "geography(Polygon,4326)",
    "ga": "geography",
}
# Coordinates that PostGIS' GeoJSON (15 digits) would round, SRIDs, Z, EMPTY, NULL.
_VALUES = [
    "'SRID=4326;POINT(0.123456789012345 -89.999999999999)', 'SRID=3857;POINT Z(1 2 3.25)', "
    "'SRID=2056;LINESTRING(2600000.123456789 1200000.987654321, 2600001 1200001)', "
    "'POLYGON((0 0, 0 1, 1.000000000001 1, 0 0))', 'SRID=4326;POINT(179.9999999999 1e-12)'",
    # 17 significant digits: more than GeoJSON's 15.
    "ST_SetSRID(ST_MakePoint(0.1 + 0.2, 1.0 / 3), 4326), NULL, ST_MakePoint(1.0 / 7, 2.0 / 3), "
    "NULL, 'POINT(0.30000000000000004 0.1)'",
    "'SRID=4326;POINT EMPTY', 'SRID=3857;POINT Z(0 0 0)', 'GEOMETRYCOLLECTION EMPTY', "
    "'POLYGON((10 10, 10 11, 11 11, 10 10))', 'LINESTRING(1 1, 2 2)'",
    "NULL, NULL, NULL, NULL, NULL",
]


def _postgis_available() -> bool:
    """Whether the server's extension directory holds PostGIS (the throwaway clusters of
    the CDC tests run the same binaries)."""
    if os.environ.get("SUMMIT_REQUIRE_POSTGIS"):  # .ci/run installed it: it must work
        return True
    found = run_sql(ADMIN_URL, "SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'")
    return bool(found)


requires_postgis = pytest.mark.skipif(
    not _postgis_available(),
    reason="PostGIS is not installed on this server (package postgresql-NN-postgis-3; "
    ".ci/run installs it and sets SUMMIT_REQUIRE_POSTGIS)",
)


def with_postgis(url: str) -> None:
    run_sql(url, "CREATE EXTENSION IF NOT EXISTS postgis")


def create_places(url: str, tables: tuple[str, ...] = ("places",)) -> None:
    """PostGIS, then each of `tables` in schema public, with rows 1 .. 4."""
    with_postgis(url)
    columns = ", ".join(f"{name} {kind}" for name, kind in COLUMNS.items())
    for table in tables:
        run_sql(
            url,
            f"""
            CREATE TABLE public.{table} (
                id integer PRIMARY KEY, {columns},
                updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
                version bigserial NOT NULL
            )
            """,
        )
        insert_places(url, 1, table)


def insert_places(url: str, first_id: int, table: str = "places") -> None:
    rows = ", ".join(f"({first_id + i}, {values})" for i, values in enumerate(_VALUES))
    run_sql(url, f"INSERT INTO public.{table} (id, {', '.join(COLUMNS)}) VALUES {rows}")


def _as_text(url: str, table: str) -> list[tuple]:
    columns = ", ".join(f"{name}::text" for name in ["id", *COLUMNS])
    return [tuple(r) for r in run_sql(url, f"SELECT {columns} FROM {table} ORDER BY id")]


def run_once(raw: dict[str, Any], summit_url: str) -> None:
    config = parse_pipeline(raw, "test")
    outcome = run_pipeline(config, RunRequest(run_id=str(uuid.uuid4())), summit_url)
    assert outcome.status == "success"


def check(source: str, target: str, table: str, source_table: str = "places") -> None:
    assert _as_text(target, table) == _as_text(source, f"public.{source_table}"), table
    created = declared_types(target, table)
    assert {c: created[c] for c in COLUMNS} == COLUMNS, table


def places_pipeline(
    source: str, target: str, table: str, source_table: str = "places", **extra: Any
) -> dict[str, Any]:
    return {
        "id": f"places-{uuid.uuid4().hex[:8]}",
        "name": "Places",
        "source": {"url": source, "table": f"public.{source_table}"},
        "loading": {
            "strategy": "upsert",
            "targetTable": table,
            "targetUrl": target,
            "createTable": True,
            "upsertKey": ["id"],
        },
        **extra,
    }
