"""docs/operations.md: the working forms it gives for runbook commands do work."""

from __future__ import annotations

import re
import shlex
import subprocess

from summit_etl.settings import PROJECT_ROOT

OPERATIONS = PROJECT_ROOT / "docs" / "operations.md"
# The runbook's Weekly Maintenance 2, as it writes it.
RUNBOOK_VACUUM = """
  VACUUM ANALYZE etl_watermarks;
  VACUUM ANALYZE etl_cdc_watermarks;
"""


def _psql(args: list[str], summit_url: str) -> subprocess.CompletedProcess[str]:
    # `-d summit` as the docs write it, on the test's summit database.
    at = args.index("-d")
    args[at + 1] = summit_url
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def test_the_documented_vacuum_works_where_the_runbooks_fails(summit_url: str) -> None:
    documented = re.search(
        r"^\s*(psql -d summit .*VACUUM ANALYZE etl_watermarks.*)$",
        OPERATIONS.read_text(),
        re.MULTILINE,
    )
    assert documented, "docs/operations.md lost the working VACUUM command"
    works = _psql(shlex.split(documented[1]), summit_url)
    assert works.returncode == 0, works.stderr
    assert works.stdout.split() == ["VACUUM", "VACUUM"]

    alternative = re.search(r"^\s*(vacuumdb -d summit .*)$", OPERATIONS.read_text(), re.MULTILINE)
    assert alternative, "docs/operations.md lost the vacuumdb form"
    also_works = _psql(shlex.split(alternative[1]), summit_url)
    assert also_works.returncode == 0, also_works.stderr

    runbook = _psql(["psql", "-d", "summit", "-c", RUNBOOK_VACUUM], summit_url)
    assert runbook.returncode != 0
    assert "cannot run inside a transaction block" in runbook.stderr
