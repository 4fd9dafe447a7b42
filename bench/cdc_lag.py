"""CDC lag: seconds from a source commit until the change is visible in the target
(docs/benchmarks.md, "CDC lag").

For each strategy and rate, a writer process commits inserts and updates to the source at
a steady rate while this process drives the pipeline's CDC sensor as the Dagster daemon
would: a tick every poll interval on a real Dagster instance, and each run it requests
executed in process. A watcher polls the target's change log every 50 ms and notes when
each change appears. At the end every change is checked: none lost, none duplicated.

    .venv/bin/python bench/cdc_lag.py                                  # all four, 50 and 500/s
    .venv/bin/python bench/cdc_lag.py --strategies trigger --rates 500 --duration 60
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import psycopg
from dagster import DagsterInstance
from psycopg import sql

from summit_etl.orchestration.keys import job_name
from summit_etl.store import db
from summit_etl_tests.cdc.cdc_support import Harness, LogicalCluster

ADMIN_URL = os.environ.get("SUMMIT_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SOURCE_DDL = """
CREATE SEQUENCE public.events_version;
CREATE TABLE public.events (
    id         bigint PRIMARY KEY,
    change_no  bigint NOT NULL,
    payload    text NOT NULL,
    amount     numeric(12,2) NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    version    bigint NOT NULL DEFAULT nextval('public.events_version')
);
CREATE FUNCTION public.touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := now();
  NEW.version := nextval('public.events_version');
  RETURN NEW;
END $$;
CREATE TRIGGER touch BEFORE UPDATE ON public.events FOR EACH ROW EXECUTE FUNCTION public.touch();
"""
PRELOADED = 1000
COMMITS_PER_SECOND = 50  # the writer's transactions: rate / 50 changes each
UPDATE_SHARE = 0.3
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def create_database(admin_url: str, prefix: str) -> str:
    name = f"summit_bench_cdc_{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return admin_url.rsplit("/", 1)[0] + "/" + name


def drop_database(url: str) -> None:
    admin, name = url.rsplit("/", 1)[0] + "/postgres", url.rsplit("/", 1)[1]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
            "WHERE database = %s",
            (name,),
        )
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def write(url: str, rate: int, duration: float, results: Any) -> None:
    """The writer process: `rate` changes a second, committed in small transactions."""
    rng = random.Random(7)
    per_commit = max(1, rate // COMMITS_PER_SECOND)
    interval = per_commit / rate
    next_id, change_no = PRELOADED + 1, 0
    commits: list[tuple[int, int, float]] = []  # (change_no, id, commit time)
    with psycopg.connect(url) as conn:
        started = time.time()
        deadline = started + duration
        tick = started
        while tick < deadline:
            written = []
            for _ in range(per_commit):
                change_no += 1
                if rng.random() < UPDATE_SHARE:
                    row = rng.randrange(1, next_id)
                    conn.execute(
                        "UPDATE public.events SET change_no = %s, amount = amount + 1 WHERE id = %s",
                        (change_no, row),
                    )
                else:
                    row, next_id = next_id, next_id + 1
                    conn.execute(
                        "INSERT INTO public.events (id, change_no, payload, amount) "
                        "VALUES (%s, %s, %s, %s)",
                        (row, change_no, f"event {row}", row % 1000),
                    )
                written.append((change_no, row))
            conn.commit()
            committed = time.time()
            commits.extend((no, row, committed) for no, row in written)
            tick += interval
            time.sleep(max(0.0, tick - time.time()))
    results.put(commits)


class Watcher(threading.Thread):
    """Notes when each change number first shows up in the target's change log."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.seen: dict[int, float] = {}
        self.occurrences: Counter[int] = Counter()
        self.stop = threading.Event()

    def run(self) -> None:
        last = 0
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.is_set():
                rows = conn.execute(
                    "SELECT id, (new_values ->> 'change_no')::bigint FROM dw.events_changes "
                    "WHERE id > %s AND new_values IS NOT NULL ORDER BY id",
                    (last,),
                ).fetchall()
                now = time.time()
                for row_id, change_no in rows:
                    self.seen.setdefault(change_no, now)
                    self.occurrences[change_no] += 1
                    last = row_id
                time.sleep(0.05)


@dataclass
class CaseResult:
    strategy: str
    rate: int
    changes: int
    expected: int
    lost: int
    duplicated: int
    superseded: int
    p50: float
    p95: float
    worst: float
    throughput: float
    runs: int


def pipeline(strategy: str, source_url: str, target_url: str, poll: int) -> dict[str, Any]:
    cdc: dict[str, Any] = {"strategy": strategy, "primaryKeys": ["id"],
                           "pollIntervalSeconds": poll, "batchSize": 1000}
    if strategy in ("timestamp", "version"):
        cdc["trackingColumn"] = "updated_at" if strategy == "timestamp" else "version"
    return {
        "id": f"bench-{strategy.replace('_', '-')}",
        "name": f"CDC lag {strategy}",
        "source": {"url": source_url, "table": "public.events"},
        "extraction": {"strategy": "cdc"},
        "cdc": cdc,
        "loading": {"strategy": "upsert", "targetTable": "dw.events", "targetUrl": target_url,
                    "createTable": True},
    }


