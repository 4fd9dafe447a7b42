"""Transformations (SPEC §2 `transformation`): configured steps over a stream of Arrow batches.

`build_transformer` turns the pipeline's `transformations` list into a `Transformer`,
validating every step up front; `Transformer.stream` applies them batch by batch.
"""

from summit_etl.transform.errors import TransformError
from summit_etl.transform.expressions import Expression, parse_expression
from summit_etl.transform.pipeline import Transformer, build_transformer

__all__ = [
    "Expression",
    "TransformError",
    "Transformer",
    "build_transformer",
    "parse_expression",
]
