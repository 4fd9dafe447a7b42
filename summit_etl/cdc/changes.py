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


@dataclass
class ChangeBatch:
    changes: list[Change]
    offset: Offset  # the target's offset once this batch is applied
    # Source-specific: what `ChangeSource.confirm` releases once the target committed.
    release: list[int] = field(default_factory=list)


def json_text(document: dict[str, Any] | None) -> str | None:
    """A document built in Python (decoded from the WAL) as JSON text."""
    return None if document is None else json.dumps(document, separators=(",", ":"))
