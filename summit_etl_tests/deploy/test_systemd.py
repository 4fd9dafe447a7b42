"""deploy/systemd: the unit runs `summit-etl serve` the way the runbook's `systemctl` and
`journalctl` commands assume, and its settings file lists what the code reads."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

from summit_etl.cli import STOP_GRACE_SECONDS
from summit_etl.settings import PROJECT_ROOT, Settings

SYSTEMD = PROJECT_ROOT / "deploy" / "systemd"
UNIT = SYSTEMD / "etl-service.service"
ENV_EXAMPLE = SYSTEMD / "etl-service.env.example"
# Variables the code reads that are not the operator's to set: `serve` sets them for its
# children, the operator CLI reads them on the operator's shell, tests set the failpoint.
NOT_SETTINGS = {
    "DAGSTER_DISABLE_TELEMETRY",
    "DAGSTER_GRAPHQL_URL",
    "DAGSTER_HOME",
    "ETL_API_TOKEN",
    "ETL_API_URL",
    "SUMMIT_CODE_SERVER_HOST",
    "SUMMIT_FAILPOINT",
}


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(s|min)?", value)
    assert match, f"not a plain duration: {value!r}"
    return int(match[1]) * (60 if match[2] == "min" else 1)


def test_unit_runs_serve_with_graceful_stop_and_restart() -> None:
    service = unit()["Service"]
    command = shlex.split(service["ExecStart"])
    assert PurePosixPath(command[0]).name == "summit-etl"
    assert command[1:] == ["serve"]
    assert service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM"
    # SIGTERM to `serve` alone: it stops its children itself, in order.
    assert service["KillMode"] == "mixed"
    assert seconds(service["TimeoutStopSec"]) > STOP_GRACE_SECONDS
    assert service["EnvironmentFile"] == "/etc/etl-service/etl-service.env"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"


def test_hardened_unit_still_lets_the_service_write_its_logs_and_state() -> None:
    service = unit()["Service"]
    root = PurePosixPath(service["WorkingDirectory"])
    writable = [PurePosixPath(p) for p in service["ReadWritePaths"].split()]
    defaults = Settings.from_env()
    # Where `serve` writes by default, moved from this checkout to the unit's install root.
    for written in (defaults.log_file.parent, PROJECT_ROOT / ".dagster"):
        installed = root / written.relative_to(PROJECT_ROOT)
        assert any(installed.is_relative_to(path) for path in writable), installed
    assert PurePosixPath(shlex.split(service["ExecStart"])[0]).is_relative_to(root)


def test_env_example_lists_every_setting_the_code_reads() -> None:
    example = {
        m[1] for m in re.finditer(r"^#?([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.MULTILINE)
    }
    sources = "\n".join(
        path.read_text()
        for folder in ("summit_etl", "api_shim")
        for path in (PROJECT_ROOT / folder).rglob("*.py")
    )
    read = set(re.findall(r"\"((?:ETL|SUMMIT|DAGSTER)_[A-Z_]+)\"", sources)) | {"DATABASE_URL"}
    assert read - NOT_SETTINGS - example == set(), "settings missing from the example"
    # and nothing in the example that no code reads (a typo would be silently ignored)
    unknown = {name for name in example if f'"{name}"' not in sources}
    assert unknown <= {"DATABASE_URL", "LOG_LEVEL", "SOURCE_DATABASE_URL", "TARGET_DATABASE_URL"}


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    # The unit as installed, with ExecStart on the summit-etl of this environment so that
    # systemd's executable check has a real binary to find.
    here = Path(sys.executable).parent / "summit-etl"
    assert here.exists()
    text = UNIT.read_text().replace("/opt/etl-service/.venv/bin/summit-etl", str(here))
    installed = tmp_path / UNIT.name
    installed.write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(installed)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    # Unknown keys and bad values are only warnings, with exit 0: none may appear.
    assert result.stderr.strip() == "", result.stderr