def drive(cdc: Harness, instance: DagsterInstance, poll: float, until: threading.Event,
          settle: float) -> int:
    """Tick every `poll` seconds and run what the sensor asks for, as the daemon would."""
    job = cdc.defs.resolve_job_def(job_name(cdc.config.id))
    runs, idle_since = 0, None
    while True:
        tick_started = time.monotonic()
        requests = cdc.tick().run_requests
        for request in requests:
            result = job.execute_in_process(
                instance=instance, run_config=QUIET_LOGS, raise_on_error=False,
                tags={**request.tags, "dagster/sensor_name": cdc.sensor_name},
            )
            runs += 1
            if not result.success:
                print(f"  run {result.run_id} failed", file=sys.stderr)
        if requests or not until.is_set():
            idle_since = None
        else:  # the writer is done: stop once the sensor has had nothing to do for a while
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since >= settle:
                return runs
        time.sleep(max(0.0, poll - (time.monotonic() - tick_started)))


def run_case(strategy: str, rate: int, duration: float, poll: int, logical_url: str) -> CaseResult:
    source = create_database(logical_url if strategy == "log_based" else ADMIN_URL, "src")
    target, summit = create_database(ADMIN_URL, "dst"), create_database(ADMIN_URL, "summit")
    try:
        db.migrate(summit)
        with psycopg.connect(source, autocommit=True) as conn:
            conn.execute(SOURCE_DDL)
            conn.execute(
                "INSERT INTO public.events (id, change_no, payload, amount) "
                "SELECT g, 0, 'event ' || g, g %% 1000 FROM generate_series(1, %s) g",
                (PRELOADED,),
            )
        with DagsterInstance.ephemeral() as instance:
            cdc = Harness(pipeline(strategy, source, target, poll), summit, instance)
            for request in cdc.tick().run_requests:  # the initial read, before the clock starts
                cdc.defs.resolve_job_def(job_name(cdc.config.id)).execute_in_process(
                    instance=instance, run_config=QUIET_LOGS, tags=request.tags)
            watcher = Watcher(target)
            watcher.start()
            results: Any = multiprocessing.get_context("spawn").Queue()
            writer = multiprocessing.get_context("spawn").Process(
                target=write, args=(source, rate, duration, results))
            writer.start()
            done = threading.Event()
            collected: list[list[tuple[int, int, float]]] = []

            def wait_for_writer() -> None:
                collected.append(results.get())
                writer.join()
                done.set()

            threading.Thread(target=wait_for_writer, daemon=True).start()
            runs = drive(cdc, instance, poll, done, settle=2 * poll)
            time.sleep(0.3)
            watcher.stop.set()
            watcher.join()
        commits = collected[0]
        return evaluate(strategy, rate, commits, watcher, runs)
    finally:
        for url in (source, target, summit):
            drop_database(url)


def evaluate(strategy: str, rate: int, commits: list[tuple[int, int, float]], watcher: Watcher,
             runs: int) -> CaseResult:
    if strategy in ("trigger", "log_based"):
        expected = {no: at for no, _, at in commits}  # every change is captured
    else:
        final: dict[int, tuple[int, float]] = {}
        for no, row, at in commits:  # polling sees the newest version of each row
            final[row] = (no, at)
        expected = dict(final.values())
    lags = sorted(watcher.seen[no] - at for no, at in expected.items() if no in watcher.seen)
    lost = sum(1 for no in expected if no not in watcher.seen)
    duplicated = sum(1 for no in expected if watcher.occurrences[no] > 1)
    first_commit = min(at for _, _, at in commits)
    last_visible = max(watcher.seen[no] for no in expected if no in watcher.seen)
    return CaseResult(
        strategy, rate, len(commits), len(expected), lost, duplicated,
        len(commits) - len(expected), statistics.median(lags),
        lags[int(0.95 * (len(lags) - 1))], lags[-1],
        len(commits) / (last_visible - first_commit), runs,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--strategies", default="timestamp,version,trigger,log_based")
    parser.add_argument("--rates", default="50,500", help="changes per second, comma-separated")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of writing per case")
    parser.add_argument("--poll", type=int, default=2, help="cdc.pollIntervalSeconds")
    args = parser.parse_args(argv)
    results = []
    with LogicalCluster.running() as cluster:
        for strategy in args.strategies.split(","):
            for rate in (int(r) for r in args.rates.split(",")):
                print(f"{strategy} at {rate} changes/s for {args.duration:.0f} s ...", flush=True)
                results.append(run_case(strategy, rate, args.duration, args.poll,
                                        cluster.admin_url))
    print()
    print("| strategy | rate/s | changes | checked | lost | duplicated | superseded | "
          "p50 s | p95 s | max s | applied/s | runs |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r.strategy} | {r.rate} | {r.changes} | {r.expected} | {r.lost} | "
              f"{r.duplicated} | {r.superseded} | {r.p50:.2f} | {r.p95:.2f} | {r.worst:.2f} | "
              f"{r.throughput:.0f} | {r.runs} |")
    failed = [r for r in results if r.lost or r.duplicated]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
