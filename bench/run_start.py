"""Execute → `running` through the real service, with Dagster's own timeline of each run.

Against a running `summit-etl serve` (`make run`): launches a pipeline N times, one after
the other, and for each run prints the seconds from the POST until `GET .../runs/{id}`
says `running` (what a client sees), then where that time went according to Dagster's
events: queued → dequeued (STARTING) → run worker process up → run started.

    .venv/bin/python bench/run_start.py --pipeline customers-full --runs 5
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import httpx

EVENTS = """
query($id: ID!) { runOrError(runId: $id) { ... on Run { creationTime status
  eventConnection { events { __typename ... on MessageEvent { message timestamp } } } } } }
"""
MILESTONES = {
    "RunEnqueuedEvent": "enqueued",
    "RunStartingEvent": "dequeued",
    "RunStartEvent": "run started",
}


def _run(graphql: str, run_id: str) -> dict[str, Any]:
    response = httpx.post(graphql, json={"query": EVENTS, "variables": {"id": run_id}}, timeout=30)
    return dict(response.json()["data"]["runOrError"])


def dagster_status(graphql: str, run_id: str) -> str:
    return str(_run(graphql, run_id)["status"])


def timeline(graphql: str, run_id: str) -> dict[str, float]:
    run = _run(graphql, run_id)
    marks: dict[str, float] = {}
    for event in run["eventConnection"]["events"]:
        seconds = int(event["timestamp"]) / 1000 - run["creationTime"]
        name = MILESTONES.get(event["__typename"])
        if name is None and event.get("message", "").startswith("Started process for run"):
            name = "worker process up"
        if name and name not in marks:
            marks[name] = seconds
    return marks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", default="http://127.0.0.1:4020")
    parser.add_argument("--graphql", default="http://127.0.0.1:3000/graphql")
    parser.add_argument("--pipeline", default="customers-full")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    figures = []
    with httpx.Client(base_url=args.api, timeout=60) as api:
        for _ in range(args.runs):
            started = time.perf_counter()
            run = api.post(f"/pipelines/{args.pipeline}/execute").json()
            status = run["status"]
            while status == "pending":
                time.sleep(0.05)
                status = api.get(f"/pipelines/{args.pipeline}/runs/{run['id']}").json()["status"]
            seconds = time.perf_counter() - started
            figures.append(seconds)
            while status == "running":  # one run at a time: the next must not queue
                time.sleep(0.2)
                status = api.get(f"/pipelines/{args.pipeline}/runs/{run['id']}").json()["status"]
            while dagster_status(args.graphql, run["id"]) not in ("SUCCESS", "FAILURE", "CANCELED"):
                time.sleep(0.2)  # Dagster closes the run just after the engine records it
            marks = timeline(args.graphql, run["id"])
            steps = ", ".join(f"{name} {at:.2f}" for name, at in marks.items())
            print(f"{run['id']}: running after {seconds:.2f} s ({steps})")
    print(
        f"execute -> running over {len(figures)} runs: median {statistics.median(figures):.2f} s, "
        f"max {max(figures):.2f} s"
    )


if __name__ == "__main__":
    main()
