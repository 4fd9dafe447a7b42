"""The benchmarks' one way to run Summit through the real service: `summit-etl serve`
(Dagster webserver + daemon + code server + API) on free loopback ports against throwaway
summit, Dagster and demo databases, stopped and dropped again when the block ends.

    with serving() as svc:                       # svc.api is an httpx client of the API
        with svc.pipeline(document):             # POST /pipelines ... DELETE at the end
            run = svc.execute(document["id"])    # POST .../execute, timed to the run's end

Issue 12 asks for figures measured through the service, not only in process: a run
launched here pays the daemon's dequeue and a fresh run-worker process on top of the
engine's own time, and `ServiceRun` reports both.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psutil
import psycopg
import yaml
from psycopg import sql
from psycopg.rows import dict_row

from summit_etl.orchestration.keys import job_name

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ADMIN_URL = os.environ.get("SUMMIT_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
START_TIMEOUT_S = 240.0
JOB_TIMEOUT_S = 60.0
RUN_TIMEOUT_S = 1800.0
RUN_POLL_S = 0.05
TERMINAL = ("success", "partial_success", "failed", "cancelled")
# A file pipeline's documents, given the demo database's URL (which the callback may fill).
Files = Callable[[str], list[dict[str, Any]]]


class ServiceError(Exception):
    """The service did not come up, died, or a run through it went wrong."""


def url_for(database: str, scheme: str = "postgresql") -> str:
    parts = urlsplit(ADMIN_URL)
    return urlunsplit(parts._replace(scheme=scheme, path="/" + database))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _admin(statement: sql.Composed) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(statement)


@dataclass
class ServiceRun:
    """One run launched through the API, as its record in the summit database ended."""

    id: str
    status: str
    seconds: float  # POST .../execute (or /backfill) until the record was seen terminal
    records_extracted: int
    records_loaded: int
    metrics: dict[str, float]
    errors: list[Any]
    # Where the launch went: Dagster's run events, in ms after the POST (`launch_phases`).
    phases: dict[str, float] = field(default_factory=dict)

    def check(self) -> None:
        if self.status != "success":
            raise ServiceError(f"run {self.id} ended {self.status}: {json.dumps(self.errors)[:2000]}")

    @property
    def engine_seconds(self) -> float:
        """The engine's own time (pipeline_runs.metrics totalDurationMs): no run start."""
        return float(self.metrics.get("totalDurationMs", 0.0)) / 1000


@dataclass
class Service:
    api: httpx.Client
    api_url: str
    graphql_url: str
    summit_url: str
    demo_url: str
    serve: subprocess.Popen
    home: Path

    @property
    def pipelines_dir(self) -> Path:
        return self.home / "pipelines"

    @contextlib.contextmanager
    def pipeline(self, document: dict[str, Any]) -> Iterator[str]:
        """The pipeline created through `POST /pipelines` (which answers once the code
        location has it), deleted through the API when the block ends; yields its id."""
        created = self.api.post("/pipelines", json=document)
        if created.status_code != 201:
            raise ServiceError(f"creating {document['id']} answered {created.status_code}: "
                               f"{created.text}")
        try:
            yield document["id"]
        finally:
            self.api.delete(f"/pipelines/{document['id']}")

    def execute(self, pipeline_id: str) -> ServiceRun:
        """`POST /pipelines/{id}/execute`, then the run's record polled every 50 ms in the
        summit database until it is terminal: the wall time a client of the API waits."""
        started, posted_at = time.perf_counter(), time.time()
        launched = self.api.post(f"/pipelines/{pipeline_id}/execute", json={})
        if launched.status_code not in (200, 202):
            raise ServiceError(f"execute answered {launched.status_code}: {launched.text}")
        run_id = launched.json()["id"]
        run = self.wait_for_runs(pipeline_id, started, lambda run: run == run_id, 1)[0]
        run.phases = launch_phases(self.graphql_url, run_id, posted_at)
        return run

    def backfill_slices(self, pipeline_id: str, parts: int) -> list[ServiceRun]:
        """`POST /pipelines/{id}/backfill {"partitioned": true}`, then every slice run's
        record polled until all `parts` of them are terminal (each timed from the POST)."""
        before = self._run_ids(pipeline_id)
        started = time.perf_counter()
        launched = self.api.post(f"/pipelines/{pipeline_id}/backfill", json={"partitioned": True})
        if launched.status_code != 202:
            raise ServiceError(f"backfill answered {launched.status_code}: {launched.text}")
        # The backfill's runs are the pipeline's new ones: the API returns no run ids for it.
        return self.wait_for_runs(pipeline_id, started, lambda run: run not in before, parts)

    def wait_for_runs(self, pipeline_id: str, started: float, wanted: Callable[[str], bool],
                      count: int) -> list[ServiceRun]:
        """The `count` runs of the pipeline that are `wanted`, once each record is terminal."""
        ended: dict[str, ServiceRun] = {}
        deadline = time.monotonic() + RUN_TIMEOUT_S
        # One connection for the whole wait: a new one every 50 ms would load the cores.
        with psycopg.connect(self.summit_url, autocommit=True) as conn:
            while len(ended) < count:
                if self.serve.poll() is not None:
                    raise ServiceError(f"summit-etl serve exited with {self.serve.returncode}")
                if time.monotonic() > deadline:
                    raise ServiceError(f"{count - len(ended)} run(s) of {pipeline_id} not ended "
                                       f"within {RUN_TIMEOUT_S:.0f} s")
                runs = _runs(conn, pipeline_id)
                seen = time.perf_counter() - started
                for run_id, row in runs.items():
                    if wanted(run_id) and run_id not in ended and row["status"] in TERMINAL:
                        ended[run_id] = ServiceRun(
                            run_id, row["status"], seen, row["records_extracted"],
                            row["records_loaded"], row["metrics"], row["errors"])
                time.sleep(RUN_POLL_S)
        return list(ended.values())

    def _run_ids(self, pipeline_id: str) -> set[str]:
        with psycopg.connect(self.summit_url, autocommit=True) as conn:
            return set(_runs(conn, pipeline_id))


