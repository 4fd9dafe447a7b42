"""Execute → `running` through the real service, with the timeline of each run (docs/benchmarks.md,
"Runs start at once").

One invocation starts `summit-etl serve` (Dagster webserver + daemon + code server + API) on
free ports against scratch databases, with bench/api_latency.py's pipeline (a 200-row upsert),
launches it `--runs` times one after the other, prints a table and stops and drops everything
it created. `--api` measures a service that is already running (`make run`) instead:

    .venv/bin/python bench/run_start.py --runs 10
    .venv/bin/python bench/run_start.py --api http://127.0.0.1:4020 --pipeline customers-full

Each run is timed from the POST until `GET .../runs/{id}` says `running` (polled every 50 ms:
what a client sees), and its milestones are placed on the same clock: Dagster's run created,
dequeued by the daemon (STARTING), run-worker process up ("Started process for run"), run
started, step started, and the run record's own `startTime` (written when the engine starts).
The runs go one at a time (each waits for the previous one to end in Dagster), so none queues
behind another, each after a random pause of up to `SPREAD_S`: back to back, every POST would
land at the same moment of the daemon's queue check and all would wait alike. `--burst N`
then launches N pipelines at once (copies of the first, created through the API), as a schedule tick or several operators do: the daemon dequeues them in one
pass, and how it launches them decides when the last one starts. Before the runs the same process times the floor every run worker pays, a fresh
Python process that imports Dagster, and then the same process importing the code location
(`summit_etl.definitions`: our imports, the registry, the Definitions), so the table shows
what Dagster costs and what the code location adds. A run that does not end successfully,
or reads another row count than its source holds, fails the script (exit 1).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import httpx
from api_latency import PIPELINE_ID, SOURCE_ROWS, BenchmarkError, pipelines
from load_throughput import print_rows
from service import BIN, ServiceError, serving

TARGET_S = 3.0  # issue 12, goal 5
POLL_S = 0.05
RUN_TIMEOUT_S = 120.0
FLOOR_SAMPLES = 3
# Longer than the daemon's queue check period (dagster.yaml), so the POSTs fall anywhere in it.
SPREAD_S = 1.2
EVENTS = """
query($id: ID!) { runOrError(runId: $id) { ... on Run { creationTime status
  eventConnection { events { __typename ... on MessageEvent { message timestamp } } } } } }
"""
MILESTONES = {
    "RunStartingEvent": "dequeued",
    "RunStartEvent": "run started",
    "ExecutionStepStartEvent": "step started",
}
# In the order a run passes them; "running" (the client sees it) closes each timeline.
ORDER = ("created", "dequeued", "worker up", "run started", "step started", "record running")
DONE = ("SUCCESS", "FAILURE", "CANCELED")


def quantile(values: list[float], q: float) -> float:
    """Inclusive quantile (`q` in 0..1): the median of two values is their mean."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def dagster_run(graphql: str, run_id: str) -> dict[str, Any]:
    response = httpx.post(graphql, json={"query": EVENTS, "variables": {"id": run_id}}, timeout=30)
    return dict(response.json()["data"]["runOrError"])


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not check():
        if time.monotonic() > deadline:
            raise BenchmarkError(f"{what} not within {RUN_TIMEOUT_S:.0f} s")
        time.sleep(POLL_S)


def timeline(graphql: str, run: dict[str, Any], posted: float) -> dict[str, float]:
    """Seconds from the POST (wall clock, this machine) to each milestone of a finished run."""
    dagster = dagster_run(graphql, run["id"])
    marks = {"created": dagster["creationTime"] - posted}
    for event in dagster["eventConnection"]["events"]:
        name = MILESTONES.get(event["__typename"])
        if name is None and event.get("message", "").startswith("Started process for run"):
            name = "worker up"
        if name:
            marks.setdefault(name, int(event["timestamp"]) / 1000 - posted)
    marks["record running"] = datetime.fromisoformat(run["startTime"]).timestamp() - posted
    return marks


