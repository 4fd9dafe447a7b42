"""Decoding of the `pgoutput` logical replication protocol (version 1), as returned by
`pg_logical_slot_peek_binary_changes`.

pgoutput ships with PostgreSQL (no extension to install), filters by publication and
skips empty transactions; its messages are length-framed, so decoding needs no
quoting rules. Column values arrive as text and become JSON values by column type.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_INTEGERS = {20, 21, 23, 26}  # int8, int2, int4, oid
_FLOATS = {700, 701}
_NUMERIC, _BOOL, _JSONB = 1700, 16, 3802

Row = dict[str, Any]  # column name -> JSON value


@dataclass
class Relation:
    schema: str
    name: str
    columns: list[tuple[str, int]]  # (name, type oid)
    key: list[str] = field(default_factory=list)  # the replica identity's columns


@dataclass
class RowChange:
    operation: str  # INSERT | UPDATE | DELETE
    relation: Relation
    old: Row | None
    new: Row | None


@dataclass
class Transaction:
    xid: int
    commit_time: datetime
    end_lsn: int = 0
    changes: list[RowChange] = field(default_factory=list)


def lsn_text(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def lsn_value(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def _json_value(type_oid: int, text: str) -> Any:
    """A column's text output as the JSON value `to_jsonb` would give (numerics exact),
    except for json, which keeps its exact text."""
    if type_oid in _INTEGERS:
        return int(text)
    if type_oid == _BOOL:
        return text == "t"
    if type_oid == _JSONB:
        return json.loads(text)
    # json keeps its exact text (a JSON string): see summit_etl/cdc/documents.py.
    if type_oid in _FLOATS or type_oid == _NUMERIC:
        try:
            number = Decimal(text)
        except InvalidOperation:
            return text
        if not number.is_finite():
            return text  # NaN and Infinity are not JSON numbers
        if number == number.to_integral_value() and "." not in text and "e" not in text.lower():
            return int(number)
        # A float when it says exactly the same number; else the exact text.
        return float(text) if Decimal(repr(float(text))) == number else text
    return text


# One compiled struct per wire format: decoding is per column of every change.
_FORMATS = {fmt: struct.Struct(fmt) for fmt in ("!c", "!b", "!h", "!i", "!I", "!q")}


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, fmt: str) -> Any:
        compiled = _FORMATS[fmt]
        (value,) = compiled.unpack_from(self.data, self.at)
        self.at += compiled.size
        return value

    def string(self) -> str:
        end = self.data.index(b"\x00", self.at)
        text = self.data[self.at : end].decode()
        self.at = end + 1
        return text

    def tuple(self, relation: Relation) -> Row:
        data = self.data
        count = self.take("!h")
        row: Row = {}
        for name, type_oid in relation.columns[:count]:
            kind = data[self.at : self.at + 1]
            self.at += 1
            if kind == b"n":
                row[name] = None
            elif kind in (b"t", b"b"):
                size = self.take("!i")
                text = data[self.at : self.at + size].decode()
                self.at += size
                row[name] = _json_value(type_oid, text)
            # b"u": an unchanged TOASTed value is not sent; the column is left out, and
            # `Decoder._fill_unchanged` or the apply supplies the value it still has.
        return row


def _micros(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


class Decoder:
    """Turns peeked messages into whole transactions; relations are remembered per peek."""

    def __init__(self, keys: list[str] | None = None) -> None:
        # A row's identity: the pipeline's primary key where given (under REPLICA IDENTITY
        # FULL, the relation's "key" is every column), else the replica identity's columns.
        self.keys = keys
        self.relations: dict[int, Relation] = {}
        # The newest values of each row changed in this peek, by relation and identity:
        # where a later update leaves a TOASTed value out, it is still the value set here.
        self.latest: dict[tuple[int, Hashable], Row] = {}

    def decode(self, messages: list[bytes]) -> list[Transaction]:
        done: list[Transaction] = []
        current: Transaction | None = None
        for data in messages:
            reader = _Reader(data)
            kind = reader.take("!c")
            if kind == b"B":
                reader.take("!q")  # final LSN; the commit message has the end LSN too
                commit_time = _micros(reader.take("!q"))
                current = Transaction(xid=reader.take("!I"), commit_time=commit_time)
            elif kind == b"C":
                reader.take("!b")
                reader.take("!q")
                if current is None:
                    raise ValueError("pgoutput: commit without begin")
                current.end_lsn = reader.take("!q")
                done.append(current)
                current = None
            elif kind == b"R":
                self._relation(reader)
            elif kind in (b"I", b"U", b"D") and current is not None:
                current.changes.append(self._change(kind, reader))
            # Type ('Y') and origin ('O') messages carry nothing a target needs; truncates
            # are not published (the publication lists insert, update and delete only).
        return done

    def _relation(self, reader: _Reader) -> None:
        oid = reader.take("!I")
        schema, name = reader.string(), reader.string()
        reader.take("!c")  # replica identity
        columns, key = [], []
        for _ in range(reader.take("!h")):
            flags = reader.take("!b")
            column = reader.string()
            columns.append((column, reader.take("!I")))
            reader.take("!i")  # typmod
            if flags & 1:
                key.append(column)
        self.relations[oid] = Relation(schema, name, columns, key)

    def _change(self, kind: bytes, reader: _Reader) -> RowChange:
        oid = reader.take("!I")
        relation = self.relations[oid]
        old: Row | None = None
        new: Row | None = None
        marker = reader.take("!c")
        whole_old = marker == b"O"  # REPLICA IDENTITY FULL; b"K" sends the key only
        if kind == b"I":
            new = reader.tuple(relation)
            self._remember(oid, relation, new)
            return RowChange("INSERT", relation, None, new)
        if marker in (b"K", b"O"):
            old = reader.tuple(relation)
            if kind == b"D":
                self.latest.pop((oid, self._identity(relation, old)), None)
                return RowChange("DELETE", relation, old, None)
            marker = reader.take("!c")
        new = reader.tuple(relation)
        self._fill_unchanged(oid, relation, old if whole_old else None, new)
        self._remember(oid, relation, new)
        return RowChange("UPDATE", relation, old, new)

    def _identity(self, relation: Relation, row: Row) -> Hashable | None:
        keys = self.keys or relation.key
        if not keys or any(k not in row for k in keys):
            return None
        values = tuple(row[k] for k in keys)
        try:
            hash(values)
        except TypeError:  # a jsonb key column decodes to a dict or list
            return json.dumps(values, sort_keys=True)
        return values

    def _remember(self, oid: int, relation: Relation, row: Row) -> None:
        identity = self._identity(relation, row)
        if identity is not None:
            self.latest[(oid, identity)] = row

    def _fill_unchanged(self, oid: int, relation: Relation, old: Row | None, new: Row) -> None:
        """Unchanged TOASTed columns of an update take the value they still have: from the
        old row (REPLICA IDENTITY FULL sends it whole), or from an earlier change to the
        row in this peek. Left out otherwise: the apply keeps the target's value."""
        missing = [name for name, _ in relation.columns if name not in new]
        if not missing:
            return
        identity = self._identity(relation, new)
        earlier = self.latest.get((oid, identity)) if identity is not None else None
        for name in missing:
            if old is not None and name in old:
                new[name] = old[name]
            elif earlier is not None and name in earlier:
                new[name] = earlier[name]
