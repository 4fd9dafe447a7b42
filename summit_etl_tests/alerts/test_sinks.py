"""Deliveries to a local HTTP server (PagerDuty, Slack, webhook) and a local SMTP server
(aiosmtpd): what each sink receives on open and on resolve, retries, and failures recorded
on the alert without stopping the evaluation."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from summit_etl.alerts import evaluate
from summit_etl.alerts.settings import AlertSettings
from summit_etl.store import alerts as alert_store
from summit_etl.store.db import connect
from summit_etl_tests.support import run_sql


@dataclass
class Receiver:
    """An HTTP server recording JSON posts per path; `failures[path]` requests fail first."""

    port: int = 0
    posts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if state.failures.get(self.path, 0) > 0:
                state.failures[self.path] -= 1
                self.send_response(500)
            else:
                state.posts.setdefault(self.path, []).append(body)
                self.send_response(202)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_port
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state
    server.shutdown()


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    with socket.socket() as probe:  # aiosmtpd checks readiness on the port it is given
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


def fail_a_pipeline(summit_url: str, pipeline_id: str = "orders") -> None:
    run_sql(summit_url, "INSERT INTO pipeline_runs (id, pipeline_id, status) VALUES (%s, %s, 'failed')",
            (str(uuid.uuid4()), pipeline_id))


def heal(summit_url: str) -> None:
    run_sql(summit_url, "DELETE FROM pipeline_runs")
    run_sql(summit_url, "UPDATE etl_cdc_watermarks SET last_processed_time = now()")
    run_sql(summit_url, "UPDATE pipelines SET updated_at = now() - interval '1 day'")


def deliveries(summit_url: str) -> dict[str, list[dict[str, Any]]]:
    with connect(summit_url) as conn:
        return {a.rule: a.deliveries for a in alert_store.list_alerts(conn)}


def test_each_severity_reaches_its_sink_on_open_and_on_resolve(
    summit_url: str, receiver: Receiver, mailbox: tuple[Mailbox, int]
) -> None:
    box, smtp_port = mailbox
    settings = AlertSettings(
        health_url="", retry_base_seconds=0.01,
        pagerduty_routing_key="routing-key", pagerduty_url=receiver.url("/pagerduty"),
        slack_webhook_url=receiver.url("/slack"), webhook_url=receiver.url("/hook"),
        smtp_host="127.0.0.1", smtp_port=smtp_port, email_to="ops@example.org",
    )
    fail_a_pipeline(summit_url)  # critical
    run_sql(summit_url, "INSERT INTO etl_cdc_watermarks (pipeline_id, source_table, last_processed_time) "
                        "VALUES ('cdc', 'public.t', now() - interval '40 minutes')")  # warning
    run_sql(summit_url, "INSERT INTO pipelines (pipeline_id, name, config) VALUES ('new', 'new', '{}')")  # info
    evaluate(summit_url, {}, settings)

    (page,) = receiver.posts["/pagerduty"]
    assert page["routing_key"] == "routing-key" and page["event_action"] == "trigger"
    assert page["dedup_key"] == "summit-etl/failure_rate:orders"
    assert page["payload"]["severity"] == "critical" and "orders" in page["payload"]["summary"]
    assert page["links"][0]["href"].endswith("/jobs/pipeline_orders")
    (chat,) = receiver.posts["/slack"]
    assert chat["text"].startswith("[WARNING] CDC of public.t for cdc")
    (mail,) = box.messages
    assert mail["To"] == "ops@example.org" and mail["Subject"] == "[INFO] pipeline new created"
    assert sorted(p["alert"]["rule"] for p in receiver.posts["/hook"]) == [
        "cdc_lag_warning", "failure_rate", "pipeline_changed"]
    assert all(d[0]["ok"] and d[0]["event"] == "open" for d in deliveries(summit_url).values())

    heal(summit_url)
    evaluate(summit_url, {}, settings)
    resolve = receiver.posts["/pagerduty"][-1]
    assert resolve["event_action"] == "resolve" and resolve["dedup_key"] == page["dedup_key"]
    assert receiver.posts["/slack"][-1]["text"].startswith("[RESOLVED]")
    assert box.messages[-1]["Subject"].startswith("[RESOLVED]")
    assert [p["event"] for p in receiver.posts["/hook"]].count("resolve") == 3


def test_a_failing_sink_is_retried_then_recorded_and_never_stops_the_sensor(
    summit_url: str, receiver: Receiver
) -> None:
    settings = AlertSettings(
        health_url="", retry_base_seconds=0.01, delivery_attempts=3,
        pagerduty_routing_key="k", pagerduty_url=receiver.url("/flaky"),
        webhook_url="http://127.0.0.1:9/unreachable",
    )
    receiver.failures["/flaky"] = 2  # fails twice, then takes the event
    fail_a_pipeline(summit_url)
    evaluation = evaluate(summit_url, {}, settings)
    assert evaluation.failed_deliveries == 1 and len(evaluation.opened) == 1
    records = {d["sink"]: d for d in deliveries(summit_url)["failure_rate"]}
    assert records["pagerduty"]["ok"] is True and records["pagerduty"]["attempts"] == 3
    assert records["webhook"]["ok"] is False and records["webhook"]["attempts"] == 3
    assert "ConnectError" in records["webhook"]["error"]
    assert len(receiver.posts["/flaky"]) == 1


def test_settings_come_from_the_environment_and_bad_numbers_are_named() -> None:
    settings = AlertSettings.from_env({"ETL_ALERT_FAILURE_RATE": "0.25", "ETL_SERVICE_PORT": "4999"})
    assert settings.failure_rate == 0.25 and settings.health_url == "http://127.0.0.1:4999/health"
    assert replace(settings, health_url="").health_url == ""
    with pytest.raises(ValueError, match="ETL_ALERT_WINDOW_HOURS must be a number"):
        AlertSettings.from_env({"ETL_ALERT_WINDOW_HOURS": "a day"})
