"""`etl_slice_plans`: the split a pipeline's slice runs share, and the slice a run loaded.

Every slice run of one backfill must cut the table at the same boundaries, or ranges would
overlap or leave gaps; the boundaries are worked out once (extract/ranges.py) and kept
here. They are stored as PostgreSQL's own text of the column's values, which the source
reads back as that type when a range is compared with the column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from psycopg import Connection

from summit_etl.extract.ranges import ReadRange


@dataclass(frozen=True)
class SlicePlan:
    split_column: str
    parts: int
    bounds: list[str]
    made_for: str | None  # the backfill it was made for; None: a slice run on its own
    version: int  # grows with every new split of the pipeline

    def ranges(self) -> list[ReadRange]:
        edges: list[object | None] = [None, *self.bounds, None]
        return [
            ReadRange(self.split_column, lo, hi) for lo, hi in zip(edges, edges[1:], strict=False)
        ]


def current(conn: Connection, pipeline_id: str) -> SlicePlan | None:
    row = conn.execute(
        """
        SELECT split_column, parts, bounds, made_for, version
          FROM etl_slice_plans WHERE pipeline_id = %s
        """,
        (pipeline_id,),
    ).fetchone()
    return SlicePlan(row[0], row[1], list(row[2]), row[3], row[4]) if row else None


def replace(
    conn: Connection,
    pipeline_id: str,
    split: Sequence[ReadRange],
    parts: int,
    made_for: str | None,
) -> SlicePlan:
    """Store `split` (from split_read, in order) as the pipeline's plan."""
    column = split[0].column
    if column is None:
        raise ValueError("a ctid split cannot be shared: its ranges name places, not keys")
    bounds = [r.upper for r in split[:-1]]
    row = conn.execute(
        """
        INSERT INTO etl_slice_plans (pipeline_id, split_column, parts, bounds, made_for)
        VALUES (%(id)s, %(column)s, %(parts)s, %(bounds)s::text[], %(made_for)s)
        ON CONFLICT (pipeline_id) DO UPDATE
           SET split_column = EXCLUDED.split_column, parts = EXCLUDED.parts,
               bounds = EXCLUDED.bounds, made_for = EXCLUDED.made_for,
               version = etl_slice_plans.version + 1, made_at = now()
        RETURNING bounds, version
        """,
        # The values travel typed (timestamp[], uuid[], ...) and are cast to text here.
        {
            "id": pipeline_id,
            "column": column,
            "parts": parts,
            "bounds": bounds,
            "made_for": made_for,
        },
    ).fetchone()
    assert row is not None  # INSERT ... RETURNING always returns the row
    return SlicePlan(column, parts, list(row[0]), made_for, row[1])


def note_slice(conn: Connection, run_id: str, slice_key: str) -> None:
    """Mark the run's record as the load of one slice ('2-of-4')."""
    conn.execute("UPDATE pipeline_runs SET slice = %s WHERE id = %s", (slice_key, run_id))
