"""The one way this package opens Great Expectations: an in-memory context that sends
no usage statistics, draws no progress bars and does not fingerprint batches."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from great_expectations.data_context import AbstractDataContext


def ephemeral_context() -> AbstractDataContext:
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )
    from great_expectations.execution_engine import pandas_execution_engine

    # Great Expectations md5-hashes every pandas frame smaller than HASH_THRESHOLD bytes,
    # twice per validation, for a batch marker that nothing here reads: about a second per
    # million rows, ten times what the rules themselves cost. A threshold of 0 skips it.
    pandas_execution_engine.HASH_THRESHOLD = 0
    # Its regex rule uses pandas' str.contains, which warns about every pattern with a
    # group; it only tests for a match, so the groups are harmless.
    warnings.filterwarnings(
        "ignore", message="This pattern is interpreted as a regular expression, and has match"
    )
    return gx.get_context(
        mode="ephemeral",
        project_config=DataContextConfig(
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False),
            store_backend_defaults=InMemoryStoreBackendDefaults(),
        ),
    )
