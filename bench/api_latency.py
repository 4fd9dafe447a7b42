"""API latency: the REST API of a real `summit-etl serve`, every read route and the launch route (docs/benchmarks.md).

One invocation starts the whole service (Dagster webserver + daemon + API) on free ports
against scratch databases, seeds 1,000 runs of one pipeline with their quality reports and
200 alerts, measures the routes with an async HTTP client, prints markdown tables and stops
and drops everything it created:

    .venv/bin/python bench/api_latency.py
    .venv/bin/python bench/api_latency.py --reads 100,500 --executes 2 --quiet-timeout 5   # a quicker pass
    .venv/bin/python bench/api_latency.py --routes health,runs --no-cross-check           # some routes only

Read routes: every GET route of api_shim/app.py's table (the script fails if one is left
out): /health, /metrics, /openapi.json, /pipelines, /pipelines/{id}, its runs list and one
run, the latest and one quality report, /alerts. Each is checked once against the seeded
data, then runs at 1 and at 50 concurrent clients (closed loop: each client sends its next
request as soon as the previous answer arrives), a fixed number of requests each after a
warm-up, over keep-alive connections; every answer must be 200 or the script fails. The
tables give p50/p95/p99 per route, the p99 over the target (50 ms at 50 clients) and over
the p99 of /health in the same setting (an answer from memory: the framework's floor).
`POST /pipelines/{id}/execute` runs sequentially (each launches a real Dagster run and must
answer 202); the script then waits for those runs to end, cancelling any that outlive the wait.

Each virtual client is its own httpx.AsyncClient with one keep-alive connection: one shared
AsyncClient with a 50-connection pool spends ~6 ms of CPU per request in its pool
management at 50 clients (`--client httpx-shared` to see it), three to four times what 50 small
clients cost, and on two shared cores that CPU is taken from the server. A minimal raw HTTP
client repeats the 50-client reads as a cross-check of what the server itself sustains.

The load generator runs on the same machine as the server: its CPU time is reported next to
the server's, per request, so the competition for the cores is visible.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import psutil
import psycopg
from load_throughput import print_rows
from psycopg import sql
from service import TERMINAL, Service, ServiceError, serving

PIPELINE_ID = "bench-users"
SEED_RUNS = 1_000
SOURCE_ROWS = 200
CONCURRENCY = (1, 50)
DEFAULT_READS = "300,2000"  # requests per read route at 1 and at 50 clients
DEFAULT_EXECUTES = 10
READ_TARGET_MS = 50.0  # p99 at 50 concurrent clients
EXECUTE_TARGET_MS = 300.0  # p99 of sequential launches
PHASE_TIMEOUT_S = 180.0
DRAIN_TIMEOUT_S = 180.0
HTTP_TIMEOUT_S = 30.0
QUIET_BUSY_SHARE = 0.25  # of both cores, over one second, before each measured phase
QUIET_TIMEOUT_S = 30.0  # --quiet-timeout
CLIENT_KINDS = ("httpx", "httpx-shared", "raw")

# 1,000 finished runs of the pipeline over the last ~6 weeks, newest last: mostly success,
# some failed / partial / cancelled, with the engine's metrics object and error entries.
SEED_SQL = """
INSERT INTO pipeline_runs (id, pipeline_id, status, trigger, full_reload, created_at,
                           start_time, end_time, records_extracted, records_transformed,
                           records_filtered, records_loaded, records_failed, bytes_processed,
                           quality_score, errors, metrics)
