"""PostGIS geometry and geography through full and incremental loads: each value reads
back as the same hex EWKB (SRID, Z, full precision), and a created target keeps each
column's declared type, e.g. geometry(Point,4326)."""

from __future__ import annotations

from summit_etl_tests.types.geo import (
    check,
    create_places,
    insert_places,
    places_pipeline,
    requires_postgis,
    run_once,
    with_postgis,
)


@requires_postgis
def test_geometry_round_trips_through_full_and_incremental_loads(
    source_url: str, target_url: str, summit_url: str
) -> None:
    create_places(source_url)
    with_postgis(target_url)
    full = places_pipeline(
        source_url, target_url, "dw.places_full", extraction={"strategy": "full"}
    )
    incremental = places_pipeline(
        source_url,
        target_url,
        "dw.places_incremental",
        extraction={"strategy": "incremental", "incrementalColumn": "id"},
        watermark={"type": "numeric"},
    )
    for raw in (full, incremental):
        run_once(raw, summit_url)
    insert_places(source_url, 10)
    for raw in (full, incremental):
        run_once(raw, summit_url)  # merges compare geometry with what the target holds
        check(source_url, target_url, raw["loading"]["targetTable"])
