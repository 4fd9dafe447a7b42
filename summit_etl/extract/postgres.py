"""Streaming reads from PostgreSQL: COPY BINARY into Arrow through the ADBC driver."""

from __future__ import annotations

import threading
from collections.abc import Generator
from concurrent.futures import Future, ThreadPoolExecutor
from decimal import Decimal
from types import TracebackType

import adbc_driver_manager
import adbc_driver_postgresql
import adbc_driver_postgresql.dbapi as adbc
import psycopg
import pyarrow as pa
from psycopg import sql

from summit_etl.config import PipelineConfig, SourceConfig
from summit_etl.extract.arrow import empty_table, plain_table, reject_end_of_day
from summit_etl.extract.columns import ReadPlan, plan_read
from summit_etl.identifiers import TableName
from summit_etl.timeouts import timed_url

_TYPE_RESOLVER = "adbc.postgresql.type_resolver_mode"


class Connector:
    """One connection to `url`, its slow part begun on a thread as the Connector is made.

    Before the ADBC driver opens a connection, its database object loads the server's type
    catalog over a connection of its own (50-100 ms). Begun early, that overlaps what the
    run does meanwhile (connecting to the source, waiting for the first batch, the other
    readers' catalog loads); `open()` then opens the connection itself, and its
    transaction, when there is work for it. Leaving the block releases what no connection
    took.

    With `built_in_types` the driver skips that load and uses its own table of
    PostgreSQL's built-in types (about 5 ms): for a connection that receives no value of
    a type made on the server (an enum, a composite, an extension's type, arrays of
    them), which would arrive as opaque bytes: readers whose ReadPlan allows it
    (extract/columns.py). Target writers talk psycopg (load/target.py).
    """

    def __init__(self, url: str, *, built_in_types: bool = False) -> None:
        self.url = url
        pool = ThreadPoolExecutor(1, thread_name_prefix="summit-catalog")
        self._database: Future[adbc_driver_manager.AdbcDatabase] = pool.submit(
            adbc_driver_postgresql.connect,
            url,
            {_TYPE_RESOLVER: "builtin" if built_in_types else "server"},
        )
        pool.shutdown(wait=False)  # the thread ends with the catalog load
        self._taken = False

    def __enter__(self) -> Connector:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._taken:
            self._database.add_done_callback(_close_database)

    def open(self) -> adbc.Connection:
        """The connection (once per Connector; closing it is the caller's, `with` does):
        raises what the catalog load met."""
        if self._taken:
            raise RuntimeError("a Connector opens one connection")
        database = self._database.result()  # interrupted here, __exit__ still releases it
        self._taken = True
        try:
            # The dbapi connection owns the database object from here on.
            return adbc.Connection(database, adbc_driver_manager.AdbcConnection(database))
        except BaseException:
            database.close()
            raise


class Cancellable:
    """The connection a read runs its statements on, for another thread to cancel them.

    Cancelling and letting go of the connection take one lock, so a cancel never lands on
    a connection being closed; once cancelled, no statement begins (`attach` raises), so a
    cancel that comes before the read began is not lost."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conn: adbc.Connection | None = None
        self._cancelled = False

    def attach(self, conn: adbc.Connection) -> None:
        """`conn` is about to run the read's statements."""
        with self._lock:
            if self._cancelled:
                raise InterruptedError("the read was cancelled before it began")
            self._conn = conn

    def detach(self) -> None:
        """The statements ended: a cancel from now on leaves the connection alone."""
        with self._lock:
            self._conn = None

    def cancel(self) -> None:
        """Cancel the statement running on the connection, if any, and any to come."""
        with self._lock:
            self._cancelled = True
            if self._conn is not None:
                self._conn.adbc_cancel()


def _close_database(database: Future[adbc_driver_manager.AdbcDatabase]) -> None:
    if database.exception() is None:
        database.result().close()


