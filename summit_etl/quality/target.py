"""Table-level rules (referential, freshness, row_count, custom_sql, and the target side of
`unique`) in SQL on the target.

One definition of each rule's SQL serves both places it runs: inside the load's own
transaction just before it commits (blocking rules, which see the uncommitted rows and
can still roll them back), and in a READ ONLY transaction of its own after the commit
(the rest). Either way the rules run under a statement timeout. After the commit each
rule runs in a savepoint, so one that cannot run fails alone with the database's
message; in the load's transaction it fails the load.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import psycopg
from psycopg import sql

from summit_etl.identifiers import TableName
from summit_etl.load.target import execute
from summit_etl.quality.gate import QualityGateFailure
from summit_etl.quality.rules import CompiledRule
from summit_etl.quality.scoring import RuleOutcome

# Runs one statement on the connection the rules run on; its rows.
Query = Callable[[sql.Composed | sql.SQL], list[tuple[Any, ...]]]

# A user's custom_sql or referential query that runs longer than this is cancelled and its
# rule fails, instead of holding the target's transaction (and its lock) open for hours.
RULE_TIMEOUT_SECONDS = 300

_SAVEPOINT = sql.Identifier("summit_rule")
# Freshness compares a column's newest value with now minus maxAgeSeconds, so it needs a
# column PostgreSQL can subtract an interval from.
_TEMPORAL_TYPES = {"timestamptz", "timestamp", "date"}


class RuleCannotRun(ValueError):
    pass


def rules_on_target(
    rules: list[CompiledRule], *, stream_saw_every_row: bool, merge_key: list[str]
) -> list[CompiledRule]:
    """The table-level rules, and the `unique` rules whose field the target may repeat
    from rows this run did not stream: not after a load that replaced the target (the
    stream saw every row), nor on the key a merge keeps unique."""
    return [
        rule
        for rule in rules
        if rule.on_target
        or (
            rule.rule.rule.type == "unique"
            and not stream_saw_every_row
            and [str(rule.field)] != merge_key
        )
    ]


def check_target_read_only(
    rules: list[CompiledRule],
    outcomes: dict[str, RuleOutcome],
    target_url: str,
    table: TableName,
    row_count: int,
) -> None:
    """`check_target` after the commit, on a connection of its own that cannot write."""
    if not rules:
        return
    with psycopg.connect(target_url) as conn:
        conn.read_only = True
        check_target(rules, outcomes, partial(execute, conn), table, row_count, savepoints=True)


def check_target(
    rules: list[CompiledRule],
    outcomes: dict[str, RuleOutcome],
    query: Query,
    table: TableName,
    row_count: int,
    *,
    savepoints: bool,
) -> None:
    """Run `rules` (see rules_on_target) on `table` inside the transaction `query` runs in,
    and record their outcomes. Without `savepoints`, a rule the database refuses leaves the
    transaction unusable: QualityGateFailure, naming the rule.

    A table-level rule passes or fails as a whole; it weighs as many rows as the run
    loaded, so that its dimension score stays row-weighted like the others. A `unique`
    rule adds the repeats the target holds beyond those its batches already counted.
    """
    if not rules:
        return
    weight = max(row_count, 1)
    [(previous,)] = query(sql.SQL("SELECT current_setting('statement_timeout')"))
    _set_timeout(query, f"{RULE_TIMEOUT_SECONDS}s")
    for rule in rules:
        outcome = outcomes[rule.id]
        if savepoints:
            query(sql.SQL("SAVEPOINT {}").format(_SAVEPOINT))
        try:
            _judge(rule, outcome, query, table, row_count, weight)
        except RuleCannotRun as exc:
            _could_not_run(outcome, weight, exc)
        except psycopg.Error as exc:
            _could_not_run(outcome, weight, exc)
            if not savepoints:
                raise QualityGateFailure(
                    f"quality rule {rule.id!r} could not run in the load's transaction, which "
                    f"rolls back: {_first_line(exc)}"
                ) from exc
            query(sql.SQL("ROLLBACK TO SAVEPOINT {}").format(_SAVEPOINT))
        else:
            if savepoints:
                query(sql.SQL("RELEASE SAVEPOINT {}").format(_SAVEPOINT))
    _set_timeout(query, str(previous))


def _could_not_run(outcome: RuleOutcome, weight: int, reason: BaseException) -> None:
    outcome.add(weight, weight, [])
    outcome.message = f"rule could not run: {_first_line(reason)}"


def _set_timeout(query: Query, value: str) -> None:
    # set_config(..., true) is SET LOCAL: it ends with the transaction, whatever happens.
    query(sql.SQL("SELECT set_config('statement_timeout', {}, true)").format(sql.Literal(value)))


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _judge(
    rule: CompiledRule,
    outcome: RuleOutcome,
    query: Query,
    table: TableName,
    row_count: int,
    weight: int,
) -> None:
    kind = rule.rule.rule.type
    name = outcome.rule.name or rule.id
    if kind == "unique":
        [(repeats,)] = query(_unique_sql(rule, table))
        _add_target_repeats(outcome, int(repeats), table, weight)
    elif kind in ("referential", "custom_sql"):
        # Counts of offending rows: row-weighted like the row rules.
        [(offending,)] = query(_offending_sql(rule, table))
        offending = int(offending)
        outcome.add(max(row_count, offending), offending, [])
        outcome.message = f"{offending} rows of {table} fail {name}"
    else:
        passed, observed = _table_verdict(rule, query, table)
        outcome.add(weight, 0 if passed else weight, [observed] if observed is not None else [])
        if not passed:
            outcome.message = f"{name} failed on {table} (observed {observed})"


def _unique_sql(rule: CompiledRule, table: TableName) -> sql.Composed:
    """Rows repeating an earlier row's value, as the row-level rule counts them."""
    field = sql.Identifier(str(rule.field))
    return sql.SQL("SELECT count({f}) - count(DISTINCT {f}) FROM {t}").format(
        f=field, t=table.ident
    )


