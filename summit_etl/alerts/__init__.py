"""Alerts (runbook "Monitoring Alerts"): rules evaluated on the summit tables, alerts opened,
kept and resolved in `etl_alerts`, and delivered to the configured sinks.

`evaluate` is one tick of the `summit_alerts` sensor; it never raises for a rule or a sink
that fails: a failing rule is logged and keeps its alerts, a failing delivery is recorded on
its alert.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from summit_etl.alerts.rules import RULES, RuleContext
from summit_etl.alerts.settings import AlertSettings
from summit_etl.alerts.sinks import configured, deliver
from summit_etl.config import PipelineConfig
from summit_etl.logs import redact_text
from summit_etl.store import alerts as alert_store
from summit_etl.store.alerts import Alert, Finding
from summit_etl.store.db import connect

log = logging.getLogger("summit_etl.alerts")


@dataclass
class Evaluation:
    opened: list[Alert] = field(default_factory=list)
    resolved: list[Alert] = field(default_factory=list)
    failed_rules: dict[str, str] = field(default_factory=dict)  # rule → why
    failed_deliveries: int = 0

    def summary(self) -> str:
        parts = [f"{len(self.opened)} opened", f"{len(self.resolved)} resolved"]
        if self.failed_rules:
            parts.append("rules not evaluated: " + ", ".join(sorted(self.failed_rules)))
        if self.failed_deliveries:
            parts.append(f"{self.failed_deliveries} deliveries failed")
        return "; ".join(parts)


def evaluate(
    summit_url: str, pipelines: Mapping[str, PipelineConfig], settings: AlertSettings
) -> Evaluation:
    result = Evaluation()
    findings: list[Finding] = []
    with connect(summit_url) as conn:
        context = RuleContext(conn, settings, pipelines)
        for name, rule in RULES.items():
            try:
                findings.extend(rule(context))
            except Exception as exc:
                result.failed_rules[name] = redact_text(f"{type(exc).__name__}: {exc}")
                log.warning("alert rule not evaluated", extra={"rule": name, "error": str(exc)})
        evaluated = set(RULES) - set(result.failed_rules)
        result.opened, result.resolved = alert_store.sync(conn, findings, evaluated)
        sinks = configured(settings)
        for alert, event in [(a, "open") for a in result.opened] + [
            (a, "resolve") for a in result.resolved
        ]:
            log.info(
                f"alert {event}",
                extra={
                    "rule": alert.rule,
                    "severity": alert.severity,
                    "pipelineId": alert.pipeline_id,
                },
            )
            for sink in sinks:
                if alert.severity not in sink.severities:
                    continue
                record = deliver(
                    sink, alert, event, settings.delivery_attempts, settings.retry_base_seconds
                )
                result.failed_deliveries += not record["ok"]
                alert_store.add_delivery(conn, alert.id, record)
    return result
