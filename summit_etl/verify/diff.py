"""Compare source and target by key, the data-diff way: counts and checksums over ranges of
the key, bisecting the ranges that differ until they are small enough to compare row by row.

Each database computes its own checksums (both at once, on their own threads), so only one
number per range crosses the network until a range is known to differ; then only that
range's keys and row hashes travel. Values are compared as PostgreSQL renders them as text,
in UTC, so a value equal on both sides compares equal whatever the column's type.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psycopg
from psycopg import sql

from summit_etl.verify.plan import Side, VerifyPlan

SEGMENTS = 64  # ranges a differing range is split into
ROW_LIMIT = 5000  # a differing range with at most this many rows is compared row by row
MAX_EXAMPLES = 10

T = TypeVar("T")
Bound = Any  # a key value as psycopg reads it, None for unbounded
Checksums = dict[int, tuple[int, int]]  # segment → (rows, checksum)


@dataclass
class Differences:
    source_rows: int = 0
    target_rows: int = 0
    missing: int = 0  # keys in the source, not in the target
    extra: int = 0  # keys in the target, not in the source
    different: int = 0  # keys on both sides whose values differ
    examples: list[dict[str, Any]] = field(default_factory=list)

    def note(self, kind: str, key: tuple[Any, ...], names: list[str]) -> None:
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append({"kind": kind, "key": dict(zip(names, key, strict=True))})


@contextmanager
def _session(url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        conn.execute("SET default_transaction_read_only = on")
        yield conn


def _row_text(side: Side) -> sql.Composable:
    return sql.SQL("ROW({})::text").format(
        sql.SQL(", ").join(sql.SQL("{}::text").format(c) for c in side.columns)
    )


def _filter(side: Side, low: Bound, high: Bound) -> tuple[sql.Composable, list[Any]]:
    conditions: list[sql.Composable] = [side.where] if side.where is not None else []
    params: list[Any] = []
    first = side.keys[0]
    if low is not None:
        conditions.append(sql.SQL("{} >= %s").format(first))
        params.append(low)
    if high is not None:
        conditions.append(sql.SQL("{} < %s").format(first))
        params.append(high)
    if not conditions:
        return sql.SQL(""), params
    return sql.SQL(" WHERE {}").format(sql.SQL(" AND ").join(conditions)), params


def _bounds(conn: psycopg.Connection, side: Side, low: Bound, high: Bound) -> list[Any]:
    """Up to SEGMENTS - 1 distinct inner boundaries that split the side's range evenly."""
    where, params = _filter(side, low, high)
    fractions = [i / SEGMENTS for i in range(1, SEGMENTS)]
    row = conn.execute(
        sql.SQL("SELECT percentile_disc(%s::float8[]) WITHIN GROUP (ORDER BY {}) FROM {}{}").format(
            side.keys[0], side.relation, where
        ),
        [fractions, *params],
    ).fetchone()
    values = row[0] if row and row[0] else []
    return sorted({v for v in values if v is not None and v != low})


def _checksums(
    conn: psycopg.Connection, side: Side, low: Bound, high: Bound, bounds: list[Any]
) -> Checksums:
    where, params = _filter(side, low, high)
    rows = conn.execute(
        sql.SQL(
            "SELECT width_bucket({key}, %s), count(*), "
            "coalesce(sum(('x' || left(md5({row}), 8))::bit(32)::int), 0) "
            "FROM {relation}{where} GROUP BY 1"
        ).format(key=side.keys[0], row=_row_text(side), relation=side.relation, where=where),
        [bounds, *params],
    ).fetchall()
    return {int(segment): (int(count), int(checksum)) for segment, count, checksum in rows}


def _rows(
    conn: psycopg.Connection, side: Side, low: Bound, high: Bound
) -> dict[tuple[Any, ...], list[str]]:
    where, params = _filter(side, low, high)
    found: dict[tuple[Any, ...], list[str]] = defaultdict(list)
    cursor = conn.execute(
        sql.SQL("SELECT md5({}), {} FROM {}{}").format(
            _row_text(side), sql.SQL(", ").join(side.keys), side.relation, where
        ),
        params,
    )
    for digest, *key in cursor:
        found[tuple(key)].append(digest)
    return found


class _Comparison:
    def __init__(self, plan: VerifyPlan, source: psycopg.Connection, target: psycopg.Connection):
        self.plan = plan
        self.conns = (source, target)
        self.sides = (plan.source, plan.target)
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="summit-verify")
        self.found = Differences()

    def both(self, query: Callable[[psycopg.Connection, Side], T]) -> tuple[T, T]:
        source, target = (
            self.pool.submit(query, conn, side)
            for conn, side in zip(self.conns, self.sides, strict=True)
        )
        return source.result(), target.result()

    def run(self) -> Differences:
        with self.pool:
            totals = self.compare_range(None, None, top=True)
        self.found.source_rows, self.found.target_rows = totals
        return self.found

    def compare_range(self, low: Bound, high: Bound, top: bool = False) -> tuple[int, int]:
        """Compare [low, high); returns the (source, target) row counts of the range."""
        bounds = _bounds(self.conns[0], self.sides[0], low, high) or _bounds(
            self.conns[1], self.sides[1], low, high
        )
        source, target = self.both(lambda c, s: _checksums(c, s, low, high, bounds))
        edges = [low, *bounds, high]
        for segment in sorted(source.keys() | target.keys()):
            here = source.get(segment, (0, 0)), target.get(segment, (0, 0))
            if here[0] == here[1]:
                continue
            seg_low, seg_high = edges[segment], edges[segment + 1]
            splittable = bounds and (seg_low, seg_high) != (low, high)
            if max(here[0][0], here[1][0]) > ROW_LIMIT and splittable:
                self.compare_range(seg_low, seg_high)
            else:
                self.compare_rows(seg_low, seg_high)
        if not top:
            return 0, 0
        return sum(c for c, _ in source.values()), sum(c for c, _ in target.values())

    def compare_rows(self, low: Bound, high: Bound) -> None:
        source, target = self.both(lambda c, s: _rows(c, s, low, high))
        found, names = self.found, self.plan.key
        for key in sorted(source.keys() | target.keys(), key=repr):
            left, right = list(source.get(key, [])), list(target.get(key, []))
            for digest in list(left):
                if digest in right:
                    left.remove(digest)
                    right.remove(digest)
            changed = min(len(left), len(right))
            found.different += changed
            found.missing += len(left) - changed
            found.extra += len(right) - changed
            for kind, count in (("different", changed), ("missing", len(left) - changed)):
                if count:
                    found.note(kind, key, names)
            if len(right) - changed:
                found.note("extra", key, names)


def compare(plan: VerifyPlan) -> Differences:
    """The differences between the plan's two sides."""
    with _session(plan.source.url) as source, _session(plan.target.url) as target:
        return _Comparison(plan, source, target).run()
