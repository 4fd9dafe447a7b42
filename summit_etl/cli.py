"""`summit-etl`: start the whole service, migrate the summit database, fill the demo source."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from dagster import DagsterInstance
from dagster._grpc.client import DagsterGrpcClient  # the documented ping has no public client

from summit_etl.config import PipelineConfig
from summit_etl.demo import add_demo_activity, prepare_demo_source
from summit_etl.logs import configure_logging
from summit_etl.operator_cli import add_operator_commands
from summit_etl.orchestration import run_workers
from summit_etl.orchestration.keys import CODE_LOCATION
from summit_etl.orchestration.orphans import end_orphaned_runs
from summit_etl.quality.replay import ReplayConflict, replay_quarantine
from summit_etl.registry import load_registry, sync_files_to_table
from summit_etl.settings import PROJECT_ROOT, Settings
from summit_etl.store import db
from summit_etl.verify import VerifyUnsupported, verify_pipeline

log = logging.getLogger("summit_etl.cli")
# How long `serve` waits for its children after SIGTERM before killing them; the systemd
# unit's TimeoutStopSec must exceed it.
STOP_GRACE_SECONDS = 20

CODE_SERVER_START_SECONDS = 180
CODE_SERVER_GRACE_SECONDS = 5


def with_database(url: str, name: str) -> str:
    """The same server URL, pointing at database `name`."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def dagster_storage_url(url: str) -> str:
    """Dagster's storage URL on its own database, on psycopg2: dagster-postgres binds
    NOTIFY parameters client-side, which SQLAlchemy 2.1's default driver (psycopg 3)
    does not do."""
    parts = urlsplit(with_database(url, "summit_dagster"))
    return urlunsplit(parts._replace(scheme="postgresql+psycopg2"))


