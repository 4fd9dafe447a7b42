"""One interface over the four CDC strategies, chosen from a pipeline's `cdc` block."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, Protocol

from summit_etl.cdc.changes import ChangeBatch, Offset
from summit_etl.cdc.logical import LogicalCapture, slot_name
from summit_etl.cdc.polling import PollingReader, snapshot
from summit_etl.cdc.triggers import TriggerCapture
from summit_etl.config import CdcStrategy, PipelineConfig
from summit_etl.identifiers import TableName
from summit_etl.registry import ConfigError, parse_pipeline
from summit_etl.timeouts import timed_url

log = logging.getLogger("summit_etl.cdc")

_CAPTURING = (CdcStrategy.trigger, CdcStrategy.log_based)
SNAPSHOT = "snapshot"  # what a probe reports while the initial snapshot is pending


class CdcConfigError(ValueError):
    """The pipeline cannot do CDC as configured (terminal: fix the configuration)."""


class ChangeSource(Protocol):
    """The changes of one source table for one pipeline.

    `prepare` installs what capture needs on the source (idempotent); `probe` is the
    sensor's cheap question "is there anything past this offset?" (None: no); `read`
    yields batches in order from the target's committed offset; `confirm` runs after the
    target committed a batch; `release` removes the capture when the pipeline is deleted.
    """

    def prepare(self) -> None: ...
    def probe(self, offset: Offset | None) -> str | None: ...
    def read(self, offset: Offset | None) -> Iterator[ChangeBatch]: ...
    def confirm(self, batch: ChangeBatch) -> None: ...
    def release(self) -> None: ...


class _Capture(Protocol):
    def prepare(self) -> None: ...
    def probe(self) -> str | None: ...
    def read(self, offset: Offset, batch_size: int) -> Iterator[ChangeBatch]: ...
    def confirm(self, batch: ChangeBatch) -> None: ...
    def release(self) -> None: ...


class _Polled:
    """`timestamp` and `version`: nothing to install, nothing to release."""

    def __init__(self, reader: PollingReader, batch_size: int) -> None:
        self.reader = reader
        self.batch_size = batch_size

    def prepare(self) -> None:
        return None

    def probe(self, offset: Offset | None) -> str | None:
        return self.reader.probe(offset)

    def read(self, offset: Offset | None) -> Iterator[ChangeBatch]:
        return self.reader.read(offset, self.batch_size)

    def confirm(self, batch: ChangeBatch) -> None:
        return None

    def release(self) -> None:
        return None


class _Captured:
    """`trigger` and `log_based`: an initial snapshot, then what the capture recorded."""

    def __init__(
        self, capture: _Capture, url: str, table: TableName, keys: list[str], batch_size: int
    ) -> None:
        self.capture = capture
        self.url = url
        self.table = table
        self.keys = keys
        self.batch_size = batch_size

    def prepare(self) -> None:
        self.capture.prepare()

    def probe(self, offset: Offset | None) -> str | None:
        if offset is None or not offset.snapshot_done:
            return SNAPSHOT
        return self.capture.probe()

    def read(self, offset: Offset | None) -> Iterator[ChangeBatch]:
        start = offset or Offset()
        if not start.snapshot_done:
            yield from snapshot(self.url, self.table, self.keys, self.batch_size, start)
            start = Offset(start.value, start.lsn, snapshot_done=True)
        yield from self.capture.read(start, self.batch_size)

    def confirm(self, batch: ChangeBatch) -> None:
        self.capture.confirm(batch)

    def release(self) -> None:
        self.capture.release()


def change_source(config: PipelineConfig) -> ChangeSource:
    cdc = config.cdc
    table = config.source.table_name
    if cdc is None or table is None:
        raise CdcConfigError("CDC pipelines need a `cdc` block and a source.table")
    keys = cdc.primary_keys or config.merge_key
    if not keys:
        raise CdcConfigError("CDC needs cdc.primaryKeys (or loading.upsertKey)")
    url = timed_url(config.source.url, config.timeouts)
    if cdc.strategy in (CdcStrategy.timestamp, CdcStrategy.version):
        if not cdc.tracking_column:
            raise CdcConfigError(
                f"cdc.trackingColumn is required for cdc.strategy '{cdc.strategy.value}'"
            )
        timestamp = cdc.strategy is CdcStrategy.timestamp
        reader = PollingReader(url, table, cdc.tracking_column, keys, timestamp=timestamp)
        return _Polled(reader, cdc.batch_size)
    capture: _Capture
    if cdc.strategy is CdcStrategy.trigger:
        capture = TriggerCapture(url, table, keys, cdc.capture_deletes, cdc.include_old_values)
    else:
        capture = LogicalCapture(
            url, table, keys, config.id, cdc.capture_deletes, cdc.include_old_values
        )
    return _Captured(capture, url, table, keys, cdc.batch_size)


def release_capture(raw: dict[str, Any]) -> bool:
    """Remove what a deleted pipeline installed on its source (trigger, replication slot).

    Deleting a pipeline must work even when its source is gone, so a failure is logged
    with what to drop by hand rather than raised. True when something was released.
    """
    try:
        config = parse_pipeline(raw, "deleted pipeline")
    except ConfigError:
        return False  # an invalid configuration never ran, so it installed nothing
    if config.cdc is None or config.cdc.strategy not in _CAPTURING:
        return False
    try:
        change_source(config).release()
    except Exception as exc:
        log.error(
            "could not release CDC capture on the source; drop it by hand",
            extra={
                "pipelineId": config.id,
                "slot": slot_name(config.id),
                "table": config.source.label,
                "error": str(exc),
            },
        )
        return False
    return True
