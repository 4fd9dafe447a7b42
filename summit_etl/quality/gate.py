"""The validation stage: row-level rules on every batch as it streams, quarantine, and the
blocking checks that stop the load before it commits."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cached_property
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from summit_etl.config.quality import QualityConfig
from summit_etl.quality.context import ephemeral_context
from summit_etl.quality.rules import (
    CompiledRule,
    compile_rules,
    failure_of,
    row_expectation,
    rule_of,
)
from summit_etl.quality.scoring import (
    EXAMPLES_PER_RULE,
    RuleOutcome,
    dimension_scores,
    overall_score,
)
from summit_etl.quality.statistics import ColumnStatistics

log = logging.getLogger(__name__)


# Great Expectations spends ~0.05 s resolving its metric graph per validation, whatever the
# frame's size, so batches are validated in frames of at least this many rows (or bytes).
FRAME_ROWS = 200_000
FRAME_BYTES = 64 * 1024 * 1024


class QualityGateFailure(RuntimeError):
    """A blocking rule or the minimum overall score failed: nothing is loaded."""


class QuarantineSink(Protocol):
    """Where rows held back by `action: quarantine` go (the `etl_quarantine` table)."""

    def write(
        self, rows: list[dict[str, Any]], failed_rules: list[list[str]], schema: pa.Schema
    ) -> None: ...


class _Expectations:
    """One ephemeral Great Expectations context per run, with the row rules' suites."""

    def __init__(self, rules: list[CompiledRule]) -> None:
        import great_expectations as gx

        self.context = ephemeral_context()
        source = self.context.data_sources.add_pandas("summit")
        self.batches = source.add_dataframe_asset("batch").add_batch_definition_whole_dataframe(
            "all"
        )
        # Quarantine rules need the failing rows' positions (COMPLETE results, slower);
        # the others need only counts and examples.
        self.suites = []
        for name, members, result_format in (
            ("counted", [r for r in rules if r.rule.action != "quarantine"], "BASIC"),
            ("quarantine", [r for r in rules if r.rule.action == "quarantine"], "COMPLETE"),
        ):
            if members:
                suite = gx.ExpectationSuite(name=name)
                for rule in members:
                    suite.add_expectation(row_expectation(rule))
                self.suites.append((self.context.suites.add(suite), result_format))

    def validate(self, frame: Any) -> list[tuple[str, dict[str, Any]]]:
        """(rule id, GE result) for every row rule on this batch."""
        batch = self.batches.get_batch(batch_parameters={"dataframe": frame})
        found = []
        for suite, result_format in self.suites:
            results = batch.validate(
                suite,
                result_format={
                    "result_format": result_format,
                    "partial_unexpected_count": EXAMPLES_PER_RULE,
                    "return_unexpected_index_query": False,
                },
            )
            for result in results.results:
                rule_id = rule_of(result)
                if failure := failure_of(result):
                    raise QualityGateFailure(f"quality rule {rule_id!r} could not run: {failure}")
                per_row = _per_row(bool(result.success), dict(result.result), len(frame))
                found.append((rule_id, per_row))
        return found


