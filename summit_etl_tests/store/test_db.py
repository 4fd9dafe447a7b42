"""Creating and migrating the summit database."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable

from alembic.script import ScriptDirectory

from summit_etl.store import db
from summit_etl_tests.support import ADMIN_URL, run_sql

SUMMIT_TABLES = {
    "pipelines", "pipeline_runs", "etl_watermarks", "etl_cdc_watermarks",
    "data_quality_reports", "etl_quarantine", "etl_admin_stops",
}


def tables(url: str) -> set[str]:
    return {r[0] for r in run_sql(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


def test_prepare_creates_the_database_and_every_summit_table() -> None:
    name = f"summit_test_new_{uuid.uuid4().hex[:8]}"
    url = ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    try:
        assert db.ensure_database(url) is True
        assert db.ensure_database(url) is False
        db.prepare(url)
        assert tables(url) >= SUMMIT_TABLES
    finally:
        run_sql(ADMIN_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_migrations_are_idempotent_and_safe_from_concurrent_processes(
    make_database: Callable[[str], str],
) -> None:
    url = make_database("mig")
    # The webserver, the daemon and run workers all migrate on start, at the same time.
    workers = [
        subprocess.Popen([sys.executable, "-c", f"from summit_etl.store import db; db.migrate({url!r})"])
        for _ in range(3)
    ]
    assert [w.wait(timeout=120) for w in workers] == [0, 0, 0]
    db.migrate(url)
    assert tables(url) >= SUMMIT_TABLES
    head = ScriptDirectory(str(db.MIGRATIONS)).get_current_head()
    assert run_sql(url, "SELECT version_num FROM alembic_version") == [(head,)]


def test_redact_hides_passwords() -> None:
    assert "s3cret" not in db.redact("postgresql://etl:s3cret@h:5432/summit")
    assert "***" in db.redact("postgresql://etl:s3cret@h:5432/summit")
