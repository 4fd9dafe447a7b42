"""Schema contracts (`schemaChanges: evolve | freeze | fail`): what a batch load does when
the incoming columns no longer match the target's.

- evolve (default for targets Summit created): new columns are added to the target,
  widening type changes are applied (int → bigint, varchar(n) → longer or text, numeric
  precision up, real → double precision); a column gone from the source stays in the
  target and receives NULL; a type the target cannot be widened to fails the run.
- freeze (default for other targets): the target keeps its columns; changes are reported.
- fail: any change fails the run, naming the column.

Every change found is returned for recording (etl_schema_changes, the run's log and its
Dagster materialization).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum

import psycopg
import pyarrow as pa
from psycopg import sql

from summit_etl.extract.arrow import SOURCE_COLUMN
from summit_etl.identifiers import TableName
from summit_etl.load.target import CREATED_MARK, SCD2_COLUMNS, TargetColumn, define_types, execute
from summit_etl.load.types import column_ddl


class SchemaChanges(StrEnum):
    evolve = "evolve"
    freeze = "freeze"
    fail = "fail"


class SchemaContractError(ValueError):
    """The source's schema changed in a way the pipeline's contract does not allow."""

    def __init__(self, message: str, changes: list[SchemaChange]) -> None:
        self.changes = changes  # recorded even though the run fails
        super().__init__(message)


@dataclass(frozen=True)
class SchemaChange:
    column: str
    change: str  # added | dropped | retyped
    source_type: str | None
    target_type: str | None
    action: str  # added_column | widened | kept | ignored | failed

    def as_dict(self) -> dict[str, str | None]:
        return asdict(self)


def mode_for(configured: str | None, conn: psycopg.Connection, table: TableName) -> SchemaChanges:
    """The configured contract, else evolve for a target Summit created, freeze otherwise."""
    if configured is not None:
        return SchemaChanges(configured)
    rows = execute(
        conn,
        sql.SQL("SELECT obj_description(to_regclass({}), 'pg_class')").format(
            sql.Literal(table.ident.as_string(None))
        ),
    )
    created = bool(rows) and rows[0][0] == CREATED_MARK
    return SchemaChanges.evolve if created else SchemaChanges.freeze


def _source_type(field: pa.Field) -> str | None:
    """The source column's declared type, while the field still holds what was read."""
    raw = (field.metadata or {}).get(SOURCE_COLUMN)
    if raw is None:
        return None
    declared = json.loads(raw)
    return str(declared["sql_type"]) if declared["arrow"] == str(field.type) else None


_SHAPE = re.compile(r"^(?P<base>[a-z ]+?)(?:\((?P<args>[\d,]+)\))?$")
_INTEGERS = ["smallint", "integer", "bigint"]


def widens(target: str, source: str) -> bool | None:
    """True: `source` holds more than `target` and the target can be widened to it; False:
    the target already holds every `source` value; None: incompatible (neither holds the
    other's values)."""
    if target == source:
        return False
    t, s = _SHAPE.match(target), _SHAPE.match(source)
    if t is None or s is None:
        return None
    tb, sb = t["base"], s["base"]
    targs = [int(a) for a in t["args"].split(",")] if t["args"] else []
    sargs = [int(a) for a in s["args"].split(",")] if s["args"] else []
    if tb in _INTEGERS and sb in _INTEGERS:
        return _INTEGERS.index(sb) > _INTEGERS.index(tb)
    if {tb, sb} == {"real", "double precision"}:
        return sb == "double precision"
    if tb in ("character varying", "text") and sb in ("character varying", "text"):
        t_len = targs[0] if tb == "character varying" and targs else None
        s_len = sargs[0] if sb == "character varying" and sargs else None
        if t_len is None:
            return False
        return s_len is None or s_len > t_len
    if tb == "numeric" and sb == "numeric":
        if not targs:
            return False
        if not sargs:
            return True
        t_scale = targs[1] if len(targs) > 1 else 0
        s_scale = sargs[1] if len(sargs) > 1 else 0
        return not (sargs[0] - s_scale <= targs[0] - t_scale and s_scale <= t_scale)
    if tb == "numeric" and not targs and sb in _INTEGERS:
        return False
    return None


def reconcile(
    conn: psycopg.Connection,
    table: TableName,
    columns: list[TargetColumn],
    incoming: pa.Schema,
    mode: SchemaChanges,
    scd2: bool,
) -> list[SchemaChange]:
    """Find how `incoming` differs from the target's columns and act on it as `mode`
    says; raises SchemaContractError (after nothing was changed) where it must fail."""
    by_name = {c.name: c for c in columns}
    changes: list[SchemaChange] = []
    failures: list[str] = []

    def decide(change: SchemaChange, allowed: bool, why: str) -> None:
        if mode is SchemaChanges.fail or not allowed:
            change = SchemaChange(
                change.column, change.change, change.source_type, change.target_type, "failed"
            )
            failures.append(f"column {change.column!r} {why}")
        changes.append(change)

    for field in incoming:
        if scd2 and field.name in SCD2_COLUMNS:
            continue
        source_type = _source_type(field)
        target = by_name.get(field.name)
        if target is None:
            action = "added_column" if mode is SchemaChanges.evolve else "ignored"
            decide(
                SchemaChange(field.name, "added", source_type, None, action),
                True,
                f"is new in the source ({source_type or field.type})",
            )
            continue
        if source_type is None:
            continue
        wider = widens(target.sql_type, source_type)
        if wider is False:
            continue
        if wider is None:
            decide(
                SchemaChange(field.name, "retyped", source_type, target.sql_type, "kept"),
                mode is SchemaChanges.freeze,
                f"changed type: the source's {source_type} does not fit the target's "
                f"{target.sql_type}",
            )
        else:
            action = "widened" if mode is SchemaChanges.evolve else "kept"
            decide(
                SchemaChange(field.name, "retyped", source_type, target.sql_type, action),
                True,
                f"widened in the source from {target.sql_type} to {source_type}",
            )
    if mode is not SchemaChanges.freeze:
        for column in columns:
            if column.name not in incoming.names and not (scd2 and column.name in SCD2_COLUMNS):
                decide(
                    SchemaChange(column.name, "dropped", None, column.sql_type, "kept"),
                    True,
                    "is gone from the source",
                )
    if failures:
        raise SchemaContractError(
            f"schemaChanges is '{mode.value}' and the source of {table} changed: "
            + "; ".join(failures),
            changes,
        )
    if mode is SchemaChanges.evolve:
        _evolve(conn, table, incoming, changes)
    return changes


def _evolve(
    conn: psycopg.Connection,
    table: TableName,
    incoming: pa.Schema,
    changes: Sequence[SchemaChange],
) -> None:
    for change in changes:
        column = sql.Identifier(change.column)
        if change.change == "added":
            ddl = column_ddl(incoming.field(change.column))
            define_types(conn, [ddl])
            execute(
                conn,
                sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                    table.ident, column, sql.SQL(ddl.sql_type)
                ),
            )
        elif change.change == "retyped" and change.action == "widened":
            execute(
                conn,
                sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {}").format(
                    table.ident, column, sql.SQL(str(change.source_type))
                ),
            )
        elif change.change == "dropped":
            # It stays and receives NULL from now on, so it can no longer be NOT NULL.
            execute(
                conn,
                sql.SQL("ALTER TABLE {} ALTER COLUMN {} DROP NOT NULL").format(
                    table.ident, column
                ),
            )
