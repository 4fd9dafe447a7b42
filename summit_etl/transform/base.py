"""What every transformation step is: a batch-in, batch-out stage with an optional tail."""

from __future__ import annotations

from abc import ABC, abstractmethod

import pyarrow as pa

from summit_etl.transform.errors import TransformError


class Step(ABC):
    """One configured transformation.

    `process` returns the rows to pass on now (possibly none); barrier steps such as
    aggregate keep state instead and hand their result over in `finish`, once the
    input stream is exhausted.
    """

    @abstractmethod
    def process(self, batch: pa.Table) -> pa.Table | None: ...

    def finish(self) -> pa.Table | None:
        return None


def column(batch: pa.Table, name: str, what: str) -> pa.ChunkedArray:
    """`batch[name]`, or a TransformError that lists the columns there are."""
    if name not in batch.column_names:
        raise TransformError(
            f"{what} {name!r} is not in the batch (its columns: "
            f"{', '.join(batch.column_names) or 'none'})"
        )
    return batch[name]


def replace_column(batch: pa.Table, name: str, values: pa.Array | pa.ChunkedArray) -> pa.Table:
    """Set `name` to `values`, in place if it exists (the old field's metadata is dropped,
    since it described the old type), else appended."""
    field = pa.field(name, values.type)
    if name in batch.column_names:
        return batch.set_column(batch.column_names.index(name), field, values)
    return batch.append_column(field, values)
