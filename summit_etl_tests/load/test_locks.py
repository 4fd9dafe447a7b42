"""The target lock: a second writer waits for the first, whatever its lock timeout, and
keeps that timeout for its own DDL afterwards."""

from __future__ import annotations

import threading
import time

import psycopg

from summit_etl.extract.ranges import ReadRange
from summit_etl.identifiers import TableName
from summit_etl.load.locks import target_lock


def test_a_second_writer_waits_past_its_lock_timeout_and_keeps_it(target_url: str) -> None:
    lock = target_lock(TableName("dw", "items"))
    holder = psycopg.connect(target_url)
    holder.execute(lock)  # first writer, transaction open
    waited: list[float] = []

    def second_writer() -> None:
        with psycopg.connect(target_url) as conn:
            conn.execute("SET lock_timeout = '100ms'")
            started = time.perf_counter()
            conn.execute(lock)
            waited.append(time.perf_counter() - started)
            waited.append(conn.execute("SELECT current_setting('lock_timeout')").fetchone()[0])

    thread = threading.Thread(target=second_writer)
    thread.start()
    time.sleep(1.0)
    assert thread.is_alive()  # still waiting, not failed after 100 ms
    holder.commit()
    thread.join(timeout=10)
    holder.close()
    assert waited[0] >= 0.9 and waited[1] == "100ms"


def test_slices_of_different_ranges_write_together_and_exclude_whole_target_writers(
    target_url: str,
) -> None:
    table = TableName("dw", "items")
    first, second = ReadRange("id", None, 100), ReadRange("id", 100, None)

    def taken_at_once(statement: object) -> bool:
        """Whether `statement` is granted while the holder's transaction is open."""
        with psycopg.connect(target_url) as conn:
            conn.execute("SET lock_timeout = '300ms'")
            # The statement lifts the lock timeout for its own wait: bound it from outside.
            conn.execute("SET statement_timeout = '300ms'")
            try:
                conn.execute(statement)
            except psycopg.errors.QueryCanceled:
                return False
            return True

    with psycopg.connect(target_url) as holder:
        holder.execute(target_lock(table, first))  # a slice, transaction open
        assert taken_at_once(target_lock(table, second))  # another range loads meanwhile
        assert not taken_at_once(target_lock(table, first))  # the same range waits
        assert not taken_at_once(target_lock(table))  # a full load waits
    with psycopg.connect(target_url) as holder:
        holder.execute(target_lock(table))  # a full load, transaction open
        assert not taken_at_once(target_lock(table, second))