SELECT 'seed-' || lpad(g::text, 6, '0'), %(pipeline)s, s.status,
       CASE WHEN g %% 12 = 0 THEN 'manual' ELSE 'schedule' END,
       g %% 40 = 0,
       s.created, s.created + interval '1 second',
       s.created + interval '1 second' + s.ms * interval '1 millisecond',
       s.extracted, s.extracted, 0, l.loaded, s.extracted - l.loaded, s.extracted * 112,
       CASE WHEN s.status = 'failed' THEN NULL ELSE 0.9 + (g %% 10) / 100.0 END,
       CASE WHEN s.status IN ('failed', 'partial_success') THEN jsonb_build_array(jsonb_build_object(
                'stage', 'loading', 'message', 'connection to target lost: server closed the connection unexpectedly',
                'details', jsonb_build_object('batch', g %% 7, 'table', 'dw.users'),
                'timestamp', to_char(s.created AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"')))
            ELSE '[]'::jsonb END,
       jsonb_build_object(
           'extractionDurationMs', round(s.ms * 0.45, 1), 'transformationDurationMs', round(s.ms * 0.05, 1),
           'validationDurationMs', 0.0, 'loadingDurationMs', round(s.ms * 0.5, 1),
           'totalDurationMs', s.ms, 'throughputRecordsPerSecond', round(l.loaded * 1000.0 / s.ms, 1))
  FROM generate_series(1, %(runs)s) AS g
 CROSS JOIN LATERAL (
       SELECT CASE WHEN g %% 53 = 0 THEN 'cancelled' WHEN g %% 17 = 0 THEN 'failed'
                   WHEN g %% 23 = 0 THEN 'partial_success' ELSE 'success' END AS status,
              now() - (%(runs)s - g) * interval '1 hour' - (g * 7919 %% 1800) * interval '1 second' AS created,
              (g * 7919 %% 20000 + 500)::bigint AS extracted,
              (g * 104729 %% 9000 + 800)::numeric AS ms) AS s
 CROSS JOIN LATERAL (
       SELECT CASE s.status WHEN 'success' THEN s.extracted
                            WHEN 'partial_success' THEN s.extracted - s.extracted / 50
                            ELSE 0 END AS loaded) AS l
"""


# A quality report for every run with a score; the newest is the newest run's.
SEED_REPORTS_SQL = """
INSERT INTO data_quality_reports (pipeline_run_id, pipeline_id, "timestamp", overall_score, dimensions,
                                  issues, statistics)
SELECT id, pipeline_id, coalesce(end_time, created_at), quality_score * 100,
       '{"completeness": 100, "accuracy": 97.5, "consistency": 100, "timeliness": 100, "validity": 95, "uniqueness": 100}',
       jsonb_build_array(jsonb_build_object('severity', 'warning', 'type', 'format', 'ruleId', 'email-format',
                                            'field', 'email', 'message', '12 rows fail', 'affectedRecords', 12,
                                            'examples', jsonb_build_array('not-an-email'))),
       jsonb_build_object('totalRecords', records_extracted, 'nullCounts', jsonb_build_object('email', 0))
  FROM pipeline_runs
 WHERE pipeline_id = %(pipeline)s AND quality_score IS NOT NULL
"""
SEED_ALERTS = 200
# Alerts over the same weeks, one open per rule and subject, the rest resolved.
SEED_ALERTS_SQL = """
INSERT INTO etl_alerts (rule, severity, pipeline_id, dedup_key, status, message, details, opened_at,
                        updated_at, resolved_at)
SELECT (ARRAY['failure_rate', 'run_duration', 'quality_score', 'cdc_lag'])[g %% 4 + 1],
       (ARRAY['critical', 'warning', 'info'])[g %% 3 + 1], %(pipeline)s, 'bench-' || g,
       CASE WHEN g %% 10 = 0 THEN 'open' ELSE 'resolved' END, 'seeded alert ' || g,
       jsonb_build_object('value', g), now() - g * interval '5 hours', now() - g * interval '5 hours',
       CASE WHEN g %% 10 = 0 THEN NULL ELSE now() - g * interval '4 hours' END
  FROM generate_series(1, %(alerts)s) AS g
"""


class BenchmarkError(Exception):
    pass


# --- databases, files, processes ----------------------------------------------------------


def pipelines(source_url: str) -> list[dict[str, Any]]:
    """The service's one file pipeline, a 200-row upsert, over a source filled here."""
    with psycopg.connect(source_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.users (id bigint PRIMARY KEY, email text, "
                     "updated_at timestamptz DEFAULT now())")
        conn.execute("INSERT INTO public.users (id, email) SELECT g, 'u' || g || '@example.org' "
                     "FROM generate_series(1, %s) AS g", (SOURCE_ROWS,))
        # Created up front, so that concurrent runs never race on CREATE TABLE IF NOT EXISTS.
        conn.execute("CREATE SCHEMA dw")
        conn.execute("CREATE TABLE dw.users (id bigint PRIMARY KEY, email text, updated_at timestamptz)")
    return [{
        "id": PIPELINE_ID,
        "name": "Bench users (full load)",
        "source": {"url": source_url, "table": "public.users"},
        "extraction": {"strategy": "full"},
        "loading": {"strategy": "upsert", "targetTable": "dw.users", "targetUrl": source_url,
                    "upsertKey": ["id"], "createTable": True},
    }]


def check_api_process(service: Service) -> None:
    if not any(group == "api" for group, _ in cpu_snapshot(service)):
        raise BenchmarkError("could not find the API process among serve's children")


def seed(summit_url: str) -> tuple[str, str]:
    """The runs, a quality report for each run that has a score, and the alerts; returns the
    newest failed run (with its error entry) and the newest run with a report, which the
    one-run routes read."""
    with psycopg.connect(summit_url, autocommit=True) as conn:
        conn.execute(SEED_SQL, {"pipeline": PIPELINE_ID, "runs": SEED_RUNS})
        conn.execute(SEED_REPORTS_SQL, {"pipeline": PIPELINE_ID})
        conn.execute(SEED_ALERTS_SQL, {"pipeline": PIPELINE_ID, "alerts": SEED_ALERTS})
        for table in ("pipeline_runs", "data_quality_reports", "etl_alerts"):
            conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
        row = conn.execute("SELECT count(*) FROM pipeline_runs WHERE pipeline_id = %s",
                           (PIPELINE_ID,)).fetchone()
        failed = conn.execute("SELECT id FROM pipeline_runs WHERE pipeline_id = %s AND status = 'failed' "
                              "ORDER BY created_at DESC LIMIT 1", (PIPELINE_ID,)).fetchone()
        reported = conn.execute("SELECT pipeline_run_id FROM data_quality_reports WHERE pipeline_id = %s "
                                "ORDER BY \"timestamp\" DESC LIMIT 1", (PIPELINE_ID,)).fetchone()
    if not row or row[0] != SEED_RUNS or failed is None or reported is None:
        raise BenchmarkError(f"seeded {row[0] if row else 0} runs, expected {SEED_RUNS}")
    return str(failed[0]), str(reported[0])


# --- measuring ----------------------------------------------------------------------------


def cpu_snapshot(service: Service) -> dict[tuple[str, tuple[int, float]], float]:
    """CPU seconds (user + system) of every process of interest, by (group, (pid, start)).

    Taken afresh each time: Dagster starts code servers and run workers as it goes, and a
    launched run's worker exits before the phase ends (its time is then lost, not negative).
    """
    found: dict[tuple[str, tuple[int, float]], float] = {}

    def add(group: str, process: psutil.Process) -> None:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            found[(group, (process.pid, process.create_time()))] = times.user + times.system

    add("client", psutil.Process())
    with contextlib.suppress(psutil.Error):
        children = psutil.Process(service.serve.pid).children(recursive=True)
        # `python -m api_shim` and its uvicorn workers (multiprocessing spawns them with a
        # command line that does not name api_shim).
        api: set[int] = set()
        for child in children:
            with contextlib.suppress(psutil.Error):
                if "api_shim" in " ".join(child.cmdline()):
                    api.update([child.pid, *(c.pid for c in child.children(recursive=True))])
        for child in children:
            add("api" if child.pid in api else "dagster", child)
    # Every PostgreSQL backend: the API's pool, Dagster's storage, and other people's work.
    for process in psutil.process_iter(["name"]):
        if process.info["name"] == "postgres":
            add("postgres", process)
    return found


def busy_and_total() -> tuple[float, float]:
    """All cores' busy and total CPU seconds so far (guest time is already in user)."""
    times = psutil.cpu_times()._asdict()
    total = sum(v for k, v in times.items() if k not in ("guest", "guest_nice"))
    return total - times["idle"] - times.get("iowait", 0.0), total


def wait_for_quiet(timeout: float) -> float:
    """Wait (bounded) until the machine is mostly idle; returns the last busy share seen.

    Other engineers' test suites share the two cores; starting a phase in the middle of one
    would measure them. The service itself idles at a few per cent (the Dagster daemon).
    """
    deadline = time.monotonic() + timeout
    while True:
        before = busy_and_total()
        time.sleep(1.0)
        after = busy_and_total()
        share = (after[0] - before[0]) / max(after[1] - before[1], 1e-9)
        if share <= QUIET_BUSY_SHARE or time.monotonic() > deadline:
            return share


@contextlib.contextmanager
def cpu_meter(service: Service) -> Iterator[dict[str, float]]:
    """CPU seconds spent by each side while the block runs, and the machine's busy share."""
    before = cpu_snapshot(service)
    machine = busy_and_total()
    spent: dict[str, float] = {}
    yield spent
    after = busy_and_total()
    groups = ("client", "api", "dagster", "postgres")
    spent.update(dict.fromkeys(groups, 0.0))
    for (group, process), seconds in cpu_snapshot(service).items():
        spent[group] += seconds - before.get((group, process), 0.0)
    busy = after[0] - machine[0]
    spent["machine_busy"] = busy / max(after[1] - machine[1], 1e-9)
    spent["other"] = max(busy - sum(spent[group] for group in groups), 0.0)


@dataclass
class Result:
    route: str
    clients: int
    client_kind: str
    latencies: list[float]  # seconds
    seconds: float
    cpu: dict[str, float]
    quiet_before: float
    target_ms: float | None = None

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[max(math.ceil(p / 100 * len(ordered)) - 1, 0)] * 1000

    @property
    def requests(self) -> int:
        return len(self.latencies)

    def per_request_ms(self, name: str) -> float:
        return self.cpu.get(name, 0.0) * 1000 / self.requests


# A virtual client sends one request and answers (status, body); each worker owns one.
Send = Callable[[str, str], Awaitable[tuple[int, bytes]]]


class RawHttp:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams, for the cross-check only:
    a GET costs it ~0.15 ms of CPU against httpx's ~2 ms, so what it measures is the server."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def send(self, method: str, path: str) -> tuple[int, bytes]:
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        writer.write(f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                     "Accept: */*\r\nContent-Length: 0\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        length = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            raise BenchmarkError(f"{method} {path}: no Content-Length in the answer (raw client)")
        return int(head.split(b" ", 2)[1]), await reader.readexactly(length)

    async def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            with contextlib.suppress(OSError):
                await self.streams[1].wait_closed()


@contextlib.asynccontextmanager
async def virtual_clients(base_url: str, count: int, kind: str) -> AsyncIterator[list[Send]]:
    """`count` keep-alive clients of one kind:

    - `httpx`: one httpx.AsyncClient per virtual client, each limited to one connection
      (50 clients = 50 pools of 1 = 50 keep-alive connections);
    - `httpx-shared`: one httpx.AsyncClient for all, limits sized to `count` connections;
    - `raw`: RawHttp, one connection each.
    """
    if kind == "raw":
        raws = [RawHttp(base_url) for _ in range(count)]
        try:
            yield [raw.send for raw in raws]
        finally:
            for raw in raws:
                await raw.close()
        return
    pools = 1 if kind == "httpx-shared" else count
    size = count if kind == "httpx-shared" else 1
    limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(
            httpx.AsyncClient(base_url=base_url, limits=limits, timeout=HTTP_TIMEOUT_S))
            for _ in range(pools)]

        def sender(client: httpx.AsyncClient) -> Send:
            async def send(method: str, path: str) -> tuple[int, bytes]:
                response = await client.request(method, path, json={} if method == "POST" else None)
                return response.status_code, response.content

            return send

        yield [sender(clients[i % pools]) for i in range(count)]


async def fire(senders: list[Send], method: str, path: str, total: int, expect: int,
               on_body: Callable[[Any], None] | None = None) -> tuple[list[float], float]:
    """`total` requests from the senders working concurrently; latencies and wall seconds."""
    latencies: list[float] = []
    issued = 0

    async def worker(send: Send) -> None:
        nonlocal issued
        while issued < total:
            issued += 1
            started = time.perf_counter()
            try:
                status, body = await send(method, path)
            except (httpx.HTTPError, OSError, asyncio.IncompleteReadError) as exc:
                raise BenchmarkError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
            latencies.append(time.perf_counter() - started)
            if status != expect:
                raise BenchmarkError(f"{method} {path} answered {status} (expected {expect}): "
                                     f"{body[:500].decode(errors='replace')}")
            if on_body is not None:
                on_body(json.loads(body))

    started = time.perf_counter()
    try:
        async with asyncio.timeout(PHASE_TIMEOUT_S), asyncio.TaskGroup() as group:
            for send in senders:
                group.create_task(worker(send))
    except* BenchmarkError as failed:
        raise failed.exceptions[0] from None
    except* TimeoutError:
        raise BenchmarkError(f"{total} x {method} {path} took over {PHASE_TIMEOUT_S:.0f} s") from None
    return latencies, time.perf_counter() - started


def route_label(method: str, path: str) -> str:
    label = path.replace(PIPELINE_ID, "{id}")
    for prefix in ("/runs/", "/quality/reports/"):
        head, found, tail = label.partition(prefix)
        if found and not tail.startswith("latest"):
            label = head + prefix + "{runId}"
    return f"{method} {label}"


def read_routes(failed_run: str, reported_run: str) -> dict[str, tuple[str, Callable[[Any], bool]]]:
    """Every GET route of the API, by its path in api_shim/app.py's table: the request the
    benchmark sends, and a check of its answer (made once per route before measuring)."""
    runs = f"/pipelines/{PIPELINE_ID}/runs"
    return {
        "/health": ("/health", lambda b: b["status"] == "healthy"),
        "/metrics": ("/metrics", lambda b: b["totalRuns"] >= SEED_RUNS and b["activeCDCEngines"] == 0),
        "/openapi.json": ("/openapi.json", lambda b: runs.replace(PIPELINE_ID, "{pipeline_id}") in b["paths"]),
        "/pipelines": ("/pipelines", lambda b: PIPELINE_ID in [p["id"] for p in b]),
        "/pipelines/{pipeline_id}": (f"/pipelines/{PIPELINE_ID}", lambda b: b["id"] == PIPELINE_ID),
        "/pipelines/{pipeline_id}/runs": (f"{runs}?limit=10", lambda b: len(b) == 10),
        "/pipelines/{pipeline_id}/runs/{run_id}": (
            f"{runs}/{failed_run}", lambda b: b["status"] == "failed" and len(b["errors"]) == 1),
        "/quality/reports/latest": (
            f"/quality/reports/latest?pipelineId={PIPELINE_ID}", lambda b: b["pipelineRunId"] == reported_run),
        "/quality/reports/{run_id}": (
            f"/quality/reports/{reported_run}", lambda b: b["pipelineRunId"] == reported_run),
        # Open or resolved: the service's own alert rules may resolve the seeded open ones.
        "/alerts": ("/alerts?limit=1000", lambda b: sum(a["message"].startswith("seeded alert ")
                                                        for a in b) == SEED_ALERTS),
    }


def check_routes(service: Service, routes: dict[str, tuple[str, Callable[[Any], bool]]]) -> None:
    """Each route answers 200 with the seeded data, and no GET route of the API is left out."""
    from api_shim.app import TABLE  # the tree under test (PYTHONPATH), as `serve` runs it

    missing = {path for path, operations in TABLE.paths.items() if "GET" in operations} - set(routes)
    if missing:
        raise BenchmarkError(f"GET routes the benchmark does not measure: {sorted(missing)}")
    for path, check in routes.values():
        # /health and /metrics answer from the API's reading of the last second or two.
        deadline = time.monotonic() + 3
        while True:
            response = httpx.get(f"{service.api_url}{path}", timeout=HTTP_TIMEOUT_S)
            if response.status_code == 200 and check(response.json()):
                break
            if time.monotonic() > deadline:
                raise BenchmarkError(f"GET {path} answered {response.status_code} without the seeded "
                                     f"data: {response.text[:500]}")
            time.sleep(0.2)


async def measure(service: Service, method: str, path: str, clients: int, total: int, warmup: int,
                  kind: str, quiet_timeout: float, expect: int = 200, target_ms: float | None = None,
                  on_body: Callable[[Any], None] | None = None) -> Result:
    # Before the warm-up: idle keep-alive connections would be closed by uvicorn after 5 s.
    quiet = await asyncio.to_thread(wait_for_quiet, quiet_timeout)
    async with virtual_clients(service.api_url, clients, kind) as senders:
        if warmup:
            await fire(senders, method, path, warmup, expect, on_body)
        with cpu_meter(service) as cpu:
            latencies, seconds = await fire(senders, method, path, total, expect, on_body)
    result = Result(route_label(method, path), clients, kind, latencies, seconds, cpu, quiet,
                    target_ms)
    print(f"  {result.route:<44} {kind:<12} c={clients:<3} n={total:<5} "
          f"p50 {result.percentile(50):7.1f} ms  p99 {result.percentile(99):7.1f} ms  "
          f"{total / seconds:6.0f} req/s  (machine {quiet:.0%} busy before)", flush=True)
    return result


async def drain_runs(service: Service, run_ids: list[str]) -> str:
    """Wait for the launched runs to end; cancel those still going after DRAIN_TIMEOUT_S."""
    started = time.monotonic()
    statuses: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=service.api_url, timeout=HTTP_TIMEOUT_S) as client:
        while time.monotonic() - started < DRAIN_TIMEOUT_S:
            for run_id in run_ids:
                if statuses.get(run_id) not in TERMINAL:
                    response = await client.get(f"/pipelines/{PIPELINE_ID}/runs/{run_id}")
                    response.raise_for_status()
                    statuses[run_id] = response.json()["status"]
            if all(s in TERMINAL for s in statuses.values()):
                break
            await asyncio.sleep(1.0)
        for run_id in run_ids:
            if statuses.get(run_id) not in TERMINAL:
                response = await client.post(f"/pipelines/{PIPELINE_ID}/runs/{run_id}/cancel")
                statuses[run_id] = f"cancel requested ({response.status_code})"
    counts: dict[str, int] = {}
    for status in statuses.values():
        counts[status] = counts.get(status, 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    return f"the {len(run_ids)} runs ended within {time.monotonic() - started:.0f} s: {summary}"


@contextlib.asynccontextmanager
async def committing(service: Service, per_second: float) -> AsyncIterator[None]:
    """A writer that commits `per_second` times a second to the summit database while the
    reads run, as recording runs do: each commit empties the API's answer store."""
    if per_second <= 0:
        yield
        return

    async def write() -> None:
        async with await psycopg.AsyncConnection.connect(service.summit_url, autocommit=True) as conn:
            while True:
                await conn.execute("UPDATE pipelines SET updated_at = updated_at WHERE pipeline_id = %s",
                                   (PIPELINE_ID,))
                await asyncio.sleep(1 / per_second)

    writer = asyncio.create_task(write())
    try:
        yield
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer


async def benchmark(service: Service, paths: list[str], reads: dict[int, int], executes: int,
                    kind: str, cross_check: bool, quiet_timeout: float, writes_per_second: float,
                    ) -> tuple[list[Result], list[Result], str]:
    async with committing(service, writes_per_second):
        return await _phases(service, paths, reads, executes, kind, cross_check, quiet_timeout)


async def _phases(service: Service, paths: list[str], reads: dict[int, int], executes: int,
                  kind: str, cross_check: bool, quiet_timeout: float,
                  ) -> tuple[list[Result], list[Result], str]:
    results = []
    for clients in CONCURRENCY:
        print(f"reads at {clients} concurrent client(s):", flush=True)
        for path in paths:
            target = READ_TARGET_MS if clients == max(CONCURRENCY) else None
            results.append(await measure(service, "GET", path, clients, reads[clients],
                                         max(4 * clients, 30), kind, quiet_timeout, target_ms=target))
    checks = []
    if cross_check:
        clients = max(CONCURRENCY)
        print(f"cross-check, minimal raw HTTP client at {clients} clients:", flush=True)
        for path in paths:
            checks.append(await measure(service, "GET", path, clients, reads[clients],
                                        4 * clients, "raw", quiet_timeout, target_ms=READ_TARGET_MS))
    run_ids: list[str] = []
    drained = "no launches (--executes 0)"
    if executes:
        print("launches, sequential:", flush=True)
        results.append(await measure(
            service, "POST", f"/pipelines/{PIPELINE_ID}/execute", 1, executes, 1, kind, quiet_timeout,
            expect=202, target_ms=EXECUTE_TARGET_MS, on_body=lambda body: run_ids.append(body["id"])))
        # A launch while the pipeline's run still queues gets that run back (api_shim/launch.py).
        distinct = list(dict.fromkeys(run_ids))
        drained = f"{len(run_ids)} launches made {len(distinct)} runs; " + await drain_runs(service, distinct)
    return results, checks, drained


# --- report -------------------------------------------------------------------------------


def target_cell(result: Result) -> str:
    if result.target_ms is None:
        return "-"
    p99 = result.percentile(99)
    return f"p99 ≤ {result.target_ms:.0f} ms: {'met' if p99 <= result.target_ms else 'MISSED'}"


def latency_table(results: list[Result]) -> None:
    """One row per route and concurrency; `÷ floor` is the route's p99 over the p99 of
    `/health` (a snapshot in memory: the framework's own cost) in the same run and setting."""
    floors = {(r.clients, r.client_kind): r.percentile(99) for r in results if r.route == "GET /health"}

    def over_floor(result: Result) -> str:
        floor = floors.get((result.clients, result.client_kind))
        return f"{result.percentile(99) / floor:.2f}" if floor and result.route.startswith("GET") else "-"

    def over_target(result: Result) -> str:
        return "-" if result.target_ms is None else f"{result.percentile(99) / result.target_ms:.2f}"

    print_rows([("route", "clients", "requests", "p50 ms", "p95 ms", "p99 ms", "max ms", "req/s",
                 "p99 ÷ floor", "p99 ÷ target", "target")] + [
        (r.route, str(r.clients), f"{r.requests:,}", f"{r.percentile(50):.1f}", f"{r.percentile(95):.1f}",
         f"{r.percentile(99):.1f}", f"{max(r.latencies) * 1000:.1f}", f"{r.requests / r.seconds:,.0f}",
         over_floor(r), over_target(r), target_cell(r))
        for r in results
    ])


def report(results: list[Result], checks: list[Result], drained: str) -> None:
    print()
    print(f"client: {results[0].client_kind} (see --client); every read answered 200, "
          "every launch 202")
    print()
    latency_table(results)
    if checks:
        print()
        print("Cross-check with a minimal raw HTTP/1.1 client (about 0.15 ms CPU per request "
              "instead of httpx's ~2 ms), same routes:")
        print()
        latency_table(checks)
    print()
    print("CPU per request, ms (user + system, all threads). API: the uvicorn process; dagster:")
    print("webserver, daemon, code servers and run workers; postgres: every backend on the server;")
    print("other: the rest of the machine's busy time (kernel, other people's work).")
    print()
    print_rows([("route", "client", "clients", "API", "client", "postgres", "dagster", "other",
                 "machine busy")] + [
        (r.route, r.client_kind, str(r.clients), f"{r.per_request_ms('api'):.2f}",
         f"{r.per_request_ms('client'):.2f}", f"{r.per_request_ms('postgres'):.2f}",
         f"{r.per_request_ms('dagster'):.2f}", f"{r.per_request_ms('other'):.2f}",
         f"{r.cpu.get('machine_busy', 0.0):.0%}")
        for r in results + checks
    ])
    print()
    print(drained)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reads", default=DEFAULT_READS,
                        help=f"requests per read route at 1,50 clients (default {DEFAULT_READS})")
    parser.add_argument("--executes", type=int, default=DEFAULT_EXECUTES,
                        help=f"sequential POST /execute requests (default {DEFAULT_EXECUTES})")
    parser.add_argument("--client", choices=CLIENT_KINDS, default="httpx",
                        help="httpx: one AsyncClient (one keep-alive connection) per virtual "
                        "client (default); httpx-shared: one AsyncClient with a pool of N "
                        "connections for all N clients; raw: minimal asyncio HTTP client")
    parser.add_argument("--routes", default="",
                        help="only the GET routes whose table path contains one of these "
                        "comma-separated words (default: every GET route)")
    parser.add_argument("--quiet-timeout", type=float, default=QUIET_TIMEOUT_S,
                        help=f"seconds to wait for a quiet machine before each phase "
                        f"(default {QUIET_TIMEOUT_S:.0f})")
    parser.add_argument("--no-cross-check", action="store_true",
                        help="skip the raw-client cross-check of the reads at 50 clients")
    parser.add_argument("--writes-per-second", type=float, default=0.0,
                        help="commits to the summit database per second during the reads, each "
                        "emptying the API's answer store (default 0: a quiet service)")
    parser.add_argument("--keep-logs", action="store_true",
                        help="print the service's output directory and keep it")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    counts = [int(n) for n in args.reads.split(",")]
    if len(counts) != len(CONCURRENCY) or min(counts) < 1 or args.executes < 0:
        print("--reads takes two positive counts (1 and 50 clients); --executes ≥ 0", file=sys.stderr)
        return 2
    reads = dict(zip(CONCURRENCY, counts, strict=True))

    exit_code = 0
    try:
        with serving(pipelines, keep_logs=args.keep_logs) as service:
            check_api_process(service)
            routes = read_routes(*seed(service.summit_url))
            check_routes(service, routes)
            words = [w for w in args.routes.split(",") if w]
            paths = [path for route, (path, _) in routes.items()
                     if not words or any(w in route for w in words)]
            # The load generator's own full collections (httpx, psycopg and 50 clients) would
            # stall every client at once and show as the server's tail; the API does the same.
            gc.collect()
            gc.freeze()
            results, checks, drained = asyncio.run(benchmark(
                service, paths, reads, args.executes, args.client, not args.no_cross_check,
                args.quiet_timeout, args.writes_per_second))
            report(results, checks, drained)
    except (BenchmarkError, ServiceError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        exit_code = 1
    except KeyboardInterrupt:
        print("interrupted; the service was stopped and the scratch databases dropped",
              file=sys.stderr)
        exit_code = 130
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
