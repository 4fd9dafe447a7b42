"""Failpoints: named places in a run where the fault-injection tests make the worker die.

A test sets `SUMMIT_FAILPOINT=<name>` in the environment of the process that runs the
pipeline; reaching that point then kills the process with SIGKILL, exactly as an
out-of-memory kill or a pulled plug would, with no chance to clean up. `<name>@<n>` kills
it the n-th time the process reaches the point instead: a read that starts over (a value
its typed form cannot carry, runs/batch.py) reaches `extraction` and `loading` once per
attempt. Unset (always, in production), a failpoint is a dictionary lookup.

The points (each placed by the module that owns the stage):
- `compared`: `extraction.compareHashes` has compared source and target and holds the
  source's snapshot; nothing is read or written yet;
- `extraction`: the first batch has been read from the source;
- `loading`: the first batch has been handed to the target (mid-COPY), or a CDC batch's
  rows are applied but not yet logged nor committed;
- `quarantine`: quarantined rows have been written, the target has not committed;
- `target-committed`: the target committed; watermark, quarantine confirmation and run
  record are not yet written;
- `cdc-applied`: a CDC batch committed on the target; the source is not yet confirmed
  and `etl_cdc_watermarks` not yet mirrored.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "SUMMIT_FAILPOINT"
POINTS = ("compared", "extraction", "loading", "quarantine", "target-committed", "cdc-applied")

_reached: Counter[str] = Counter()


def failpoint(name: str) -> None:
    """Die here, at once, if the test running this process asked for `name` (or for
    `name@n` and this is the n-th time the process gets here)."""
    point, _, times = os.environ.get(ENV, "").partition("@")
    if point != name:
        return
    _reached[name] += 1
    if not times or _reached[name] == int(times):
        os.kill(os.getpid(), signal.SIGKILL)