class QualityGate:
    def __init__(
        self, quality: QualityConfig, quarantine: QuarantineSink, *, changes: bool = False
    ) -> None:
        """`changes`: the batches are changes to a keyed target (CDC), where a key updated
        twice is no repeat, so `unique` is judged on the target alone."""
        self.quality = quality
        self.rules = compile_rules(quality.rules)
        self.row_rules = [
            r
            for r in self.rules
            if not r.on_target and not (changes and r.rule.rule.type == "unique")
        ]
        self.outcomes = {r.id: RuleOutcome(r.rule) for r in self.rules}
        self.statistics = ColumnStatistics({r.field for r in self.rules if r.field})
        self.quarantine = quarantine
        self.quarantined = 0
        self.delivered = 0  # rows passed on to the load
        # Target-side rules already judged in the load's transaction, before its commit.
        self.decided: set[str] = set()
        self._unique_seen: dict[str, set[Any]] = {
            r.id: set() for r in self.row_rules if r.rule.rule.type == "unique"
        }
        # Only the columns the row rules read go to pandas.
        self.fields = sorted({str(r.field) for r in self.row_rules})

    @cached_property
    def _expectations(self) -> _Expectations | None:
        """Made at the first batch, not with the gate: importing Great Expectations takes
        seconds, and the gate is made before the run is recorded `running`."""
        return _Expectations(self.row_rules) if self.row_rules else None

    def stream(self, batches: Iterable[pa.Table]) -> Iterator[pa.Table]:
        """Checked batches, in order. Each batch is validated on a worker thread while the
        one before it is being loaded and the next one read: Great Expectations' pandas
        work then overlaps the COPYs, which spend their time in C++ and in PostgreSQL."""
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="quality") as worker:
            ahead: Future[pa.Table] | None = None
            for batch in _frames(batches) if self.row_rules else batches:
                checking = worker.submit(self._checked, batch)
                if ahead is not None and (done := ahead.result()).num_rows:
                    self.delivered += done.num_rows
                    yield done
                ahead = checking
            if ahead is not None and (done := ahead.result()).num_rows:
                self.delivered += done.num_rows
                yield done
        # Table-level rules still to come add rows to the score, which may then rise: the
        # minimum score waits for them (see quality/run.py's check before the commit).
        self.enforce(score=not any(r.on_target for r in self.rules))

    def check(self, batch: pa.Table) -> None:
        """Validate one batch that is applied whole or not at all (a CDC batch, inside its
        transaction): blocking rules raise before it is applied."""
        self._checked(batch)
        self.enforce()

    def _checked(self, batch: pa.Table) -> pa.Table:
        self.statistics.observe(batch)
        if self._expectations is None or not batch.num_rows:
            return batch
        return self._validate(batch)

    def _validate(self, batch: pa.Table) -> pa.Table:
        frame = _pandas_frame(batch, self.fields)
        held: dict[int, list[str]] = {}
        by_id = {r.id: r for r in self.row_rules}
        for rule_id, result in self._expectations.validate(frame) if self._expectations else []:
            rule = by_id[rule_id]
            failing = int(result.get("unexpected_count") or 0)
            examples = list(result.get("partial_unexpected_list") or [])
            positions = list(result.get("unexpected_index_list") or [])
            if rule_id in self._unique_seen:
                positions = self._repeats(rule, frame, duplicated_within=failing > 0)
                failing = len(positions)
            self.outcomes[rule_id].add(len(frame), failing, examples)
            if rule.rule.action == "quarantine":
                for position in positions:
                    held.setdefault(int(position), []).append(rule_id)
        if not held:
            return batch
        positions = sorted(held)
        rows = batch.take(pa.array(positions)).to_pylist()
        self.quarantine.write(rows, [held[p] for p in positions], batch.schema)
        self.quarantined += len(positions)
        keep = pc.invert(pc.is_in(pa.array(range(batch.num_rows)), value_set=pa.array(positions)))
        return batch.filter(keep)

    def _repeats(self, rule: CompiledRule, frame: Any, *, duplicated_within: bool) -> list[int]:
        """Rows whose value appeared in an earlier row of the run: in an earlier frame or,
        when Great Expectations found duplicates in this one, earlier in this frame. The
        first occurrence passes, so neither the count nor what quarantine holds back
        depends on where batches end."""
        seen = self._unique_seen[rule.id]
        values = frame[rule.field]
        present = values.notna()
        repeats = values.isin(seen) & present
        if duplicated_within:
            repeats |= values.duplicated(keep="first") & present
        seen.update(values[present].tolist())
        return [int(i) for i in values.index[repeats]]

    def scores(self, penalties: dict[str, float] | None = None) -> tuple[dict[str, float], float]:
        dimensions = dimension_scores(list(self.outcomes.values()), penalties)
        return dimensions, overall_score(dimensions, self.quality.weights)

    def enforce(self, *, score: bool = True) -> None:
        """Blocking rules and (with `score`) the minimum score, checked before the load may
        commit."""
        for outcome in self.outcomes.values():
            if outcome.rule.action == "fail" and outcome.evaluated and not outcome.passed:
                raise QualityGateFailure(
                    f"blocking quality rule {outcome.rule.id!r} failed: pass rate "
                    f"{outcome.pass_rate:.2f}% is below its threshold of "
                    f"{outcome.rule.threshold:g}% "
                    f"({outcome.failed} of {outcome.evaluated} rows)"
                    + (f": {outcome.message}" if outcome.message else "")
                )
        minimum = self.quality.min_overall_score
        if score and minimum is not None:
            _, overall = self.scores()
            if overall < minimum:
                raise QualityGateFailure(
                    f"overall quality score {overall:.2f} is below minOverallScore {minimum:g}"
                )


def _frames(batches: Iterable[pa.Table]) -> Iterator[pa.Table]:
    """The stream's batches joined into frames of about FRAME_ROWS rows or FRAME_BYTES."""
    pending: list[pa.Table] = []
    rows = size = 0
    for batch in batches:
        pending.append(batch)
        rows, size = rows + batch.num_rows, size + batch.nbytes
        if rows >= FRAME_ROWS or size >= FRAME_BYTES:
            yield pa.concat_tables(pending, promote_options="default")
            pending, rows, size = [], 0, 0
    if pending:
        yield pa.concat_tables(pending, promote_options="default")


def _pandas_frame(batch: pa.Table, fields: list[str]) -> Any:
    """The batch's `fields` as pandas, narrow numbers widened: Great Expectations compares
    only int64 and float64 columns vectorised and calls Python once per value for others."""
    if missing := [name for name in fields if name not in batch.column_names]:
        raise QualityGateFailure(
            f"quality rules name fields the data does not have: {', '.join(missing)} "
            f"(columns: {', '.join(batch.column_names)})"
        )
    columns = []
    for name in fields:
        column, field = batch[name], batch.schema.field(name)
        if pa.types.is_integer(field.type) and field.type != pa.int64():
            column = column.cast(pa.int64())
        elif pa.types.is_floating(field.type) and field.type != pa.float64():
            column = column.cast(pa.float64())
        columns.append(column)
    return pa.table(columns, names=fields).to_pandas()


def _per_row(success: bool, result: dict[str, Any], rows: int) -> dict[str, Any]:
    """A result in rows. Some expectations judge a column as a whole — a typed column's
    dtype is in the type list or not — and report no unexpected rows: then every row
    shares the verdict, with the observed dtype as the example."""
    if "unexpected_count" in result:
        return result
    failed = not success
    return {
        "unexpected_count": rows if failed else 0,
        "partial_unexpected_list": [result.get("observed_value")] if failed else [],
        "unexpected_index_list": list(range(rows)) if failed else [],
    }