def dagster_home(state_dir: Path) -> str:
    """Dagster's home: the state folder, reading the project's dagster.yaml through a link.

    Not the project root: Dagster treats `$DAGSTER_HOME/logs` as its own, and the
    service's `logs/etl-service.log` must stay the operators'.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    link = state_dir / "dagster.yaml"
    if not link.exists():
        link.symlink_to(PROJECT_ROOT / "dagster.yaml")
    return str(state_dir)


def reachable(url: str) -> bool:
    try:
        psycopg.connect(with_database(url, "postgres"), connect_timeout=3).close()
        return True
    except psycopg.Error:
        return False


def start_embedded_postgres(data_dir: Path) -> str:
    """Start PostgreSQL from the `pgserver` package; returns the summit database URL."""
    try:
        import pgserver
    except ImportError:
        sys.exit(
            "No PostgreSQL answers at DATABASE_URL and the embedded one is not installed: "
            "pip install 'summit-etl[embedded]' or start PostgreSQL."
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir, cleanup_mode="stop")
    return server.get_uri("summit")


def prepare_environment(settings: Settings) -> dict[str, str]:
    """Databases, migrations, demo data and the pipelines table, ready for Dagster."""
    env = dict(os.environ)
    summit_url = settings.database_url
    if reachable(summit_url):
        print(f"PostgreSQL: using the server at DATABASE_URL ({db.redact(summit_url)})")
    else:
        summit_url = start_embedded_postgres(PROJECT_ROOT / ".dagster" / "pgdata")
        print(f"PostgreSQL: none at DATABASE_URL; started the embedded one ({summit_url})")
    env["DATABASE_URL"] = summit_url
    env.setdefault("DAGSTER_PG_URL", dagster_storage_url(summit_url))
    env.setdefault("DEMO_SOURCE_URL", with_database(summit_url, "summit_demo"))
    env.setdefault("SUMMIT_DAGSTER_STATE", str(PROJECT_ROOT / ".dagster"))
    env.setdefault("DAGSTER_HOME", dagster_home(Path(env["SUMMIT_DAGSTER_STATE"])))
    # Dagster's webserver and daemon ship every file in $DAGSTER_HOME/logs to its telemetry
    # service, whatever dagster.yaml says; this is the documented off switch.
    env["DAGSTER_DISABLE_TELEMETRY"] = "1"
    db.prepare(summit_url)
    db.ensure_database(with_database(summit_url, "summit_dagster"))
    # The registry reads DATABASE_URL, dagster.yaml DAGSTER_PG_URL and SUMMIT_DAGSTER_STATE.
    os.environ.update(env)
    with DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        for run_id in end_orphaned_runs(instance):
            print(f"Run {run_id} was in flight when the service stopped: marked failed")
    if prepare_demo_source(env["DEMO_SOURCE_URL"]):
        print("Demo source filled: shop.customers, shop.orders")
    registry = load_registry(settings.pipelines_dir, summit_url)
    sync_files_to_table(registry, summit_url)
    for error in registry.errors:
        print(f"Rejected pipeline configuration: {error}", file=sys.stderr)
    print(f"Pipelines: {', '.join(sorted(registry.pipelines)) or 'none'}")
    return env


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def code_server_command(host: str, port: int) -> list[str]:
    """The code location as a long-lived `dagster code-server`: a reload (every pipeline
    create, replace, delete) swaps its one definitions process in place, instead of the
    webserver and daemon each starting another code server per reload."""
    return [
        "dagster",
        "code-server",
        "start",
        "-m",
        "summit_etl.definitions",
        "-a",
        "defs",
        "--location-name",
        CODE_LOCATION,
        "-h",
        host,
        "-p",
        str(port),
    ]


def wait_for_code_server(process: subprocess.Popen, host: str, port: int) -> None:
    """Until the code server answers: the webserver and daemon would otherwise cache a
    load error for the location."""
    client = DagsterGrpcClient(port=port, host=host)
    deadline = time.monotonic() + CODE_SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"the Dagster code server exited with {process.returncode}")
        try:
            client.ping("")
            return
        except Exception:  # not listening yet
            time.sleep(0.3)
    sys.exit(f"the Dagster code server did not answer within {CODE_SERVER_START_SECONDS} s")


def serve(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    configure_logging(settings)
    env = prepare_environment(settings)
    code_host = "127.0.0.1"
    env.setdefault("SUMMIT_CODE_SERVER_PORT", str(free_port(code_host)))
    env["SUMMIT_CODE_SERVER_HOST"] = code_host
    env.setdefault(run_workers.ENV, "1")  # 0 spawns each run worker fresh, as Dagster does
    workspace = str(PROJECT_ROOT / "workspace.yaml")
    bin_dir = Path(sys.executable).parent

    def start(command: list[str]) -> subprocess.Popen:
        # Each in a process group of its own, so that stopping it reaches what it started
        # (the code server's definitions process and run workers).
        return subprocess.Popen(
            [str(bin_dir / command[0]), *command[1:]],
            env=env,
            cwd=PROJECT_ROOT,
            start_new_session=True,
        )

    code_port = int(env["SUMMIT_CODE_SERVER_PORT"])
    code_server = start(code_server_command(code_host, code_port))
    try:
        wait_for_code_server(code_server, code_host, code_port)
    except SystemExit:
        stop_children([code_server], time.monotonic() + CODE_SERVER_GRACE_SECONDS)
        raise
    env.setdefault("DAGSTER_GRAPHQL_URL", f"http://{args.host}:{args.dagster_port}/graphql")
    children = {
        "dagster-webserver": start(
            [
                "dagster-webserver",
                "-h",
                args.host,
                "-p",
                str(args.dagster_port),
                "-w",
                workspace,
            ]
        ),
        # Dagster's daemon, its sensors evaluated every second (orchestration/daemon.py).
        "dagster-daemon": start(
            ["python", "-m", "summit_etl.orchestration.daemon", "run", "-w", workspace]
        ),
        "api": start(["python", "-m", "api_shim"]),
        "dagster-code-server": code_server,
    }
    print(f"Dagster UI: http://{args.host}:{args.dagster_port}")
    api_host, api_port = (
        env.get("ETL_SERVICE_HOST", "127.0.0.1"),
        env.get("ETL_SERVICE_PORT", "4020"),
    )
    print(f"API: http://{api_host}:{api_port}")
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    exit_code = 0
    while not stopping:
        for name, child in children.items():
            if child.poll() is not None:
                print(
                    f"{name} exited with {child.returncode}; stopping the service", file=sys.stderr
                )
                exit_code = child.returncode or 1
                stopping = True
        time.sleep(0.5)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    users = [c for c in children.values() if c is not code_server]
    stop_children(users, deadline)
    # An idle code server still takes a minute to stop (its definitions process waits out
    # a grace period of its own): a few seconds for its runs to end, then its group goes.
    stop_children([code_server], min(deadline, time.monotonic() + CODE_SERVER_GRACE_SECONDS))
    return exit_code


def stop_children(children: list[subprocess.Popen], deadline: float) -> None:
    """SIGTERM each one's process group, wait until the deadline, then kill what is left
    of each group (itself, or processes it started and did not stop)."""
    for child in children:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGTERM)
    for child in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=max(deadline - time.monotonic(), 0.1))
        with contextlib.suppress(ProcessLookupError):  # an empty group: all stopped by itself
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()


def migrate(_args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    db.prepare(settings.database_url)
    print(f"summit database migrated: {db.redact(settings.database_url)}")
    return 0


def demo_activity(args: argparse.Namespace) -> int:
    url = os.environ.get("DEMO_SOURCE_URL") or with_database(
        Settings.from_env().database_url, "summit_demo"
    )
    add_demo_activity(url, new_orders=args.orders)
    print(f"added {args.orders} orders and shipped some paid ones in {db.redact(url)}")
    return 0


def _registered(pipeline_id: str) -> PipelineConfig | None:
    """The pipeline as the service loads it (YAML and API), or None after saying so."""
    settings = Settings.from_env()
    config = load_registry(settings.pipelines_dir, settings.database_url).pipelines.get(
        pipeline_id
    )
    if config is None:
        print(f"pipeline {pipeline_id!r} not found", file=sys.stderr)
    return config


def replay(args: argparse.Namespace) -> int:
    if (config := _registered(args.pipeline_id)) is None:
        return 2
    try:
        result = replay_quarantine(config, args.run_id, Settings.from_env().database_url)
    except ReplayConflict as conflict:
        print(str(conflict), file=sys.stderr)
        return 1
    print(
        f"replayed {result.replayed} quarantined rows of run {args.run_id} "
        f"({result.still_quarantined} still fail the rules and stay in quarantine)"
    )
    return 0


def verify(args: argparse.Namespace) -> int:
    """Exit 0 when source and target match, 1 when they differ, 2 when they cannot be compared."""
    if (config := _registered(args.pipeline_id)) is None:
        return 2
    try:
        answer = verify_pipeline(config, Settings.from_env().database_url)
    except VerifyUnsupported as exc:
        print(str(exc), file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(answer, default=str))
    else:
        print(
            f"{args.pipeline_id}: {answer['status']} — source {answer['sourceRows']} rows, "
            f"target {answer['targetRows']}; missing {answer['missing']}, extra "
            f"{answer['extra']}, different {answer['different']} ({answer['durationMs']:.0f} ms)"
        )
        for example in answer["examples"]:
            print(f"  {example['kind']}: {example['key']}")
    return 0 if answer["status"] == "match" else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="summit-etl", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser(
        "serve", help="start Dagster webserver + daemon with the demo"
    )
    serve_parser.add_argument("--host", default=os.environ.get("DAGSTER_HOST", "127.0.0.1"))
    serve_parser.add_argument(
        "--dagster-port", type=int, default=int(os.environ.get("DAGSTER_PORT", "3000"))
    )
    serve_parser.set_defaults(handler=serve)
    commands.add_parser("migrate", help="create and migrate the summit database").set_defaults(
        handler=migrate
    )
    activity = commands.add_parser(
        "demo-activity", help="new and changed orders in the demo source, for incremental runs"
    )
    activity.add_argument("--orders", type=int, default=50)
    activity.set_defaults(handler=demo_activity)
    replayer = commands.add_parser(
        "replay-quarantine", help="load a run's quarantined rows that pass the current rules"
    )
    replayer.add_argument("pipeline_id")
    replayer.add_argument("run_id")
    replayer.set_defaults(handler=replay)
    verifier = commands.add_parser(
        "verify", help="compare a pipeline's source and target by key (exit 1 when they differ)"
    )
    verifier.add_argument("pipeline_id")
    verifier.add_argument("--json", action="store_true", help="print the answer as JSON")
    verifier.set_defaults(handler=verify)
    add_operator_commands(commands)
    args = parser.parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