def source_relation(source: SourceConfig) -> sql.Composable:
    """The source as a FROM item: the quoted table, or the query as a subselect."""
    if source.table_name is not None:
        return source.table_name.ident
    # The query is the user's own SELECT (validated to be one statement); it is run as
    # written, against a source they already have rights on.
    return sql.SQL("({}) AS summit_source").format(sql.SQL(source.query or ""))


def read_plan(
    config: PipelineConfig,
    column: str | None = None,
    lower_bound: str | Decimal | None = None,
    *,
    probe: bool = True,
) -> ReadPlan:
    """How each of the source's columns is read (typed or as its text), from its catalog
    and, with `probe`, from the values in the rows that `select_sql` will read."""
    source = config.source
    where = _where(column, lower_bound) if probe else None
    url = timed_url(source.url, config.timeouts)  # the probe waits no longer than the read
    return plan_read(url, source_relation(source), source.table is not None, config, where)


def _where(
    column: str | None, lower_bound: str | Decimal | None, within: sql.Composable | None = None
) -> sql.Composable:
    terms: list[sql.Composable] = []
    if column is not None and lower_bound is not None:
        terms.append(sql.SQL("{} >= {}").format(sql.Identifier(column), sql.Literal(lower_bound)))
    if within is not None:
        terms.append(within)
    return sql.SQL("WHERE {}").format(sql.SQL(" AND ").join(terms)) if terms else sql.SQL("")


def select_sql(
    source: SourceConfig,
    column: str | None,
    lower_bound: str | Decimal | None,
    plan: ReadPlan | None = None,
    within: sql.Composable | None = None,
) -> str:
    """`SELECT columns FROM source [WHERE column >= lower_bound] [AND within]` with
    everything quoted; the columns as `plan` reads them, or `*`; `within`: one range of a
    parallel read (extract/ranges.py)."""
    columns = plan.select_list() if plan and plan.columns else sql.SQL("*")
    query = sql.SQL("SELECT {} FROM {} {}").format(
        columns, source_relation(source), _where(column, lower_bound, within)
    )
    return query.as_string(None).rstrip()


# The driver hands over a batch once it holds this many bytes (its default: 16 MiB, some
# 80,000 rows of the benchmarks' tables). Smaller batches reach the loader sooner, so the
# target's COPY starts while the source's still runs: 100,000 rows' first batch came after
# 0.155 s at 16 MiB, after 0.037 s at 4 MiB, for the same 0.18-0.19 s read.
_BATCH_BYTES = "adbc.postgresql.batch_size_hint_bytes"
BATCH_BYTES = 4 << 20


def stream_batches(
    conn: adbc.Connection, query: str, batch_size: int, plan: ReadPlan | None = None
) -> tuple[pa.Schema, Generator[pa.Table]]:
    """Run `query` and stream its rows as plain-typed Arrow tables of at most batch_size rows;
    with `plan`, each field names its source column's own type in its metadata."""
    cursor = conn.cursor()
    cursor.adbc_statement.set_options(**{_BATCH_BYTES: str(BATCH_BYTES)})
    cursor.execute(query)
    reader = cursor.fetch_record_batch()
    schema = plain_table(empty_table(reader.schema)).schema
    if plan is not None:
        schema = plan.typed_schema(schema)

    def batches() -> Generator[pa.Table]:
        try:
            for record_batch in reader:
                table = plain_table(record_batch)
                reject_end_of_day(table)
                if plan is not None:
                    table = plan.typed(table, schema)
                for offset in range(0, table.num_rows, batch_size):
                    yield table.slice(offset, batch_size)
        finally:
            cursor.close()

    return schema, batches()


def primary_key(url: str, table: TableName) -> list[str]:
    """The primary-key columns of a table, in key order (empty when it has none)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            """
            SELECT a.attname
              FROM pg_index i
              JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true
              JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             WHERE i.indrelid = to_regclass(%s) AND i.indisprimary
             ORDER BY k.ord
            """,
            (table.ident.as_string(None),),
        ).fetchall()
    return [r[0] for r in rows]

