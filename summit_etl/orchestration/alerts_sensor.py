"""The `summit_alerts` sensor: one evaluation of the monitoring rules per tick
(summit_etl.alerts), running from the start so that alerts need no switching on."""

from __future__ import annotations

from collections.abc import Mapping

from dagster import (
    DefaultSensorStatus,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from summit_etl.alerts import evaluate
from summit_etl.alerts.settings import AlertSettings
from summit_etl.config import PipelineConfig


def alerts_sensor(
    pipelines: Mapping[str, PipelineConfig], summit_url: str, settings: AlertSettings
) -> SensorDefinition:
    @sensor(
        name="summit_alerts",
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=int(settings.interval_seconds),
        description="Evaluates the alert rules, keeps etl_alerts true and delivers alerts.",
    )
    def summit_alerts(context: SensorEvaluationContext) -> SkipReason:
        result = evaluate(summit_url, pipelines, settings)
        for why in result.failed_rules.values():
            context.log.warning(why)
        return SkipReason(result.summary())

    return summit_alerts