def _offending_sql(rule: CompiledRule, table: TableName) -> sql.Composed:
    config = rule.rule.rule.config
    if rule.rule.rule.type == "custom_sql":
        # The user's SELECT of offending rows, `{batch}` standing for the target. It is
        # checked to be one plain SELECT when the pipeline is configured; here it runs
        # under the statement timeout, read-only wherever it has a connection of its own.
        text = str(config["query"]).strip().rstrip(";")
        offending: sql.Composable = sql.SQL(text.replace("{batch}", table.ident.as_string(None)))
    else:  # referential
        offending = sql.SQL(
            "SELECT 1 FROM {t} AS t WHERE t.{f} IS NOT NULL AND NOT EXISTS "
            "(SELECT 1 FROM {ref} AS r WHERE r.{col} = t.{f})"
        ).format(
            t=table.ident,
            f=sql.Identifier(str(rule.field)),
            ref=TableName.parse(config["table"]).ident,
            col=sql.Identifier(config["column"]),
        )
    return sql.SQL("SELECT count(*) FROM ({}) AS offending").format(offending)


def _table_verdict(rule: CompiledRule, query: Query, table: TableName) -> tuple[bool, Any]:
    """(passed, observed value) of a row_count or freshness rule."""
    config = rule.rule.rule.config
    if rule.rule.rule.type == "row_count":
        [(rows,)] = query(sql.SQL("SELECT count(*) FROM {}").format(table.ident))
        rows = int(rows)
        low, high = config.get("min"), config.get("max")
        return (low is None or rows >= low) and (high is None or rows <= high), rows
    # freshness: the newest value against now() - maxAgeSeconds, computed by the server and
    # cast to the column's type, so the comparison means what the same SQL would.
    field = sql.Identifier(str(rule.field))
    newest, fresh = query(
        sql.SQL(
            "SELECT max({f}), "
            "max({f}) >= (clock_timestamp() - make_interval(secs => {age}))::{type} FROM {t}"
        ).format(
            f=field,
            age=sql.Literal(float(config["maxAgeSeconds"])),
            type=sql.SQL(_temporal_type(rule, query, table)),
            t=table.ident,
        )
    )[0]
    return bool(fresh), newest


def _temporal_type(rule: CompiledRule, query: Query, table: TableName) -> str:
    found = query(
        sql.SQL(
            "SELECT t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
            "WHERE a.attrelid = {}::regclass AND a.attname = {} AND NOT a.attisdropped"
        ).format(sql.Literal(table.ident.as_string(None)), sql.Literal(rule.field))
    )
    if not found:
        raise RuleCannotRun(f"{table} has no column {rule.field!r}")
    typname = str(found[0][0])
    if typname not in _TEMPORAL_TYPES:
        raise RuleCannotRun(
            f"column {rule.field!r} of {table} is {typname}: freshness needs a date or timestamp"
        )
    return typname


def _add_target_repeats(outcome: RuleOutcome, repeats: int, table: TableName, weight: int) -> None:
    """Repeats in the target that the batches did not count: values already loaded by
    earlier runs. Repeats the batches counted were loaded too, unless quarantined. With
    no batches judged (a CDC run), the target's repeats weigh like a table rule's."""
    if not outcome.evaluated:
        outcome.add(weight, min(repeats, weight), [])
    else:
        loaded = 0 if outcome.rule.action == "quarantine" else outcome.failed
        extra = min(max(repeats - loaded, 0), outcome.evaluated - outcome.failed)
        outcome.add(0, extra, [])
    if repeats:
        field = outcome.rule.rule.config["field"]
        outcome.message = f"{repeats} rows of {table} repeat an earlier row's {field}"
