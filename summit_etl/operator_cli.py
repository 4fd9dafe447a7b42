"""The operators' commands of `summit-etl` (docs/operations.md): pipelines, watermarks, runs,
alerts and maintenance, each with `--json`.

Reads and the runbook's own table changes (pause, resume, watermark reset) go to the summit
database directly, as the runbook's psql does; what needs Dagster (launch, cancel) goes
through the API on port 4020 (`ETL_API_URL`, token in `ETL_API_TOKEN`), so the CLI and curl
take the same path.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from summit_etl.maintenance import TASKS, run_task
from summit_etl.registry import ConfigError, load_registry, parse_pipeline, read_yaml
from summit_etl.settings import Settings
from summit_etl.store import alerts as alert_store
from summit_etl.store.db import connect

Handler = Callable[[argparse.Namespace], int]


def _print(args: argparse.Namespace, value: Any, text: str) -> None:
    print(json.dumps(value, default=str) if args.json else text)


def _columns(rows: list[tuple[object, ...]]) -> list[str]:
    """A list command's rows as lines, each column as wide as its widest cell."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))] if cells else []
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]


def _api(path: str, method: str = "GET", **kwargs: Any) -> httpx.Response:
    port = os.environ.get("ETL_SERVICE_PORT", "4020")
    base = os.environ.get("ETL_API_URL", f"http://127.0.0.1:{port}").rstrip("/")
    headers = {"Content-Type": "application/json"}
    if token := os.environ.get("ETL_API_TOKEN"):
        headers["Authorization"] = f"Bearer {token}"
    return httpx.request(method, base + path, headers=headers, timeout=30, **kwargs)


def _api_error(response: httpx.Response) -> int:
    try:
        message = response.json().get("error", response.text)
    except ValueError:
        message = response.text
    print(f"the API answered {response.status_code}: {message}", file=sys.stderr)
    return 2 if response.status_code == 404 else 1


# --- pipelines -----------------------------------------------------------------------------


