"""Alert thresholds and sinks, from the environment (documented in docs/operations.md)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, not {raw!r}") from None


@dataclass(frozen=True)
class AlertSettings:
    interval_seconds: float = 60.0  # how often the sensor evaluates the rules
    window_hours: float = 24.0  # the failure-rate and quarantine-growth window
    failure_rate: float = 0.10
    cdc_lag_critical_seconds: float = 2 * 3600
    cdc_lag_warning_seconds: float = 30 * 60
    quality_critical: float = 70.0
    quality_drop: float = 10.0
    slot_retained_bytes: float = 1024**3
    stale_watermark_runs: int = 5
    info_window_minutes: float = 60.0
    health_url: str = "http://127.0.0.1:4020/health"  # empty: the health rule is off
    dagster_ui_url: str = "http://127.0.0.1:3000"
    pagerduty_routing_key: str = ""
    pagerduty_url: str = PAGERDUTY_EVENTS_URL
    slack_webhook_url: str = ""
    smtp_host: str = ""
    smtp_port: int = 25
    email_from: str = "summit-etl@localhost"
    email_to: str = ""
    webhook_url: str = ""
    delivery_attempts: int = 3
    retry_base_seconds: float = 0.5  # backoff: base, 2 x base, 4 x base, ...

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AlertSettings:
        env = os.environ if env is None else env
        port = env.get("ETL_SERVICE_PORT", "4020")
        return cls(
            interval_seconds=_float(env, "ETL_ALERT_INTERVAL_SECONDS", 60.0),
            window_hours=_float(env, "ETL_ALERT_WINDOW_HOURS", 24.0),
            failure_rate=_float(env, "ETL_ALERT_FAILURE_RATE", 0.10),
            cdc_lag_critical_seconds=_float(env, "ETL_ALERT_CDC_LAG_CRITICAL_SECONDS", 7200),
            cdc_lag_warning_seconds=_float(env, "ETL_ALERT_CDC_LAG_WARNING_SECONDS", 1800),
            quality_critical=_float(env, "ETL_ALERT_QUALITY_CRITICAL", 70.0),
            quality_drop=_float(env, "ETL_ALERT_QUALITY_DROP", 10.0),
            slot_retained_bytes=_float(env, "ETL_ALERT_SLOT_RETAINED_BYTES", 1024**3),
            stale_watermark_runs=int(_float(env, "ETL_ALERT_STALE_WATERMARK_RUNS", 5)),
            info_window_minutes=_float(env, "ETL_ALERT_INFO_WINDOW_MINUTES", 60.0),
            health_url=env.get("ETL_ALERT_HEALTH_URL", f"http://127.0.0.1:{port}/health"),
            dagster_ui_url=env.get("DAGSTER_UI_URL", "http://127.0.0.1:3000").rstrip("/"),
            pagerduty_routing_key=env.get("ETL_ALERT_PAGERDUTY_ROUTING_KEY", ""),
            pagerduty_url=env.get("ETL_ALERT_PAGERDUTY_URL", PAGERDUTY_EVENTS_URL),
            slack_webhook_url=env.get("ETL_ALERT_SLACK_WEBHOOK_URL", ""),
            smtp_host=env.get("ETL_ALERT_SMTP_HOST", ""),
            smtp_port=int(_float(env, "ETL_ALERT_SMTP_PORT", 25)),
            email_from=env.get("ETL_ALERT_EMAIL_FROM", "summit-etl@localhost"),
            email_to=env.get("ETL_ALERT_EMAIL_TO", ""),
            webhook_url=env.get("ETL_ALERT_WEBHOOK_URL", ""),
            delivery_attempts=max(1, int(_float(env, "ETL_ALERT_DELIVERY_ATTEMPTS", 3))),
            retry_base_seconds=_float(env, "ETL_ALERT_RETRY_BASE_SECONDS", 0.5),
        )
