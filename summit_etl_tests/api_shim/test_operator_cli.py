"""The operators' `summit-etl` commands against the real service (in this process: the same
code the console script runs, without paying an interpreter start per command)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from summit_etl import cli as summit_cli
from summit_etl_tests.api_shim.conftest import Stack
from summit_etl_tests.support import run_sql


@pytest.fixture
def cli(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., Any]:
    for name in ("DATABASE_URL", "SUMMIT_PIPELINES_DIR", "ETL_SERVICE_PORT", "SOURCE_URL", "TARGET_URL"):
        monkeypatch.setenv(name, stack.env[name])
    monkeypatch.setenv("ETL_API_URL", stack.api_url)

    def run(*args: str, ok: int = 0) -> Any:
        code = summit_cli.main(list(args))
        out = capsys.readouterr()
        assert code == ok, out.err
        return json.loads(out.out) if "--json" in args and ok == 0 else out

    return run


def test_pipelines_runs_watermarks_and_alerts_from_the_command_line(
    cli: Callable[..., Any], stack: Stack, tmp_path: Path
) -> None:
    listed = cli("pipelines", "list", "--json")
    assert "users-sync" in {p["id"] for p in listed["pipelines"]}
    # The text form is a table: the state column starts at one offset, whatever the ids' lengths.
    lines = [line for line in cli("pipelines", "list").out.splitlines() if not line.startswith("invalid")]
    assert len(lines) == len(listed["pipelines"])
    assert len({re.search(r" (enabled|paused) ", line).start() for line in lines}) == 1  # type: ignore[union-attr]

    cli("pipelines", "pause", "users-sync")
    assert run_sql(stack.summit_url, "SELECT enabled FROM pipelines WHERE pipeline_id = 'users-sync'") == [(False,)]
    cli("pipelines", "resume", "users-sync", "--json")
    assert run_sql(stack.summit_url, "SELECT enabled FROM pipelines WHERE pipeline_id = 'users-sync'") == [(True,)]
    assert "not found" in cli("pipelines", "pause", "nope", ok=2).err

    followed = cli("pipelines", "run", "users-sync", "--wait")
    assert "success" in followed.out and "200 rows loaded" in followed.out
    runs = cli("runs", "list", "users-sync", "--limit", "1", "--json")
    assert runs[0]["status"] == "success"
    shown = cli("runs", "show", "users-sync", runs[0]["id"], "--json")
    assert shown["id"] == runs[0]["id"] and shown["recordsLoaded"] == 200
    assert cli("runs", "show", "users-sync", "no-such-run", ok=2).err

    run_sql(stack.summit_url, "INSERT INTO etl_watermarks (pipeline_id, source_table, watermark_column, last_loaded_value) "
                              "VALUES ('cli-probe', 'public.t', 'at', '2025-01-01')")
    assert cli("watermarks", "show", "cli-probe", "--json")[0]["value"] == "2025-01-01"
    assert cli("watermarks", "reset", "cli-probe", "--json")["deleted"] == 1
    assert cli("watermarks", "show", "cli-probe", "--json") == []

    run_sql(stack.summit_url, "INSERT INTO etl_alerts (rule, severity, dedup_key, message) "
                              "VALUES ('probe', 'warning', 'probe:cli', 'a probe alert')")
    alerts = cli("alerts", "list", "--status", "open", "--severity", "warning", "--json")
    probe = next(a for a in alerts if a["rule"] == "probe")
    assert cli("alerts", "ack", str(probe["id"]), "--json")["acknowledgedAt"] is not None

    good = tmp_path / "ok.yaml"
    good.write_text("id: ok\nname: Ok\nsource: {url: 'postgresql://h/db', table: t}\nloading: {targetTable: t2}\n")
    assert cli("pipelines", "validate", str(good), "--json") == {"valid": True, "id": "ok"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: bad\nname: Bad\nsource: {url: 'postgresql://h/db', table: t}\nloading: {strategy: nope, targetTable: t2}\n")
    assert "loading.strategy" in cli("pipelines", "validate", str(bad), ok=1).out