def one_run(
    api: httpx.Client, graphql: str, pipeline: str
) -> tuple[float, dict[str, float], dict[str, Any]]:
    posted = time.time()
    started = time.perf_counter()
    launched = api.post(f"/pipelines/{pipeline}/execute")
    if launched.status_code != 202:
        raise BenchmarkError(f"execute answered {launched.status_code}: {launched.text}")
    run_id = launched.json()["id"]
    path = f"/pipelines/{pipeline}/runs/{run_id}"
    state: dict[str, Any] = {}

    def status_is_not(*statuses: str) -> bool:
        state.update(api.get(path).json())
        return state["status"] not in statuses

    wait_for(lambda: status_is_not("pending"), f"run {run_id} running")
    seconds = time.perf_counter() - started
    wait_for(lambda: status_is_not("pending", "running"), f"run {run_id} finished")
    # Dagster closes the run just after the engine records it; the next must not queue.
    wait_for(lambda: dagster_run(graphql, run_id)["status"] in DONE, f"Dagster run {run_id} closed")
    return seconds, timeline(graphql, state, posted), state


def add_copies(api: httpx.Client, pipeline: str, count: int) -> list[str]:
    """`count` more pipelines like `pipeline` (own id and target), created through the API
    (which answers once the code location has reloaded with them); their ids."""
    base = api.get(f"/pipelines/{pipeline}").json()["config"]
    ids = []
    for n in range(1, count + 1):
        copy = {**base, "id": f"{pipeline}-{n}", "name": f"{base['name']} {n}"}
        copy["loading"] = {
            **base["loading"],
            "targetTable": f"{base['loading']['targetTable']}_{n}",
            "createTable": True,
        }
        created = api.post("/pipelines", json=copy)
        if created.status_code != 201:
            raise BenchmarkError(
                f"creating {copy['id']} answered {created.status_code}: {created.text}"
            )
        ids.append(copy["id"])
    return ids


def burst(
    api: httpx.Client, graphql: str, pipelines: list[str]
) -> list[tuple[float, dict[str, float], dict[str, Any]]]:
    """Every pipeline executed at once (one thread each): each run's figures."""
    with ThreadPoolExecutor(len(pipelines)) as pool:
        return list(pool.map(lambda p: one_run(api, graphql, p), pipelines))


def timed_process(code: str, env: dict[str, str]) -> float:
    """Median seconds of a fresh Python process that runs `code` (over FLOOR_SAMPLES)."""
    samples = []
    for _ in range(FLOOR_SAMPLES):
        started = time.perf_counter()
        subprocess.run([str(BIN / "python"), "-c", code], env=env, check=True)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


Figures = tuple[float, dict[str, float], dict[str, Any]]  # seconds to `running`, timeline, run


def check(figures: Figures, rows: int | None, failures: list[str], note: str = "") -> None:
    """Print one run's line; note it in `failures` unless it succeeded reading `rows` rows."""
    seconds, marks, run = figures
    steps = ", ".join(f"{name} {marks[name]:.2f}" for name in ORDER if name in marks)
    print(f"{run['id']}: running after {seconds:.2f} s ({steps}){note}", flush=True)
    if run["status"] != "success":
        failures.append(f"run {run['id']} ended {run['status']}: {run['errors']}")
    elif rows is not None and run["recordsExtracted"] != rows:
        failures.append(f"run {run['id']} read {run['recordsExtracted']} rows, not {rows}")


def summary(what: str, values: list[float], floor: float | None) -> tuple[str, ...]:
    """A table row: count, p50, p95, max, and with `floor` the p50's ratios."""
    p50 = quantile(values, 0.5)
    ratios = (f"{p50 / floor:.2f}", f"{p50 / TARGET_S:.2f}") if floor else ("", "")
    return (
        what,
        str(len(values)),
        f"{p50:.2f}",
        f"{quantile(values, 0.95):.2f}",
        f"{max(values):.2f}",
        *ratios,
    )


