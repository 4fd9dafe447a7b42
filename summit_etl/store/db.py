"""Connections to the summit database, its creation, and its migrations."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from sqlalchemy import create_engine

from summit_etl.logs import MASK, redact_text

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
# Serialises concurrent start-ups (webserver, daemon and run workers all migrate).
_MIGRATION_LOCK_ID = 0x5E7_0001
_migrated: set[str] = set()
_migrated_guard = threading.Lock()


def connect(url: str, *, autocommit: bool = True) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=autocommit)


def redact(url: str) -> str:
    """The URL with any password replaced, for logs and error messages; text that is no
    connection string is masked by pattern rather than echoed in a parse error."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return redact_text(url)
    if "password" in params:
        params["password"] = MASK
    return make_conninfo("", **{k: v for k, v in params.items() if v is not None})


def ensure_database(url: str) -> bool:
    """Create the database named in `url` if it does not exist; True when created."""
    params = conninfo_to_dict(url)
    name = str(params.get("dbname") or "")
    if not name:
        return False
    try:
        psycopg.connect(url).close()
        return False
    except psycopg.OperationalError as exc:
        if "does not exist" not in str(exc):
            raise
    admin = make_conninfo(url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.errors.DuplicateDatabase:
            return False
    log.info("created database", extra={"database": name})
    return True


def _sqlalchemy_url(url: str) -> str:
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    # A keyword/value conninfo: hand it to psycopg through SQLAlchemy's creator hook.
    return "postgresql+psycopg://"


def migrate(url: str) -> None:
    """Bring the summit tables to the newest version (idempotent, safe to run concurrently)."""
    with _migrated_guard:
        if url in _migrated:
            return
        engine = create_engine(_sqlalchemy_url(url), creator=lambda: psycopg.connect(url))
        try:
            with engine.begin() as connection:
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_ID})")
                cfg = Config()
                cfg.set_main_option("script_location", str(MIGRATIONS))
                cfg.attributes["connection"] = connection
                command.upgrade(cfg, "head")
        finally:
            engine.dispose()
        _migrated.add(url)


def prepare(url: str) -> None:
    """Create the summit database if needed and migrate it."""
    ensure_database(url)
    migrate(url)
