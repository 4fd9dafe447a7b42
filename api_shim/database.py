"""A pool of connections to the summit database, handed to the `summit_etl.store` functions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from api_shim.errors import DependencyDown


class Database:
    def __init__(self, url: str, max_size: int = 20) -> None:
        # min_size=0 and open without waiting: the API starts (and reports 503) when the
        # database is down, and recovers by itself when it comes back. `check` pings a
        # connection before handing it out, so that connections idle in the pool across an
        # outage or failover are replaced instead of failing the first requests afterwards.
        self._pool = ConnectionPool(
            url,
            min_size=0,
            max_size=max_size,
            kwargs={"autocommit": True},
            open=True,
            timeout=5.0,
            reconnect_timeout=0,
            check=ConnectionPool.check_connection,
        )

    def close(self) -> None:
        self._pool.close()

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[psycopg.Connection]:
        try:
            with self._pool.connection(timeout=timeout) as conn:
                yield conn
        except (PoolTimeout, psycopg.OperationalError) as exc:
            raise DependencyDown("database", str(exc).splitlines()[0]) from exc
