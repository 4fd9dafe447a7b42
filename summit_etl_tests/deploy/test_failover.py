"""Database failover (runbook "Emergency Procedures"): the PostgreSQL under a running
service stops and comes back, then a new primary takes over with the service restarted on
the new DATABASE_URL. Health, runs, sensors and the API recover without manual repair."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from summit_etl_tests.api_shim.conftest import wait_until
from summit_etl_tests.cdc.cdc_support import LogicalCluster
from summit_etl_tests.deploy.conftest import Service
from summit_etl_tests.support import run_sql


def _database_down(service: Service) -> bool:
    answer = service.health()
    body = answer.json()
    return (
        answer.status_code == 503
        and body["status"] == "unhealthy"
        and body["dependencies"]["database"]["status"] == "down"
    )


def _all_up(service: Service) -> bool:
    answer = service.health()
    dependencies = answer.json()["dependencies"].values()
    return answer.status_code == 200 and {dep["status"] for dep in dependencies} == {"up"}


def _run_succeeds(api: httpx.Client, pipeline_id: str) -> str:
    answer = api.post(f"/pipelines/{pipeline_id}/execute?wait=true", json={})
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "success", answer.json()
    return str(answer.json()["id"])


def _email(target_url: str, user_id: int) -> str | None:
    """The user's e-mail in the CDC target; None before the first run created the table."""
    if run_sql(target_url, "SELECT to_regclass('dw.users')") == [(None,)]:
        return None
    found = run_sql(target_url, "SELECT email FROM dw.users WHERE id = %s", (user_id,))
    return found[0][0] if found else None


@pytest.mark.slow
def test_service_rides_out_a_database_outage_and_a_failover(
    service: Service, promote: Callable[[], LogicalCluster]
) -> None:
    # Right after start-up a daemon may not have sent its first heartbeat yet.
    wait_until(lambda: _all_up(service), 60, "a healthy service")
    with httpx.Client(base_url=service.api_url, timeout=120) as api:
        assert api.post("/pipelines/users-cdc/cdc/start", json={}).status_code == 200

    # The database goes away under the running service: /health says so with a 503.
    service.cluster.stop()
    wait_until(lambda: _database_down(service), 30, "503 from /health, database down")
    assert service.alive()

    # It comes back: the same processes recover by themselves.
    service.cluster.start()
    wait_until(lambda: _all_up(service), 90, "a healthy service after the outage")
    assert service.alive(), "the service had to restart"
    with httpx.Client(base_url=service.api_url, timeout=120) as api:
        # No request fails on a connection left over from before the outage (every API
        # worker process has its own pool, so ask more often than there are workers).
        statuses = [api.get("/pipelines/queue-b/runs").status_code for _ in range(12)]
        assert statuses == [200] * 12, statuses
        before_failover = _run_succeeds(api, "queue-b")
        # The CDC sensor polls again: a change in the source reaches the target.
        run_sql(
            service.urls["src"],
            "UPDATE public.users SET email = 'after-outage@x.org', updated_at = now() WHERE id = 7",
        )
        wait_until(
            lambda: _email(service.urls["dst"], 7) == "after-outage@x.org",
            60,
            "the CDC sensor's run after the outage",
        )

    # Failover: a new primary with the same data elsewhere, DATABASE_URL pointed at it,
    # the service restarted (what `systemctl restart etl-service` does), while a run is in
    # flight.
    with httpx.Client(base_url=service.api_url, timeout=120) as api:
        in_flight = api.post("/pipelines/slow-load/execute", json={}).json()["id"]
        wait_until(
            lambda: api.get(f"/pipelines/slow-load/runs/{in_flight}").json()["status"] == "running",
            60,
            "the slow run",
        )
    old_port = service.cluster.port
    service.restart(promote())
    assert service.cluster.port != old_port
    assert service.urls["summit"].endswith(f":{service.cluster.port}/summit")
    with httpx.Client(base_url=service.api_url, timeout=120) as api:
        runs = api.get("/pipelines/queue-b/runs").json()
        assert before_failover in {run["id"] for run in runs}
        after_failover = _run_succeeds(api, "queue-b")
        assert after_failover != before_failover
        # The run cut off by the failover ends as failed instead of blocking its pipeline.
        wait_until(
            lambda: api.get(f"/pipelines/slow-load/runs/{in_flight}").json()["status"] == "failed",
            60,
            "the run cut off by the failover recorded as failed",
        )
        # The sensor's state moved with the data: CDC carries on from its watermark.
        run_sql(
            service.urls["src"],
            "UPDATE public.users SET email = 'after-failover@x.org', updated_at = now() WHERE id = 8",
        )
        wait_until(
            lambda: _email(service.urls["dst"], 8) == "after-failover@x.org",
            60,
            "the CDC sensor's run on the new primary",
        )