def _runs(conn: psycopg.Connection, pipeline_id: str) -> dict[str, dict[str, Any]]:
    """The pipeline's run records, by id."""
    with conn.cursor(row_factory=dict_row) as cursor:
        rows = cursor.execute(
            "SELECT id, status, records_extracted, records_loaded, metrics, errors "
            "FROM pipeline_runs WHERE pipeline_id = %s", (pipeline_id,),
        ).fetchall()
    return {row["id"]: row for row in rows}


@dataclass
class _Scratch:
    """What a start created, so that `cleanup` can take it all down again."""

    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    databases: list[str] = field(default_factory=list)
    serve: subprocess.Popen | None = None
    # psutil.Process objects, not bare pids: psutil refuses to signal a pid that was reused.
    descendants: dict[int, psutil.Process] = field(default_factory=dict)

    def database(self, role: str) -> str:
        name = f"summit_bench_svc_{self.tag}_{role}"
        _admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.databases.append(name)
        return name

    def remember_descendants(self) -> None:
        if self.serve is None:
            return
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.serve.pid).children(recursive=True):
                self.descendants.setdefault(child.pid, child)

    def cleanup(self) -> None:
        if self.serve is not None:
            self.remember_descendants()
            if self.serve.poll() is None:
                self.serve.send_signal(signal.SIGTERM)  # serve stops its three children
                try:
                    self.serve.wait(timeout=45)
                except subprocess.TimeoutExpired:
                    self.serve.kill()
                    self.serve.wait()
            # Anything it started that is still alive (run workers, code servers): by pid.
            leftovers = [p for p in self.descendants.values() if p.is_running()]
            for process in leftovers:
                with contextlib.suppress(psutil.Error):
                    process.terminate()
            _, alive = psutil.wait_procs(leftovers, timeout=10)
            for process in alive:
                with contextlib.suppress(psutil.Error):
                    process.kill()
        for name in self.databases:
            try:
                _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            except psycopg.Error as exc:
                print(f"could not drop database {name}: {exc}", file=sys.stderr)


def _wait_until(check: Callable[[], bool], timeout: float, what: str,
                serve: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if serve.poll() is not None:
            raise ServiceError(f"summit-etl serve exited with {serve.returncode} while waiting for {what}")
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError, TypeError):
            if check():
                return
        time.sleep(0.5)
    raise ServiceError(f"{what} not ready within {timeout:.0f} s")


# Dagster's run events that mark a run's way from the queue to its end, by GraphQL type.
_PHASES = {
    "RunEnqueuedEvent": "enqueued", "RunDequeuedEvent": "dequeued", "RunStartingEvent": "starting",
    "RunStartEvent": "worker running", "ExecutionStepStartEvent": "step started",
    "ExecutionStepSuccessEvent": "step ended", "ExecutionStepFailureEvent": "step ended",
    "RunSuccessEvent": "run ended", "RunFailureEvent": "run ended",
}


def launch_phases(graphql_url: str, run_id: str, posted_at: float) -> dict[str, float]:
    """When each of the run's phases began, in ms after the POST (first event of a kind):
    what a run pays besides the engine's own time."""
    query = {"query": "query($id: ID!) { runOrError(runId: $id) { ... on Run { eventConnection "
                      "(afterCursor: null) { events { __typename ... on MessageEvent { timestamp } "
                      "} } } } }", "variables": {"id": run_id}}
    run = httpx.post(graphql_url, json=query, timeout=10).json()["data"]["runOrError"]
    phases: dict[str, float] = {}
    for event in run.get("eventConnection", {}).get("events", []):
        name = _PHASES.get(event["__typename"])
        if name is not None and f"{name} ms" not in phases:
            phases[f"{name} ms"] = float(event["timestamp"]) - posted_at * 1000
    return phases


