"""Where alerts go: PagerDuty Events API v2 (critical), a Slack incoming webhook (warning),
email over SMTP (info) and a generic webhook (every alert). Each is told when an alert
opens and when it resolves, with retries and exponential backoff; every attempt's outcome
is returned for the alert's `deliveries`, and no failure escapes."""

from __future__ import annotations

import smtplib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from summit_etl.alerts.settings import AlertSettings
from summit_etl.logs import redact_text
from summit_etl.store.alerts import Alert

Event = str  # "open" | "resolve"


@dataclass(frozen=True)
class Sink:
    name: str
    severities: frozenset[str]
    send: Callable[[Alert, Event], None]


def _post(url: str, body: dict[str, Any]) -> None:
    import httpx  # here: every run worker loads this module with the code location, none sends

    response = httpx.post(url, json=body, timeout=10)
    response.raise_for_status()


def _title(alert: Alert, event: Event) -> str:
    state = "RESOLVED" if event == "resolve" else alert.severity.upper()
    return f"[{state}] {alert.message}"


def pagerduty(settings: AlertSettings) -> Sink:
    def send(alert: Alert, event: Event) -> None:
        body: dict[str, Any] = {
            "routing_key": settings.pagerduty_routing_key,
            "event_action": "resolve" if event == "resolve" else "trigger",
            "dedup_key": f"summit-etl/{alert.dedup_key}",
        }
        if event != "resolve":
            body["payload"] = {
                "summary": alert.message[:1024],
                "source": "summit-etl",
                "severity": alert.severity,
                "component": alert.pipeline_id or "service",
                "class": alert.rule,
                "custom_details": alert.details,
            }
            if alert.link:
                body["links"] = [{"href": alert.link, "text": "Open in Dagster"}]
        _post(settings.pagerduty_url, body)

    return Sink("pagerduty", frozenset({"critical"}), send)


def slack(settings: AlertSettings) -> Sink:
    def send(alert: Alert, event: Event) -> None:
        link = f" <{alert.link}|Open in Dagster>" if alert.link else ""
        _post(settings.slack_webhook_url, {"text": _title(alert, event) + link})

    return Sink("slack", frozenset({"warning"}), send)


def email(settings: AlertSettings) -> Sink:
    def send(alert: Alert, event: Event) -> None:
        message = EmailMessage()
        message["Subject"] = _title(alert, event)
        message["From"] = settings.email_from
        message["To"] = settings.email_to
        message.set_content(
            f"{alert.message}\n\nrule: {alert.rule}\nseverity: {alert.severity}\n"
            f"pipeline: {alert.pipeline_id or '-'}\nlink: {alert.link or '-'}\n"
        )
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=10) as smtp:
            smtp.send_message(message)

    return Sink("email", frozenset({"info"}), send)


def webhook(settings: AlertSettings) -> Sink:
    def send(alert: Alert, event: Event) -> None:
        _post(settings.webhook_url, {"event": event, "alert": alert.as_json()})

    return Sink("webhook", frozenset({"critical", "warning", "info"}), send)


def configured(settings: AlertSettings) -> list[Sink]:
    """The sinks whose settings are present."""
    sinks = []
    if settings.pagerduty_routing_key:
        sinks.append(pagerduty(settings))
    if settings.slack_webhook_url:
        sinks.append(slack(settings))
    if settings.smtp_host and settings.email_to:
        sinks.append(email(settings))
    if settings.webhook_url:
        sinks.append(webhook(settings))
    return sinks


def deliver(
    sink: Sink, alert: Alert, event: Event, attempts: int, backoff: float
) -> dict[str, Any]:
    """Send with retries; the outcome as a `deliveries` record (the error, redacted)."""
    error = ""
    for attempt in range(1, attempts + 1):
        try:
            sink.send(alert, event)
        except Exception as exc:  # any sink failure is recorded, never raised
            error = redact_text(f"{type(exc).__name__}: {exc}")[:500]
            if attempt < attempts:
                time.sleep(backoff * 2 ** (attempt - 1))
            continue
        return _record(sink, event, attempt, ok=True)
    return _record(sink, event, attempts, ok=False, error=error)


def _record(
    sink: Sink, event: Event, attempts: int, *, ok: bool, error: str = ""
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "sink": sink.name,
        "event": event,
        "at": datetime.now(UTC).isoformat(),
        "ok": ok,
        "attempts": attempts,
    }
    if error:
        record["error"] = error
    return record
