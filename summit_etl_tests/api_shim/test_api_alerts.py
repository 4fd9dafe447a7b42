"""`/alerts` and `/metrics` alert counts on the real service."""

from __future__ import annotations

import time
import uuid

import httpx

from summit_etl.alerts import evaluate
from summit_etl.alerts.settings import AlertSettings
from summit_etl_tests.api_shim.conftest import Stack
from summit_etl_tests.support import run_sql


def test_alerts_are_listed_filtered_acknowledged_and_counted(api: httpx.Client, stack: Stack) -> None:
    run_sql(stack.summit_url, "INSERT INTO pipeline_runs (id, pipeline_id, status) VALUES (%s, 'alerts-probe', 'failed')",
            (str(uuid.uuid4()),))
    evaluate(stack.summit_url, {}, AlertSettings(health_url=""))
    critical = api.get("/alerts", params={"status": "open", "severity": "critical"}).json()
    probe = next(a for a in critical if a["pipelineId"] == "alerts-probe")
    assert probe["rule"] == "failure_rate" and probe["acknowledgedAt"] is None
    assert probe["link"].endswith("/jobs/pipeline_alerts_probe")
    assert all(a["severity"] == "critical" and a["status"] == "open" for a in critical)
    deadline = time.monotonic() + 10  # /metrics answers from a snapshot refreshed every second
    while api.get("/metrics").json()["openAlerts"]["critical"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    text = api.get("/metrics", headers={"Accept": "text/plain"}).text
    assert 'summit_alerts_open{severity="critical"}' in text

    acked = api.post(f"/alerts/{probe['id']}/ack")
    assert acked.status_code == 200 and acked.json()["acknowledgedBy"] == "api"
    again = api.post(f"/alerts/{probe['id']}/ack").json()
    assert again["acknowledgedAt"] == acked.json()["acknowledgedAt"]  # the first one stays
    assert api.post("/alerts/999999999/ack").status_code == 404
    assert api.post("/alerts/nope/ack").status_code == 404
    bad = api.get("/alerts", params={"status": "closed"})
    assert bad.status_code == 400 and bad.json()["details"] == {"field": "status"}
    assert api.get("/alerts", params={"limit": "0"}).status_code == 400
