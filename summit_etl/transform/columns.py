"""Column-wise steps: map, typecast, normalize and derive. None of them changes row counts."""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from summit_etl.config import (
    DeriveTransform,
    MapTransform,
    NormalizeOp,
    NormalizeTransform,
    TypecastTransform,
)
from summit_etl.transform.base import Step, column, replace_column
from summit_etl.transform.casting import convert, is_text_type
from summit_etl.transform.errors import TransformError
from summit_etl.transform.expressions import parse_expression
from summit_etl.transform.parsing import Values, parse_number


class MapStep(Step):
    """Select and rename: the mapped columns in mapping order, then (with includeUnmapped)
    every column not used as a source, in batch order."""

    def __init__(self, spec: MapTransform) -> None:
        self._mapping = spec.field_mapping
        self._include_unmapped = spec.include_unmapped

    def process(self, batch: pa.Table) -> pa.Table:
        sources = [column(batch, s, "map source field") for s in self._mapping.values()]
        fields = [
            batch.schema.field(source).with_name(target)  # the PostgreSQL type metadata stays
            for target, source in self._mapping.items()
        ]
        if self._include_unmapped:
            used = set(self._mapping.values())
            for name in batch.column_names:
                if name in used:
                    continue
                if name in self._mapping:
                    raise TransformError(
                        f"map target {name!r} would duplicate the unmapped column {name!r}; "
                        "map that column too or set includeUnmapped to false"
                    )
                sources.append(batch[name])
                fields.append(batch.schema.field(name))
        return pa.Table.from_arrays(sources, schema=pa.schema(fields))


class TypecastStep(Step):
    def __init__(self, spec: TypecastTransform) -> None:
        self._types = spec.type_mapping
        self._fail = spec.on_error == "fail"

    def process(self, batch: pa.Table) -> pa.Table:
        for name, target in self._types.items():
            values = column(batch, name, "typecast field")
            try:
                result = convert(values, target)
            except TransformError as exc:
                raise TransformError(f"column {name!r} cannot be cast: {exc}") from exc
            bad = pc.and_(pc.is_valid(values), pc.is_null(result))
            if self._fail and pc.any(bad).as_py():
                examples = pc.filter(values, bad)
                raise TransformError(
                    f"column {name!r} cannot be cast to {target}: {examples[0].as_py()!r} is "
                    f"not a valid {target} ({len(examples)} bad value(s) in this batch; "
                    "onError: null would turn them into nulls)"
                )
            batch = replace_column(batch, name, result)
        return batch


def _text_only(operation: Callable[[Values], Values]) -> Callable[[Values], Values]:
    def apply(values: Values) -> Values:
        if not is_text_type(values.type):
            raise TransformError(f"it applies to text, and the column is {values.type}")
        return operation(values)

    return apply


def _empty_to_null(values: Values) -> Values:
    return pc.if_else(pc.equal(values, ""), pa.scalar(None, values.type), values)


_NORMALIZERS: dict[NormalizeOp, Callable[[Values], Values]] = {
    "trim": _text_only(pc.utf8_trim_whitespace),
    "lower": _text_only(pc.utf8_lower),
    "upper": _text_only(pc.utf8_upper),
    "empty_to_null": _text_only(_empty_to_null),
    "date": lambda values: convert(values, "date"),
    "timestamp": lambda values: convert(values, "timestamp"),
    "number": lambda v: parse_number(v) if is_text_type(v.type) else convert(v, "float"),
}


class NormalizeStep(Step):
    """Clean-up operations applied in the order given; a value that does not parse as a
    date, timestamp or number becomes null (typecast is the step that can fail instead)."""

    def __init__(self, spec: NormalizeTransform) -> None:
        self._fields = spec.fields

    def process(self, batch: pa.Table) -> pa.Table:
        for name, operations in self._fields.items():
            values = column(batch, name, "normalize field")
            for operation in operations:
                try:
                    values = _NORMALIZERS[operation](values)
                except TransformError as exc:
                    raise TransformError(f"{operation!r} on column {name!r} failed: {exc}") from exc
            batch = replace_column(batch, name, values)
        return batch


class DeriveStep(Step):
    """New (or replaced) columns computed in order, so a later one may use an earlier one."""

    def __init__(self, spec: DeriveTransform) -> None:
        self._columns = {name: parse_expression(text) for name, text in spec.columns.items()}

    def process(self, batch: pa.Table) -> pa.Table:
        for name, expression in self._columns.items():
            try:
                values = expression.evaluate(batch)
            except (TransformError, pa.ArrowException) as exc:
                raise TransformError(
                    f"column {name!r} = {expression.text!r} cannot be computed: {exc}"
                ) from exc
            batch = replace_column(batch, name, values)
        return batch
