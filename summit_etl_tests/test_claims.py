"""What a pipeline may claim: its own Dagster name and target, never summit's tables."""

from __future__ import annotations

from typing import Any

import pytest

from summit_etl.claims import ClaimConflict, check_claims
from summit_etl.config import PipelineConfig

SUMMIT = "postgresql://postgres@127.0.0.1:5432/summit"


def pipeline(pipeline_id: str, target: str, target_url: str | None = None, **extra: Any) -> PipelineConfig:
    loading: dict[str, Any] = {"strategy": "upsert", "targetTable": target, "upsertKey": ["id"]}
    if target_url:
        loading["targetUrl"] = target_url
    return PipelineConfig.model_validate(
        {"id": pipeline_id, "name": pipeline_id, "source": {"url": SUMMIT, "table": "public.users"},
         "loading": loading, **extra}
    )


def cdc(pipeline_id: str, target: str, target_url: str) -> PipelineConfig:
    return pipeline(pipeline_id, target, target_url, extraction={"strategy": "cdc"},
                    cdc={"strategy": "trigger", "primaryKeys": ["id"]})


@pytest.mark.parametrize("table", ["etl_quarantine", "public.pipelines", "pipeline_runs", "etl_watermarks",
                                   "etl_cdc_watermarks", "data_quality_reports", "etl_admin_stops",
                                   "etl_alerts", "etl_schema_changes", "alembic_version"])
def test_summit_tables_in_the_summit_database_are_refused(table: str) -> None:
    # No targetUrl: the target is the summit database; a loopback alias is the same server.
    for config in (pipeline("p", table), pipeline("p", table, "postgresql://localhost/summit")):
        with pytest.raises(ClaimConflict) as refused:
            check_claims(config, [], SUMMIT)
        assert refused.value.field == "loading.targetTable"
        assert "summit's own tables" in str(refused.value)


def test_the_same_names_elsewhere_are_ordinary_tables() -> None:
    check_claims(pipeline("p", "pipelines", "postgresql://127.0.0.1:5432/warehouse"), [], SUMMIT)
    check_claims(pipeline("q", "dw.pipeline_runs"), [], SUMMIT)


def test_cdc_bookkeeping_of_other_pipelines_is_refused() -> None:
    warehouse = "postgresql://127.0.0.1/warehouse"
    with pytest.raises(ClaimConflict, match="CDC offsets"):
        check_claims(pipeline("p", "dw.summit_cdc_offsets", warehouse), [], SUMMIT)
    capturing = cdc("orders-cdc", "dw.orders", warehouse)
    with pytest.raises(ClaimConflict, match=r"dw\.orders_changes is already written by pipeline 'orders-cdc'"):
        check_claims(pipeline("p", "dw.orders_changes", warehouse), [capturing], SUMMIT)
    # ... and a CDC pipeline whose change log would be another pipeline's target.
    with pytest.raises(ClaimConflict, match="already written"):
        check_claims(cdc("orders-cdc", "dw.orders", warehouse), [pipeline("p", "dw.orders_changes", warehouse)], SUMMIT)
    check_claims(pipeline("p", "dw.orders_changes", "postgresql://127.0.0.1/other"), [capturing], SUMMIT)


def test_ids_with_one_dagster_name_and_shared_targets_are_refused() -> None:
    existing = pipeline("a-b", "dw.ab")
    with pytest.raises(ClaimConflict) as refused:
        check_claims(pipeline("a_b", "dw.other"), [existing], SUMMIT)
    assert refused.value.field == "id" and "pipeline_" not in str(refused.value)
    assert "'a_b' and pipeline 'a-b' map to the same Dagster job and replication slot" in str(refused.value)
    with pytest.raises(ClaimConflict, match="already the target of pipeline 'a-b'"):
        check_claims(pipeline("c", "dw.ab"), [existing], SUMMIT)
    check_claims(pipeline("a-b", "dw.ab"), [existing], SUMMIT)  # itself, when replaced
