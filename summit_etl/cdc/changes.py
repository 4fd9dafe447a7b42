"""What every CDC strategy produces: ordered changes, in batches, with the offset after them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

INSERT = "INSERT"
UPDATE = "UPDATE"
DELETE = "DELETE"
# A row read whole (polled, or copied by the initial snapshot): whether it inserts or
# updates is decided against the target when it is applied.
UPSERT = "UPSERT"


@dataclass(frozen=True)
class Change:
    """One change; key, old and new are JSON text as PostgreSQL wrote it, so numerics and
    timestamps keep their full precision on the way to the target."""

    position: str  # unique per change: the change log's `source_position`
    operation: str
    key: str
    old: str | None
    new: str | None
    changed_at: datetime | None = None


@dataclass(frozen=True)
class Offset:
    """How far the target has applied a source: committed with the target's rows."""

    value: str | None = None  # tracking value, capture position, or commit LSN
    lsn: str | None = None  # log_based only
    snapshot_done: bool = False
    # Chosen when a pipeline starts from nothing and prefixed to every position it logs,
    # so a later start (recreated pipeline, emptied target) is not taken for a replay.
    generation: str | None = None
    capture: str | None = None  # identity of the source's capture when it was read
    # The initial snapshot's pg_snapshot: captured changes visible in it are already in it.
    snapshot: str | None = None


@dataclass
class ChangeBatch:
    changes: list[Change]
    offset: Offset  # the target's offset once this batch is applied
    # Source-specific: what `ChangeSource.confirm` releases once the target committed.
    release: list[int] = field(default_factory=list)


# One encoder for every change: json.dumps with arguments builds a new one per call.
_COMPACT = json.JSONEncoder(separators=(",", ":"))


def json_text(document: dict[str, Any] | None) -> str | None:
    """A document built in Python (decoded from the WAL) as JSON text."""
    return None if document is None else _COMPACT.encode(document)


def visible_in(snapshot: str, xid: int) -> bool:
    """Whether transaction `xid` (32 bits, as pgoutput sends it) committed before the
    `pg_snapshot` text `xmin:xmax:xip,...` was taken."""
    xmin, xmax, running = snapshot.split(":")
    top = int(xmax)
    # Widen the 32-bit xid with the snapshot's epoch (a wrap just below xmax).
    full = (top & ~0xFFFFFFFF) | xid
    if full >= top + (1 << 31):
        full -= 1 << 32
    if full < int(xmin):
        return True
    return full < top and str(full) not in running.split(",")