def measure(args: argparse.Namespace, env: dict[str, str] | None) -> int:
    """Runs the pipeline, prints the table; the exit code (1: a run went wrong)."""
    floors = [("fresh process: import dagster", timed_process("import dagster", dict(os.environ)))]
    if env is not None:  # the code location needs the service's databases and pipelines
        floors.append(
            (
                "fresh process: import summit_etl.definitions",
                timed_process("import summit_etl.definitions", env),
            )
        )
    measured: list[Figures] = []
    bursts: list[Figures] = []
    failures: list[str] = []
    spread = random.Random(12)  # the same pauses in every invocation
    with httpx.Client(base_url=args.api, timeout=60) as api:
        for n in range(args.warmup + args.runs):
            time.sleep(spread.uniform(0, SPREAD_S))
            figures = one_run(api, args.graphql, args.pipeline)
            check(
                figures, args.rows, failures, " (warm-up, not counted)" if n < args.warmup else ""
            )
            if n >= args.warmup:
                measured.append(figures)
        if args.burst > 1:
            pipelines = [args.pipeline, *add_copies(api, args.pipeline, args.burst - 1)]
            try:
                burst(api, args.graphql, pipelines)  # warm-up: the copies' first runs
                time.sleep(spread.uniform(0, SPREAD_S))
                print(f"burst of {args.burst}:")
                for figures in burst(api, args.graphql, pipelines):
                    check(figures, args.rows, failures)
                    bursts.append(figures)
            finally:
                for copy in pipelines[1:]:
                    api.delete(f"/pipelines/{copy}")
    floor = floors[0][1]
    print()
    table: list[tuple[str, ...]] = [
        ("what", "runs", "p50 s", "p95 s", "max s", "p50 × floor", "p50 × target")
    ]
    table.append(summary("execute → running", [f[0] for f in measured], floor))
    for name in ORDER:
        if at := [f[1][name] for f in measured if name in f[1]]:
            table.append(summary(f"  {name} at", at, None))
    if bursts:
        table.append(
            summary(f"burst of {args.burst}: execute → running", [f[0] for f in bursts], floor)
        )
        for name in ("dequeued", "record running"):
            if at := [f[1][name] for f in bursts if name in f[1]]:
                table.append(summary(f"  {name} at", at, None))
    for name, seconds in floors:
        table.append(
            (name, str(FLOOR_SAMPLES), f"{seconds:.2f}", "", "", f"{seconds / floor:.2f}", "")
        )
    print_rows(table)
    load = os.getloadavg()
    print(
        f"\ntarget ≤ {TARGET_S:.0f} s; load average at the end {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
    )
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="measured runs (default 10)")
    parser.add_argument("--warmup", type=int, default=1, help="runs before those, not counted")
    parser.add_argument(
        "--burst",
        type=int,
        default=3,
        help="then N pipelines launched at once (default 3; 0 or 1: none)",
    )
    parser.add_argument("--api", help="a running service's API (default: start one)")
    parser.add_argument(
        "--graphql", default="http://127.0.0.1:3000/graphql", help="its Dagster GraphQL, with --api"
    )
    parser.add_argument("--pipeline", default="customers-full", help="the pipeline, with --api")
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep the started service's output"
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0 or args.burst > 4:
        parser.error("--runs ≥ 1, --warmup ≥ 0, --burst ≤ 4 (dagster.yaml's max_concurrent_runs)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.api is not None:
        args.rows = None  # another service's pipeline: any row count is right
        return measure(args, None)

    try:
        with serving(pipelines, keep_logs=args.keep_logs) as service:
            args.api, args.graphql, args.pipeline, args.rows = (
                service.api_url,
                service.graphql_url,
                PIPELINE_ID,
                SOURCE_ROWS,
            )
            env = {
                **os.environ,
                "DATABASE_URL": service.summit_url,
                "SUMMIT_PIPELINES_DIR": str(service.pipelines_dir),
                "SUMMIT_LOG_FILE": str(service.home / "logs" / "definitions.log"),
            }
            return measure(args, env)
    except (BenchmarkError, ServiceError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "interrupted; the service was stopped and the scratch databases dropped",
            file=sys.stderr,
        )
        return 130

if __name__ == "__main__":
    sys.exit(main())
