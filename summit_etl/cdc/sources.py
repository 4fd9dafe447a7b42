"""One interface over the four CDC strategies, chosen from a pipeline's `cdc` block."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import Any, Protocol

from summit_etl.cdc.changes import ChangeBatch, Offset
from summit_etl.cdc.connections import SourceConnection
from summit_etl.cdc.logical import LogicalCapture, retained_bytes, slot_name
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
    target committed a batch; `release` removes the capture when the pipeline is deleted;
    `held` keeps one source connection for the probes and reads made until it ends.

    A read from no offset starts a new generation: every position it logs carries it, so
    the target's change log never mistakes a new start for a replay of an old one.
    """

    def prepare(self) -> None: ...
    def probe(self, offset: Offset | None) -> str | None: ...
    def read(self, offset: Offset | None) -> Iterator[ChangeBatch]: ...
    def confirm(self, batch: ChangeBatch) -> None: ...
    def release(self) -> None: ...
    def held(self) -> AbstractContextManager[None]: ...


class _Capture(Protocol):
    connection: SourceConnection

    def prepare(self) -> None: ...
    def identity(self) -> str | None: ...
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
        start = offset if offset is not None else Offset(generation=_new_generation())
        return _positioned(self.reader.read(start, self.batch_size))

    def confirm(self, batch: ChangeBatch) -> None:
        return None

    def release(self) -> None:
        return None

    def held(self) -> AbstractContextManager[None]:
        return self.reader.connection.held()


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

    def _current(self, offset: Offset | None, identity: str | None) -> Offset | None:
        """The offset, unless the capture it was read from has been replaced since (a
        capture table or slot created again): its positions restarted, changes were lost."""
        if offset is None or offset.capture is None or offset.capture == identity:
            return offset
        log.warning(
            "CDC capture on the source was replaced: starting again with a snapshot",
            extra={"table": str(self.table), "was": offset.capture, "now": identity},
        )
        return None

    def probe(self, offset: Offset | None) -> str | None:
        current = self._current(offset, self.capture.identity())
        if current is None or not current.snapshot_done:
            return SNAPSHOT
        return self.capture.probe()

    def read(self, offset: Offset | None) -> Iterator[ChangeBatch]:
        identity = self.capture.identity()
        start = self._current(offset, identity)
        if start is None or (not start.snapshot_done and start.generation is None):
            start = Offset(generation=_new_generation())
        start = replace(start, capture=identity)
        if not start.snapshot_done:
            for batch in _positioned(
                snapshot(self.url, self.table, self.keys, self.batch_size, start)
            ):
                yield batch
                start = batch.offset
        yield from _positioned(self.capture.read(start, self.batch_size))

    def confirm(self, batch: ChangeBatch) -> None:
        self.capture.confirm(batch)

    def release(self) -> None:
        self.capture.release()

    def held(self) -> AbstractContextManager[None]:
        return self.capture.connection.held()


def _new_generation() -> str:
    return uuid.uuid4().hex[:12]


def _positioned(batches: Iterator[ChangeBatch]) -> Iterator[ChangeBatch]:
    """Positions qualified by their offset's generation (offsets from before generations
    existed keep the bare positions their change log already holds)."""
    for batch in batches:
        generation = batch.offset.generation
        if generation is not None:
            batch.changes = [
                replace(c, position=f"{generation}/{c.position}") for c in batch.changes
            ]
        yield batch


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
        capture = TriggerCapture(
            url, table, keys, cdc.capture_deletes, cdc.include_old_values, cdc.trigger_level
        )
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


def slot_retention(raws: list[dict[str, Any]], timeout: float = 2.0) -> dict[str, int | None]:
    """Bytes of WAL each log_based pipeline's slot retains, by pipeline id, whether its CDC
    runs or not; None where the source could not be asked (logged)."""
    retention: dict[str, int | None] = {}
    for raw in raws:
        try:
            config = parse_pipeline(raw, "stored pipeline")
        except ConfigError:
            continue
        if config.cdc is None or config.cdc.strategy is not CdcStrategy.log_based:
            continue
        try:
            retention[config.id] = retained_bytes(config.source.url, config.id, timeout)
        except Exception as exc:
            log.warning(
                "could not read replication slot retention",
                extra={"pipelineId": config.id, "slot": slot_name(config.id), "error": str(exc)},
            )
            retention[config.id] = None
    return retention
