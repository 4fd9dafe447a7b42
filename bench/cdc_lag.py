"""CDC lag: seconds from a source commit until the change is visible in the target
(docs/benchmarks.md, "CDC lag").

For each strategy and rate, a writer process commits inserts and updates to the source at
a steady rate and a watcher polls the target's change log every 50 ms, noting when each
change appears. At the end every change is checked: none lost, none duplicated.

The pipeline runs through the real service: `summit-etl serve`
(Dagster webserver + daemon + API) on free ports against throwaway databases, the pipeline
created with `POST /pipelines` and started with `POST /pipelines/{id}/cdc/start`, so every
change goes through the daemon's sensor, the run queue and the run launcher, and most
arrive while the live run the sensor launched is applying. After the steady phase the live
run is left to end, and single changes measure the cold start (sensor tick + queue +
launch). There is no in-process mode: a sensor ticked and runs executed in this process
would skip the queue, the launcher and the process start that every real change pays.

    .venv/bin/python bench/cdc_lag.py                                  # trigger, log_based × 500, 5000/s
    .venv/bin/python bench/cdc_lag.py --strategies trigger --rates 500 --duration 10
    .venv/bin/python bench/cdc_lag.py --strategies timestamp,version --rates 50,500
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
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from service import Service, serving

from summit_etl_tests.api_shim.conftest import wait_until
from summit_etl_tests.cdc.cdc_support import LogicalCluster

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
COLD_CHANGE_NO = 10**12  # change numbers of the single cold-start changes
P95_GOAL = 2.0  # issue 12 goal 4: p95 <= 2 s (stretch 1 s)


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


def create_source(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SOURCE_DDL)
        conn.execute(
            "INSERT INTO public.events (id, change_no, payload, amount) "
            "SELECT g, 0, 'event ' || g, g %% 1000 FROM generate_series(1, %s) g",
            (PRELOADED,),
        )


def write(url: str, rate: int, duration: float, go: Any, results: Any) -> None:
    """The writer process: once `go` is set, `rate` changes a second, committed in 50
    transactions a second, each one INSERT of new keys and one UPDATE of distinct existing
    keys (set-based, so the writer itself keeps up at thousands of changes a second)."""
    rng = random.Random(7)
    per_commit = max(1, rate // COMMITS_PER_SECOND)
    interval = per_commit / rate
    next_id, change_no = PRELOADED + 1, 0
    commits: list[tuple[int, int, float]] = []  # (change_no, id, commit time)
    with psycopg.connect(url) as conn:
        go.wait()
        started = time.time()
        deadline = started + duration
        tick = started
        while tick < deadline:
            updates = min(sum(rng.random() < UPDATE_SHARE for _ in range(per_commit)), next_id - 1)
            updated = rng.sample(range(1, next_id), updates)
            inserted = list(range(next_id, next_id + per_commit - updates))
            next_id += len(inserted)
            numbers = list(range(change_no + 1, change_no + per_commit + 1))
            change_no += per_commit
            if updated:
                conn.execute(
                    "UPDATE public.events AS e SET change_no = u.no, amount = e.amount + 1 "
                    "FROM unnest(%s::bigint[], %s::bigint[]) AS u(id, no) WHERE e.id = u.id",
                    (updated, numbers[:updates]),
                )
            if inserted:
                conn.execute(
                    "INSERT INTO public.events (id, change_no, payload, amount) "
                    "SELECT i, n, 'event ' || i, i %% 1000 "
                    "FROM unnest(%s::bigint[], %s::bigint[]) AS u(i, n)",
                    (inserted, numbers[updates:]),
                )
            conn.commit()
            committed = time.time()
            commits.extend((no, row, committed) for no, row in zip(numbers, updated + inserted, strict=True))
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
                try:
                    rows = conn.execute(
                        "SELECT id, (new_values ->> 'change_no')::bigint FROM dw.events_changes "
                        "WHERE id > %s AND new_values IS NOT NULL ORDER BY id",
                        (last,),
                    ).fetchall()
                except psycopg.errors.UndefinedTable:  # before the first run created it
                    rows = []
                now = time.time()
                for row_id, change_no in rows:
                    self.seen.setdefault(change_no, now)
                    self.occurrences[change_no] += 1
                    last = row_id
                time.sleep(0.05)

    def wait_for(self, numbers: list[int], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(n in self.seen for n in numbers):
                return True
            time.sleep(0.05)
        return False


@dataclass
class CaseResult:
    mode: str
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
    written: float  # changes/s the writer achieved
    throughput: float  # changes/s applied
    runs: int
    cold: list[float] = field(default_factory=list)  # single changes after the run ended
    cold_lost: int = 0


def pipeline(strategy: str, source_url: str, target_url: str, args: argparse.Namespace,
             pipeline_id: str) -> dict[str, Any]:
    cdc: dict[str, Any] = {"strategy": strategy, "primaryKeys": ["id"],
                           "pollIntervalSeconds": args.poll, "batchSize": args.batch_size,
                           "idleWindowSeconds": args.idle, "runPollMs": args.run_poll_ms}
    if strategy in ("timestamp", "version"):
        cdc["trackingColumn"] = "updated_at" if strategy == "timestamp" else "version"
    if strategy == "trigger":
        cdc["triggerLevel"] = args.trigger_level
    return {
        "id": pipeline_id,
        "name": f"CDC lag {strategy}",
        "source": {"url": source_url, "table": "public.events"},
        "extraction": {"strategy": "cdc"},
        "cdc": cdc,
        "loading": {"strategy": "upsert", "targetTable": "dw.events", "targetUrl": target_url,
                    "createTable": True},
    }


@dataclass
class Writer:
    go: Any  # set it to start writing
    done: threading.Event  # set once its commits are collected
    commits: list[list[tuple[int, int, float]]]
    process: Any

    def stop(self) -> None:
        """A case that failed leaves no writer behind."""
        if self.process.is_alive():
            self.process.kill()


def start_writer(source: str, rate: int, duration: float) -> Writer:
    """The writer in a process of its own, started early: its imports take seconds on a
    loaded machine, and it writes only once told to."""
    context = multiprocessing.get_context("spawn")
    results: Any = context.Queue()
    go = context.Event()
    writer = context.Process(target=write, args=(source, rate, duration, go, results))
    writer.start()
    done = threading.Event()
    collected: list[list[tuple[int, int, float]]] = []

    def wait_for_writer() -> None:
        collected.append(results.get())
        writer.join()
        done.set()

    threading.Thread(target=wait_for_writer, daemon=True).start()
    return Writer(go, done, collected, writer)


# --- through the service: summit-etl serve, its daemon, queue and run launcher ----------


def _in_flight(summit_url: str, pipeline_id: str) -> bool:
    with psycopg.connect(summit_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pipeline_runs WHERE pipeline_id = %s "
            "AND status IN ('pending', 'running')",
            (pipeline_id,),
        ).fetchone()
    return bool(row and row[0])


def _runs(summit_url: str, pipeline_id: str) -> int:
    with psycopg.connect(summit_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pipeline_runs WHERE pipeline_id = %s", (pipeline_id,)
        ).fetchone()
    return int(row[0]) if row else 0


def _preloaded(target: str) -> bool:
    with psycopg.connect(target, autocommit=True) as conn:
        try:
            row = conn.execute("SELECT count(*) FROM dw.events").fetchone()
        except psycopg.errors.UndefinedTable:
            return False
    return bool(row and row[0] >= PRELOADED)


def cold_start(source: str, watcher: Watcher, summit_url: str, pipeline_id: str,
               samples: int, idle: float) -> tuple[list[float], int]:
    """Single changes, each once the live run has ended: sensor tick + queue + launch + run."""
    lags, lost = [], 0
    for sample in range(samples):
        wait_until(lambda: not _in_flight(summit_url, pipeline_id), idle + 120, "the live run's end")
        time.sleep(1)  # the sensor sees no run in flight from its next tick on
        number = COLD_CHANGE_NO + sample
        with psycopg.connect(source) as conn:
            conn.execute("UPDATE public.events SET change_no = %s WHERE id = 1", (number,))
            conn.commit()
            committed = time.time()
        if watcher.wait_for([number], 120):
            lags.append(watcher.seen[number] - committed)
        else:
            lost += 1
    return lags, lost


def run_through_service(svc: Service, strategy: str, rate: int, args: argparse.Namespace,
                        logical_url: str) -> CaseResult:
    source = create_database(logical_url if strategy == "log_based" else ADMIN_URL, "src")
    target = create_database(ADMIN_URL, "dst")
    pipeline_id = f"lag-{strategy.replace('_', '-')}-{rate}"
    api = svc.api
    watcher = Watcher(target)
    writer: Writer | None = None
    try:
        create_source(source)
        writer = start_writer(source, rate, args.duration)
        created = api.post("/pipelines", json=pipeline(strategy, source, target, args, pipeline_id))
        assert created.status_code == 201, created.text
        started = api.post(f"/pipelines/{pipeline_id}/cdc/start")
        assert started.status_code == 200, started.text
        # The snapshot run; the writer starts while it is live, as changes that keep
        # coming find a live run.
        wait_until(lambda: _preloaded(target), 180, "the snapshot")
        watcher.start()
        writer.go.set()
        writer.done.wait()
        commits = writer.commits[0]
        watcher.wait_for([no for no, _, _ in commits], 120)
        cold, cold_lost = cold_start(source, watcher, svc.summit_url, pipeline_id,
                                     args.cold_samples, args.idle)
        api.post(f"/pipelines/{pipeline_id}/cdc/stop")
        wait_until(lambda: not _in_flight(svc.summit_url, pipeline_id), args.idle + 60,
                   "the last run's end")
        result = evaluate("service", strategy, rate, commits, watcher,
                          _runs(svc.summit_url, pipeline_id))
        result.cold, result.cold_lost = cold, cold_lost
        return result
    finally:
        watcher.stop.set()
        if writer is not None:
            writer.stop()
        api.delete(f"/pipelines/{pipeline_id}")
        for url in (source, target):
            drop_database(url)


def evaluate(mode: str, strategy: str, rate: int, commits: list[tuple[int, int, float]],
             watcher: Watcher, runs: int) -> CaseResult:
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
    last_commit = max(at for _, _, at in commits)
    last_visible = max((watcher.seen[no] for no in expected if no in watcher.seen),
                       default=last_commit)
    return CaseResult(
        mode, strategy, rate, len(commits), len(expected), lost, duplicated,
        len(commits) - len(expected), statistics.median(lags) if lags else float("nan"),
        lags[int(0.95 * (len(lags) - 1))] if lags else float("nan"),
        lags[-1] if lags else float("nan"),
        len(commits) / max(last_commit - first_commit, 1e-9),
        len(commits) / max(last_visible - first_commit, 1e-9), runs,
    )


def print_table(results: list[CaseResult]) -> None:
    print()
    print("| mode | strategy | rate/s | written/s | changes | checked | lost | duplicated | "
          "superseded | p50 s | p95 s | max s | p95 ÷ 2 s goal | applied/s | applied ÷ written | "
          "runs | cold start s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        cold = ", ".join(f"{c:.1f}" for c in r.cold) + (f" ({r.cold_lost} lost)" if r.cold_lost else "")
        print(f"| {r.mode} | {r.strategy} | {r.rate} | {r.written:.0f} | {r.changes} | "
              f"{r.expected} | {r.lost} | {r.duplicated} | {r.superseded} | {r.p50:.2f} | "
              f"{r.p95:.2f} | {r.worst:.2f} | {r.p95 / P95_GOAL:.2f} | {r.throughput:.0f} | "
              f"{r.throughput / r.written:.2f} | {r.runs} | {cold or '-'} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--strategies", default="trigger,log_based")
    parser.add_argument("--rates", default="500,5000", help="changes per second, comma-separated")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of writing per case")
    parser.add_argument("--poll", type=int, default=1, help="cdc.pollIntervalSeconds")
    parser.add_argument("--idle", type=float, default=30.0, help="cdc.idleWindowSeconds")
    parser.add_argument("--run-poll-ms", type=int, default=200, help="cdc.runPollMs")
    parser.add_argument("--batch-size", type=int, default=1000, help="cdc.batchSize")
    parser.add_argument("--trigger-level", choices=("row", "statement"), default="row",
                        help="cdc.triggerLevel of the trigger cases")
    parser.add_argument("--cold-samples", type=int, default=2,
                        help="single changes after the live run ended")
    args = parser.parse_args(argv)
    results: list[CaseResult] = []
    cases = [(s, int(r)) for s in args.strategies.split(",") for r in args.rates.split(",")]
    with LogicalCluster.running() as cluster, serving() as svc:
        for strategy, rate in cases:
            print(f"service: {strategy} at {rate} changes/s for {args.duration:.0f} s ...",
                  flush=True)
            results.append(run_through_service(svc, strategy, rate, args, cluster.admin_url))
    print_table(results)
    failed = [r for r in results if r.lost or r.duplicated or r.cold_lost]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
