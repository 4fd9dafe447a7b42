"""Streaming a source query into Arrow (real PostgreSQL): the driver hands over batches of
a few MiB, so the loader gets its first rows while the source's COPY is still running."""

from __future__ import annotations

import adbc_driver_postgresql.dbapi as adbc

from summit_etl.extract.postgres import BATCH_BYTES, stream_batches
from summit_etl_tests.support import run_sql

ROWS = 160_000


def test_batches_are_a_few_mib_whatever_the_batch_size(source_url: str) -> None:
    # About 200 bytes a row: some 30 MiB in all, two batches at the driver's 16 MiB default.
    run_sql(
        source_url,
        "CREATE TABLE public.wide AS SELECT g AS id, repeat('x', 200) AS body"
        f" FROM generate_series(1, {ROWS}) g",
    )
    with adbc.connect(source_url) as conn:
        _, batches = stream_batches(conn, "SELECT id, body FROM public.wide", batch_size=ROWS)
        sizes = [(batch.num_rows, batch.nbytes) for batch in batches]
    assert sum(rows for rows, _ in sizes) == ROWS
    assert len(sizes) >= 6
    # The first reaches the loader after a sixth of the read at most.
    assert sizes[0][0] <= ROWS // 6
    assert all(nbytes <= 2 * BATCH_BYTES for _, nbytes in sizes)
