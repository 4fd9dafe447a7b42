"""Verify: is the target what the source says it should be? Compared by key, row by row.

`verify_pipeline` answers SPEC §3's `POST /pipelines/{id}/verify`, the `summit-etl verify`
command and the pipeline's `source_equal` asset check alike.
"""

from __future__ import annotations

import time
from typing import Any

from summit_etl.config import PipelineConfig
from summit_etl.verify.diff import compare
from summit_etl.verify.plan import VerifyUnsupported, plan

__all__ = ["VerifyUnsupported", "verify_pipeline"]


def verify_pipeline(config: PipelineConfig, summit_url: str) -> dict[str, Any]:
    """`{status: match|differ, sourceRows, targetRows, missing, extra, different, examples,
    durationMs}`; raises VerifyUnsupported when the pipeline cannot be compared."""
    started = time.perf_counter()
    found = compare(plan(config, summit_url))
    differ = found.missing or found.extra or found.different
    return {
        "status": "differ" if differ else "match",
        "sourceRows": found.source_rows,
        "targetRows": found.target_rows,
        "missing": found.missing,
        "extra": found.extra,
        "different": found.different,
        "examples": found.examples,
        "durationMs": round((time.perf_counter() - started) * 1000, 1),
    }