def _job_loaded(graphql_url: str, job: str) -> bool:
    query = {"query": "query($s: PipelineSelector!) { pipelineOrError(params: $s) { __typename } }",
             "variables": {"s": {"repositoryName": "__repository__",
                                 "repositoryLocationName": "summit_etl", "pipelineName": job}}}
    data = httpx.post(graphql_url, json=query, timeout=10).json()["data"]
    return bool(data["pipelineOrError"]["__typename"] == "Pipeline")


def _start(scratch: _Scratch, home: Path, files: Files | None) -> tuple[subprocess.Popen, dict[str, str]]:
    names = {role: scratch.database(role) for role in ("summit", "dagster", "demo")}
    urls = {"summit": url_for(names["summit"]), "demo": url_for(names["demo"])}
    documents = files(urls["demo"]) if files is not None else []
    (home / "pipelines").mkdir()
    for document in documents:
        (home / "pipelines" / f"{document['id']}.yaml").write_text(
            yaml.safe_dump(document, sort_keys=False))
    api_port, dagster_port = free_port(), free_port()
    urls["api"] = f"http://127.0.0.1:{api_port}"
    urls["graphql"] = f"http://127.0.0.1:{dagster_port}/graphql"
    env = {
        **os.environ,
        "DATABASE_URL": urls["summit"],
        "DAGSTER_PG_URL": url_for(names["dagster"], "postgresql+psycopg2"),
        "DEMO_SOURCE_URL": urls["demo"],
        "SUMMIT_DAGSTER_STATE": str(home / "state"),
        "SUMMIT_PIPELINES_DIR": str(home / "pipelines"),
        "SUMMIT_LOG_FILE": str(home / "logs" / "etl-service.log"),
        "ETL_SERVICE_HOST": "127.0.0.1",
        "ETL_SERVICE_PORT": str(api_port),
        "DAGSTER_GRAPHQL_URL": urls["graphql"],
        "DAGSTER_HOST": "127.0.0.1",
    }
    for inherited in ("ETL_API_TOKENS", "DAGSTER_HOME", "ETL_ALLOW_INSECURE_BIND"):
        env.pop(inherited, None)
    with (home / "serve.out").open("wb") as out:
        scratch.serve = subprocess.Popen(
            [str(BIN / "summit-etl"), "serve", "--host", "127.0.0.1", "--dagster-port", str(dagster_port)],
            env=env, cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the benchmark only; cleanup stops serve
        )
    serve = scratch.serve
    started = time.monotonic()
    _wait_until(lambda: httpx.get(f"{urls['api']}/health", timeout=10).status_code == 200,
                START_TIMEOUT_S, "the service (/health 200)", serve)
    for job in (job_name(document["id"]) for document in documents):
        _wait_until(functools.partial(_job_loaded, urls["graphql"], job), JOB_TIMEOUT_S,
                    f"Dagster job {job}", serve)
    print(f"service up in {time.monotonic() - started:.0f} s (API {urls['api']}, "
          f"Dagster {urls['graphql']})", flush=True)
    scratch.remember_descendants()
    return serve, urls


def _interrupted(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _print_tail(home: Path) -> None:
    lines = (home / "serve.out").read_text(errors="replace").splitlines()
    tail = [line for line in lines if '"message": "request"' not in line][-30:]
    print("last lines of summit-etl serve:\n  " + "\n  ".join(tail), file=sys.stderr)


@contextlib.contextmanager
def serving(files: Files | None = None, keep_logs: bool = False) -> Iterator[Service]:
    """`summit-etl serve` on free ports against throwaway databases, with `files(demo_url)`
    as its file pipelines (each job loaded in Dagster before this yields). A failure inside
    prints the tail of serve's output; SIGTERM is turned into KeyboardInterrupt meanwhile,
    so that a stopped benchmark still stops serve and drops its databases."""
    previous = signal.signal(signal.SIGTERM, _interrupted)
    scratch = _Scratch()
    home = Path(tempfile.mkdtemp(prefix="summit_bench_svc_"))
    try:
        serve, urls = _start(scratch, home, files)
        with httpx.Client(base_url=urls["api"], timeout=120) as api:
            yield Service(api, urls["api"], urls["graphql"], urls["summit"], urls["demo"], serve,
                          home)
    except Exception:
        if scratch.serve is not None:
            _print_tail(home)
        raise
    finally:
        # Cleanup must not be cut short by a second Ctrl-C or SIGTERM.
        interrupt = signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        scratch.cleanup()
        if keep_logs:
            print(f"service output kept in {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
        signal.signal(signal.SIGINT, interrupt)
        signal.signal(signal.SIGTERM, previous)