def pipelines_list(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    registry = load_registry(settings.pipelines_dir, settings.database_url)
    with connect(settings.database_url) as conn:
        enabled: dict[str, bool] = dict(
            conn.execute("SELECT pipeline_id, enabled FROM pipelines").fetchall()
        )
    rows = [
        {
            "id": c.id,
            "name": c.name,
            "extraction": c.extraction.strategy.value,
            "loading": c.loading.strategy.value,
            "enabled": enabled.get(c.id, c.enabled),
        }
        for c in registry.pipelines.values()
    ]
    lines = _columns(
        [
            (r["id"], "enabled" if r["enabled"] else "paused", r["extraction"], r["loading"])
            for r in rows
        ]
    )
    lines += [f"invalid: {e}" for e in registry.errors]
    _print(args, {"pipelines": rows, "errors": [str(e) for e in registry.errors]}, "\n".join(lines))
    return 0


def pipelines_validate(args: argparse.Namespace) -> int:
    try:
        config = parse_pipeline(read_yaml(args.file), str(args.file))
    except ConfigError as exc:
        _print(args, {"valid": False, "problems": exc.problems}, f"invalid: {exc}")
        return 1
    _print(args, {"valid": True, "id": config.id}, f"{args.file}: pipeline {config.id!r} is valid")
    return 0


def _set_enabled(args: argparse.Namespace, enabled: bool) -> int:
    with connect(Settings.from_env().database_url) as conn:
        changed = conn.execute(
            "UPDATE pipelines SET enabled = %s, updated_at = now() WHERE pipeline_id = %s",
            (enabled, args.pipeline_id),
        ).rowcount
    if not changed:
        print(f"pipeline {args.pipeline_id!r} not found", file=sys.stderr)
        return 2
    state = "resumed" if enabled else "paused"
    _print(args, {"id": args.pipeline_id, "enabled": enabled}, f"{args.pipeline_id} {state}")
    return 0


def pipelines_run(args: argparse.Namespace) -> int:
    body = {"fullReload": True} if args.full_reload else {}
    response = _api(f"/pipelines/{args.pipeline_id}/execute", "POST", json=body)
    if response.status_code not in (200, 202):
        return _api_error(response)
    run = response.json()
    if not args.json:
        print(f"run {run['id']} {run['status']}", flush=True)
    last = run["status"]
    while args.wait and run["status"] in ("pending", "running"):
        time.sleep(1)
        run = _api(f"/pipelines/{args.pipeline_id}/runs/{run['id']}").json()
        if run["status"] != last and not args.json:  # progress on a long command
            print(f"run {run['id']} {run['status']}", flush=True)
        last = run["status"]
    if args.json:
        print(json.dumps(run))
    elif args.wait:
        print(f"{run['recordsLoaded']} rows loaded, {run['recordsQuarantined']} quarantined")
    return 0 if run["status"] not in ("failed", "cancelled") else 1


# --- watermarks ----------------------------------------------------------------------------


def watermarks_show(args: argparse.Namespace) -> int:
    with connect(Settings.from_env().database_url) as conn:
        rows = conn.execute(
            """
            SELECT DISTINCT ON (pipeline_id, source_table) pipeline_id, source_table,
                   watermark_column, last_loaded_value, last_load_time, records_loaded
              FROM etl_watermarks
             WHERE %(id)s::text IS NULL OR pipeline_id = %(id)s
             ORDER BY pipeline_id, source_table, last_load_time DESC, id DESC
            """,
            {"id": args.pipeline_id},
        ).fetchall()
    names = ("pipelineId", "sourceTable", "column", "value", "loadedAt", "recordsLoaded")
    marks = [dict(zip(names, row, strict=True)) for row in rows]
    text = "\n".join(
        _columns(
            [
                (
                    m["pipelineId"],
                    m["sourceTable"],
                    f"{m['column']} = {m['value']}",
                    f"(at {m['loadedAt']:%Y-%m-%d %H:%M:%S})",
                )
                for m in marks
            ]
        )
    )
    _print(args, marks, text or "no watermarks")
    return 0


def watermarks_reset(args: argparse.Namespace) -> int:
    with connect(Settings.from_env().database_url) as conn:
        deleted = conn.execute(
            "DELETE FROM etl_watermarks WHERE pipeline_id = %s", (args.pipeline_id,)
        ).rowcount
    _print(
        args,
        {"id": args.pipeline_id, "deleted": deleted},
        f"{args.pipeline_id}: {deleted} watermark rows deleted; the next run reads everything",
    )
    return 0


# --- runs ----------------------------------------------------------------------------------


def runs_list(args: argparse.Namespace) -> int:
    response = _api(f"/pipelines/{args.pipeline_id}/runs", params={"limit": args.limit})
    if response.status_code != 200:
        return _api_error(response)
    runs = response.json()
    text = "\n".join(
        _columns(
            [
                (r["id"], r["status"], r["trigger"], r["createdAt"], f"{r['recordsLoaded']} loaded")
                for r in runs
            ]
        )
    )
    _print(args, runs, text or "no runs")
    return 0


def runs_show(args: argparse.Namespace) -> int:
    response = _api(f"/pipelines/{args.pipeline_id}/runs/{args.run_id}")
    if response.status_code != 200:
        return _api_error(response)
    run = response.json()
    errors = "".join(f"\n  {e['stage']}: {e['message']}" for e in run["errors"])
    _print(args, run, f"{run['id']} {run['status']}: {run['recordsLoaded']} loaded{errors}")
    return 0


def runs_cancel(args: argparse.Namespace) -> int:
    response = _api(f"/pipelines/{args.pipeline_id}/runs/{args.run_id}/cancel", "POST")
    if response.status_code not in (200, 202):
        return _api_error(response)
    _print(args, response.json(), f"cancel requested for run {args.run_id}")
    return 0


# --- alerts and maintenance ----------------------------------------------------------------


def alerts_list(args: argparse.Namespace) -> int:
    with connect(Settings.from_env().database_url) as conn:
        found = alert_store.list_alerts(conn, args.status, args.severity, args.limit)
    text = "\n".join(
        _columns(
            [
                (f"#{a.id}", a.severity, a.status, f"{a.opened_at:%Y-%m-%d %H:%M}", a.message)
                for a in found
            ]
        )
    )
    _print(args, [a.as_json() for a in found], text or "no alerts")
    return 0


def alerts_ack(args: argparse.Namespace) -> int:
    with connect(Settings.from_env().database_url) as conn:
        alert = alert_store.acknowledge(conn, args.alert_id, by=os.environ.get("USER", "cli"))
    if alert is None:
        print(f"alert {args.alert_id} not found", file=sys.stderr)
        return 2
    _print(args, alert.as_json(), f"alert #{alert.id} acknowledged")
    return 0


def maintenance_run(args: argparse.Namespace) -> int:
    if args.task not in TASKS:
        print(f"unknown task {args.task!r}: one of {', '.join(TASKS)}", file=sys.stderr)
        return 2
    settings = Settings.from_env()
    registry = load_registry(settings.pipelines_dir, settings.database_url)
    result = run_task(args.task, settings.database_url, registry.pipelines)
    answer = {"name": result.name, "summary": result.summary, "details": result.details}
    _print(args, answer, result.summary)
    return 0


def add_operator_commands(commands: argparse._SubParsersAction) -> None:
    """Register the command groups on `summit-etl`'s sub-command parser."""

    def group(name: str, help_text: str) -> argparse._SubParsersAction:
        parser = commands.add_parser(name, help=help_text)
        return parser.add_subparsers(dest="action", required=True)

    def command(
        parent: argparse._SubParsersAction, name: str, handler: Handler, help_text: str
    ) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = parent.add_parser(name, help=help_text)
        parser.add_argument("--json", action="store_true", help="print JSON")
        parser.set_defaults(handler=handler)
        return parser

    pipelines = group("pipelines", "list, validate, run, pause and resume pipelines")
    command(pipelines, "list", pipelines_list, "every pipeline and whether it is enabled")
    validate = command(pipelines, "validate", pipelines_validate, "check a pipeline YAML file")
    validate.add_argument("file", type=Path)
    run = command(pipelines, "run", pipelines_run, "launch a run through the API")
    run.add_argument("pipeline_id")
    run.add_argument("--wait", action="store_true", help="follow the run until it ends")
    run.add_argument("--full-reload", action="store_true")
    for name, enabled in (("pause", False), ("resume", True)):
        switch = command(pipelines, name, partial(_set_enabled, enabled=enabled),
                         f"{name} the schedule and CDC (pipelines.enabled)")
        switch.add_argument("pipeline_id")

    watermarks = group("watermarks", "show or reset incremental watermarks")
    show = command(watermarks, "show", watermarks_show, "current watermark per pipeline")
    show.add_argument("pipeline_id", nargs="?")
    reset = command(watermarks, "reset", watermarks_reset, "forget it: the next run reads all")
    reset.add_argument("pipeline_id")

    runs = group("runs", "list, show and cancel runs (through the API)")
    listed = command(runs, "list", runs_list, "a pipeline's runs, newest first")
    listed.add_argument("pipeline_id")
    listed.add_argument("--limit", type=int, default=20)
    for name, handler in (("show", runs_show), ("cancel", runs_cancel)):
        one = command(runs, name, handler, f"{name} one run")
        one.add_argument("pipeline_id")
        one.add_argument("run_id")

    alerts = group("alerts", "list and acknowledge alerts")
    alert_list = command(alerts, "list", alerts_list, "alerts, newest first")
    alert_list.add_argument("--status", choices=alert_store.STATUSES)
    alert_list.add_argument("--severity", choices=alert_store.SEVERITIES)
    alert_list.add_argument("--limit", type=int, default=50)
    ack = command(alerts, "ack", alerts_ack, "acknowledge an alert")
    ack.add_argument("alert_id", type=int)

    maintenance = group("maintenance", "run a maintenance task now")
    task = command(maintenance, "run", maintenance_run, f"one of: {', '.join(TASKS)}")
    task.add_argument("task")

