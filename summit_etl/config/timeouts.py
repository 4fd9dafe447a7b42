"""`timeouts` of a pipeline: how long a connection, a statement and a lock wait may take."""

from __future__ import annotations

from pydantic import Field

from summit_etl.config.base import Model


class TimeoutsConfig(Model):
    """Applied to every source and target connection of a run (batch and CDC).

    The statement timeout bounds one statement, and a bulk read or load is one COPY
    statement for the whole table: raise it for tables that take longer than an hour.
    """

    connect_seconds: int = Field(default=10, ge=2, le=3600)  # libpq's minimum is 2
    statement_seconds: float = Field(default=3600, gt=0)
    lock_seconds: float = Field(default=10, gt=0)
