"""The join step: enrich each batch from a lookup table or query in PostgreSQL.

The lookup is read once, on the first batch (an empty stream never connects), and
must have one row per key: a lookup that multiplied rows would break the row
accounting of the run, so duplicates are an error rather than a surprise.
"""

from __future__ import annotations

import adbc_driver_postgresql.dbapi as adbc
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from summit_etl.config import JoinTransform
from summit_etl.extract.arrow import plain_table
from summit_etl.identifiers import TableName
from summit_etl.transform.base import Step, column
from summit_etl.transform.errors import TransformError

_ROW = "#row"  # helper column restoring batch order; '#' is never in a configured name


def lookup_sql(spec: JoinTransform) -> str:
    """`SELECT <keys + columns | *> FROM <table | (query) AS lookup>`, all quoted."""
    if spec.columns is None:
        selected: sql.Composable = sql.SQL("*")
    else:
        wanted = list(dict.fromkeys([*spec.on, *spec.columns]))
        selected = sql.SQL(", ").join(sql.Identifier(name) for name in wanted)
    if spec.table is not None:
        relation: sql.Composable = TableName.parse(spec.table, "join.table").ident
    else:
        # The user's own SELECT (validated to be one statement), run as a subquery.
        query = (spec.query or "").strip().rstrip(";")
        relation = sql.SQL("({}) AS lookup").format(sql.SQL(query))
    return sql.SQL("SELECT {} FROM {}").format(selected, relation).as_string(None)


def load_lookup(url: str, query: str) -> pa.Table:
    with adbc.connect(url) as conn, conn.cursor() as cursor:
        cursor.execute(query)
        return plain_table(cursor.fetch_arrow_table())


class JoinStep(Step):
    def __init__(self, spec: JoinTransform, source_url: str) -> None:
        self._spec = spec
        self._url = spec.url or source_url
        self._join_type = "left outer" if spec.how == "left" else "inner"
        self._lookup: pa.Table | None = None

    def _load(self) -> pa.Table:
        where = self._spec.table or "the join query"
        try:
            lookup = load_lookup(self._url, lookup_sql(self._spec))
        except adbc.Error as exc:
            raise TransformError(f"the lookup {where!r} cannot be read: {exc}") from exc
        on = self._spec.on
        wanted = self._spec.columns or [c for c in lookup.column_names if c not in on]
        for name in [*on, *wanted]:
            column(lookup, name, "lookup column")
        lookup = lookup.select([*on, *wanted])
        counts = lookup.group_by(on, use_threads=False).aggregate([([], "count_all")])
        duplicated = counts.filter(pc.greater(counts["count_all"], 1))
        if duplicated.num_rows:
            example = {key: duplicated[key][0].as_py() for key in on}
            raise TransformError(
                f"the lookup {where!r} has {duplicated.num_rows} key(s) with more than one "
                f"row, e.g. {example}; a lookup needs one row per key"
            )
        return lookup

    def process(self, batch: pa.Table) -> pa.Table:
        if self._lookup is None:
            self._lookup = self._load()
        lookup = self._lookup
        for key in self._spec.on:
            kind = column(batch, key, "join key").type
            if lookup[key].type != kind:
                # Arrow joins equal types only (e.g. an int4 key against an int8 one).
                index = lookup.column_names.index(key)
                lookup = lookup.set_column(index, key, pc.cast(lookup[key], kind))
        self._lookup = lookup
        added = [name for name in lookup.column_names if name not in self._spec.on]
        clashes = [name for name in added if name in batch.column_names]
        if clashes:
            raise TransformError(
                f"lookup column(s) {', '.join(clashes)} already exist in the batch; "
                "list the lookup columns to add under 'columns'"
            )
        numbered = batch.append_column(_ROW, pa.array(np.arange(batch.num_rows)))
        joined = numbered.join(lookup, keys=self._spec.on, join_type=self._join_type)
        # Arrow's hash join scrambles row order; restore the batch's.
        joined = joined.take(pc.sort_indices(joined[_ROW]))
        return joined.select([*batch.column_names, *added])
