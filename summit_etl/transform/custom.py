"""The custom step: a user function `package.module:function` from DataFrame to DataFrame.

The function is named in the pipeline configuration and imported as code of the
deployment (it must be importable by the worker); it runs once per batch. Which modules
a configuration may name is settled when it is validated (config.policy): any for the
operator's files, only allowed prefixes for pipelines created over the API.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import pandas as pd
import pyarrow as pa

from summit_etl.config import CustomTransform
from summit_etl.transform.base import Step
from summit_etl.transform.errors import TransformError


def import_function(path: str) -> Callable[[pd.DataFrame], object]:
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TransformError(f"the module of {path!r} cannot be imported: {exc}") from exc
    function = getattr(module, attribute, None)
    if not callable(function):
        raise TransformError(f"{path!r} is not a function")
    return function


class CustomStep(Step):
    def __init__(self, spec: CustomTransform) -> None:
        self._path = spec.function
        self._function = import_function(spec.function)

    def process(self, batch: pa.Table) -> pa.Table:
        try:
            result = self._function(batch.to_pandas())
        except Exception as exc:  # whatever user code raises is reported as its failure
            raise TransformError(
                f"the function {self._path!r} raised {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(result, pd.DataFrame):
            raise TransformError(
                f"the function {self._path!r} returned {type(result).__name__}, not a DataFrame"
            )
        try:
            return pa.Table.from_pandas(result, preserve_index=False)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise TransformError(
                f"the DataFrame returned by {self._path!r} cannot be converted to Arrow: {exc}"
            ) from exc
