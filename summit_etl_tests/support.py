"""Helpers shared by the tests."""

from __future__ import annotations

import os
from typing import Any

import psycopg

ADMIN_URL = os.environ.get("SUMMIT_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def run_sql(url: str, statement: str, params: Any = None) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []
