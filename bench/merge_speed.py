"""Merge speed: Summit's upsert, scd_type1, scd_type2 and delta against a hand-written
staging merge and dlt's merge, on the same changed rows (docs/benchmarks.md, "Merges").

    .venv/bin/python bench/merge_speed.py                       # 1M-row target, all contenders
    .venv/bin/python bench/merge_speed.py --rows 200000 --contenders baseline,summit
    .venv/bin/python bench/merge_speed.py --rows 200000 --service   # baseline, summit, summit_service
    .venv/bin/python bench/merge_speed.py --snapshot --contenders baseline,summit  # full reads
    .venv/bin/python bench/merge_speed.py --snapshot --compare-hashes --contenders baseline,summit

The source (`load_throughput.py`'s generator plus an `updated_at` column) is generated once
and copied into the target database as the target's before-image; then a tenth of the
source changes: updates of rows spread over the key range and a few inserts (all with an
`updated_at` past the watermark), and, in a second copy read in full by delta, a few deletes.
Per strategy each contender starts from the before-image restored untimed, reads what a
real operator's merge reads (upsert, scd_type1/2: the changed rows by watermark; delta: the
full snapshot, the only read in which deleted rows show) and merges them:

- baseline: psycopg COPY BINARY of the read into a TEMP staging table, then one
  `INSERT ... SELECT ... ON CONFLICT (id) DO UPDATE SET ...` into the keyed target (delta:
  and `DELETE ... WHERE NOT EXISTS` in the staging table); the issue's anchor for every strategy;
- summit: `run_pipeline` with the strategy, incremental from a stored watermark (delta: full);
- summit_service: the same pipeline through a `summit-etl serve` started for it
  (bench/service.py): created with POST /pipelines, timed from POST .../execute until the
  run record is terminal, the engine's own time (totalDurationMs) beside it;
- dlt: `sql_table` with `incremental("updated_at")`, write_disposition merge (upsert:
  strategy upsert; scd_type1: delete-insert; scd_type2: scd2; delta: not offered by dlt's
  merge without a delete-flag column), into a dataset its own untimed first run loaded.

With `--snapshot` every strategy reads the full snapshot, as delta does (a daily full export
merged by key: nine rows in ten unchanged); but for delta, the keys the snapshot lacks keep
their target rows. dlt is not run then (its incremental read is what it is measured on).
With `--compare-hashes` Summit's full reads (delta's, or every strategy's with `--snapshot`)
set `extraction.compareHashes`: a hash of each row is compared with the target's first, and
only the new and changed rows travel (summit_etl/extract/changed.py).

Every result is checked key by key against its source (count and an order-free hash of
every row; scd_type2: the current versions, plus one closed version per updated key); a
mismatch of Summit (either way) or the baseline exits 1, dlt's is reported in the table (its merge
rewrites json values: keys other rows have are added as null).
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from load_throughput import (
    SOURCE_COLUMNS,
    SOURCE_DB,
    SOURCE_ROWS,
    SUMMIT_DB,
    TARGET_DB,
    BenchmarkError,
    database_url,
    dlt_target_url,
    prepare_databases,
    print_rows,
    url_form,
    wait_for_quiet,
)
from psycopg import sql
from service import Service, ServiceError, serving

STRATEGIES = ("upsert", "scd_type1", "scd_type2", "delta")
CONTENDERS = ("baseline", "summit", "dlt", "summit_service")
# Summit through a `summit-etl serve` started once for every strategy (bench/service.py),
# after the in-process contenders so that its idle daemon does not share the cores with them.
SERVICE = "summit_service"
TARGET_RATIO = 2.0  # Summit ÷ baseline, the target
SCHEMA = "bench"
DLT_SCHEMA = "bench_dlt"
TABLE = "dst"
BATCH_ROWS = 50_000
WATERMARK = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
READY_MARK = "summit merge bench: changes applied"
SNAPSHOT_LACKS = "id % 1000 = 7"  # the rows deleted from the source, as the snapshot shows
# (name, type) of every column: the hash casts each one, so a contender that stores a
# column in another type (dlt: text for varchar) still hashes as the source does.
COLUMNS = (
    ("id", "bigint"), ("quantity", "integer"), ("name", "text"), ("code", "text"),
    ("amount", "numeric(12,2)"), ("created_at", "timestamptz"), ("active", "boolean"),
    ("payload", "jsonb"), ("score", "double precision"), ("day", "date"),
    ("updated_at", "timestamptz"),
)
DLT_MERGE = {"upsert": "upsert", "scd_type1": "delete-insert", "scd_type2": "scd2"}


@dataclass(frozen=True)
class Names:
    rows: int
    snapshot: bool = False  # every strategy reads the full snapshot (`--snapshot`)
    compare_hashes: bool = False  # Summit's full reads compare row hashes first

    @property
    def source(self) -> str:  # upserts and inserts applied; read by watermark
        return f"merge_src_{self.rows}"

    @property
    def snapshot_table(self) -> str:  # the source less a few deleted rows; read in full by delta
        return f"merge_snap_{self.rows}"

    @property
    def before(self) -> str:  # in the target database: the target as it was before the changes
        return f"merge_before_{self.rows}"

    def read_table(self, strategy: str) -> str:
        return self.snapshot_table if not self.incremental(strategy) else self.source

    def incremental(self, strategy: str) -> bool:
        return strategy != "delta" and not self.snapshot


def ident(schema: str, table: str) -> sql.Identifier:
    return sql.Identifier(schema, table)


def changes(rows: int) -> tuple[int, int, int]:
    """(updated, inserted, deleted) rows for a source of `rows`: 10% changed in all."""
    return rows // 10 - rows // 1000, rows // 1000, rows // 1000


# --- data ------------------------------------------------------------------------------


def prepare(names: Names) -> None:
    """Source, snapshot and before-image, built once (the source's comment says so)."""
    prepare_databases()
    src_url, dst_url = database_url(SOURCE_DB), database_url(TARGET_DB)
    with psycopg.connect(src_url, autocommit=True) as conn:
        mark = conn.execute(
            "SELECT obj_description(to_regclass(%s), 'pg_class')", (f"public.{names.source}",)
        ).fetchone()
    with psycopg.connect(dst_url, autocommit=True) as conn:
        before = conn.execute("SELECT to_regclass(%s)", (f"public.{names.before}",)).fetchone()
    if mark and mark[0] == READY_MARK and before and before[0]:
        print(f"source public.{names.source}: already prepared", flush=True)
        return
    rows = names.rows
    updated, inserted, _ = changes(rows)
    print(f"preparing {rows:,}-row source, snapshot and before-image ...", flush=True)
    started = time.perf_counter()
    source, snapshot, before = (
        ident("public", names.source), ident("public", names.snapshot_table), ident("public", names.before)
    )
    with psycopg.connect(src_url, autocommit=True) as conn:
        for table in (source, snapshot):
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
        conn.execute(
            sql.SQL("CREATE TABLE {} ({}, updated_at timestamptz NOT NULL)").format(
                source, SOURCE_COLUMNS
            )
        )
        # The generator's rows with `updated_at` = `created_at`, all before the watermark.
        conn.execute(
            sql.SQL(
                "INSERT INTO {} SELECT g.*, timestamptz '2024-01-01 00:00:00+00' "
                "+ g.i * interval '1 second' FROM ({}) AS g"
            ).format(
                source, SOURCE_ROWS
            ),
            (rows,),
        )
        conn.execute(sql.SQL("VACUUM (FREEZE, ANALYZE) {}").format(source))
    with psycopg.connect(dst_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(before))
        conn.execute(
            sql.SQL("CREATE TABLE {} ({}, updated_at timestamptz NOT NULL)").format(
                before, SOURCE_COLUMNS
            )
        )
    copy_between(
        sql.SQL("COPY {} TO STDOUT (FORMAT binary)").format(source),
        sql.SQL("COPY {} FROM STDIN (FORMAT binary)").format(before),
    )
    with psycopg.connect(dst_url, autocommit=True) as conn:
        conn.execute(sql.SQL("VACUUM (FREEZE, ANALYZE) {}").format(before))
    with psycopg.connect(src_url, autocommit=True) as conn:
        # Updates spread over the whole key range (one id in ten, past the first 1%), each
        # a real change of several columns, stamped past the watermark.
        conn.execute(
            sql.SQL(
                "UPDATE {} SET quantity = quantity + 1, name = name || ' v2', "
                "amount = amount + 1, payload = payload || '{{\"v\": 2}}', "
                "updated_at = %s + id * interval '1 millisecond' "
                "WHERE id %% 10 = 3 AND id > %s"
            ).format(source),
            (WATERMARK, rows // 100),
        )
        conn.execute(
            sql.SQL(
                "INSERT INTO {} SELECT g.*, %s + g.i * interval '1 millisecond' "
                "FROM ({}) AS g WHERE g.i > %s"
            ).format(source, SOURCE_ROWS),
            (WATERMARK, rows + inserted, rows),
        )
        conn.execute(sql.SQL("CREATE INDEX ON {} (updated_at)").format(source))
        conn.execute(
            sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(snapshot, source)
        )
        conn.execute(
            sql.SQL("INSERT INTO {} SELECT * FROM {} WHERE NOT ({})").format(
                snapshot, source, sql.SQL(SNAPSHOT_LACKS)
            )
        )
        for table in (source, snapshot):
            conn.execute(sql.SQL("VACUUM (FREEZE, ANALYZE) {}").format(table))
        count = conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE updated_at >= %s").format(source), (WATERMARK,)
        ).fetchone()
        if count is None or count[0] != updated + inserted:
            raise BenchmarkError(f"source has {count} changed rows, expected {updated + inserted}")
        conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(source, sql.Literal(READY_MARK)))
    print(f"prepared in {time.perf_counter() - started:.1f} s", flush=True)


def copy_between(out: sql.Composable, into: sql.Composable, *, cursor: Any = None) -> int:
    """COPY BINARY from the source database into the target database, chunks unchanged
    (on `cursor`'s session when given, so a TEMP table there is visible)."""
    with psycopg.connect(database_url(SOURCE_DB)) as src, src.cursor().copy(out) as copy_out:
        if cursor is not None:
            with cursor.copy(into) as copy_in:
                for chunk in copy_out:
                    copy_in.write(chunk)
            return int(cursor.rowcount)
        with psycopg.connect(database_url(TARGET_DB)) as dst, dst.cursor() as cur:
            with cur.copy(into) as copy_in:
                for chunk in copy_out:
                    copy_in.write(chunk)
            return int(cur.rowcount)


def reset_target(names: Names, scd2: bool) -> None:
    """`bench.dst` as the before-image (scd_type2: each row an open version), keyed as
    Summit keys its merge targets, vacuumed and frozen so no contender pays hint bits."""
    target = ident(SCHEMA, TABLE)
    with psycopg.connect(database_url(TARGET_DB), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
        history = sql.SQL(
            ", effective_from timestamptz NOT NULL DEFAULT now(), effective_to timestamptz, "
            "is_current boolean NOT NULL DEFAULT true" if scd2 else ""
        )
        conn.execute(
            sql.SQL("CREATE TABLE {} (LIKE {}{})").format(
                target, ident("public", names.before), history
            )
        )
        conn.execute(sql.SQL("INSERT INTO {} SELECT * FROM {}").format(
            target, ident("public", names.before)))
        if scd2:
            conn.execute(
                sql.SQL("CREATE UNIQUE INDEX dst_current_key ON {} (id) WHERE is_current").format(
                    target
                )
            )
        else:
            conn.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (id)").format(target))
        conn.execute(sql.SQL("VACUUM (FREEZE, ANALYZE) {}").format(target))
        conn.execute("CHECKPOINT")


# --- contenders --------------------------------------------------------------------------


def read_query(names: Names, strategy: str) -> sql.Composed:
    table = ident("public", names.read_table(strategy))
    if names.incremental(strategy):
        return sql.SQL("SELECT * FROM {} WHERE updated_at >= {}").format(
            table, sql.Literal(WATERMARK)
        )
    return sql.SQL("SELECT * FROM {}").format(table)


def run_baseline(names: Names, strategy: str) -> int:
    """COPY the read into a TEMP staging table, one INSERT ... ON CONFLICT DO UPDATE
    (delta: then DELETE the keys the snapshot lacks), one transaction."""
    target, stage = ident(SCHEMA, TABLE), sql.Identifier("stage")
    tracked = [name for name, _ in COLUMNS if name != "id"]
    with psycopg.connect(database_url(TARGET_DB)) as dst, dst.cursor() as cursor:
        cursor.execute(
            sql.SQL("CREATE TEMP TABLE {} (LIKE {}) ON COMMIT DROP").format(stage, target)
        )
        read = copy_between(
            sql.SQL("COPY ({}) TO STDOUT (FORMAT binary)").format(read_query(names, strategy)),
            sql.SQL("COPY {} FROM STDIN (FORMAT binary)").format(stage),
            cursor=cursor,
        )
        cursor.execute(
            sql.SQL(
                "INSERT INTO {t} SELECT * FROM {s} ON CONFLICT (id) DO UPDATE SET {sets}"
            ).format(
                t=target, s=stage,
                sets=sql.SQL(", ").join(
                    sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in tracked
                ),
            )
        )
        if strategy == "delta":
            cursor.execute(
                sql.SQL("DELETE FROM {} AS t WHERE NOT EXISTS (SELECT 1 FROM {} AS s "
                        "WHERE s.id = t.id)").format(target, stage)
            )
        dst.commit()
    return read


def summit_document(names: Names, strategy: str) -> dict[str, Any]:
    """Summit's pipeline for a strategy: incremental by `updated_at` (delta: full)."""
    incremental = names.incremental(strategy)
    extraction: dict[str, Any] = {"strategy": "full", "batchSize": BATCH_ROWS}
    if incremental:
        extraction.update(strategy="incremental", incrementalColumn="updated_at")
    elif names.compare_hashes:
        extraction["compareHashes"] = True
    return {
        "id": f"bench-merge-{strategy.replace('_', '-')}",
        "name": f"Merge benchmark {strategy}",
        "source": {"url": url_form(SOURCE_DB), "table": f"public.{names.read_table(strategy)}"},
        "extraction": extraction,
        **({"watermark": {"type": "timestamp", "lookbackWindow": 0}} if incremental else {}),
        "loading": {
            "strategy": strategy,
            "targetTable": f"{SCHEMA}.{TABLE}",
            "targetUrl": url_form(TARGET_DB),
            "upsertKey": ["id"],
            "createTable": False,
        },
    }


def seed_watermark(summit_url: str, names: Names, strategy: str) -> None:
    """The previous run's watermark (everything before the changes) in that summit database."""
    from summit_etl.store import watermarks
    from summit_etl.store.db import connect

    document = summit_document(names, strategy)
    with connect(summit_url) as summit:
        summit.execute("DELETE FROM etl_watermarks WHERE pipeline_id = %s", (document["id"],))
        if names.incremental(strategy):
            watermarks.record(
                summit, pipeline_id=document["id"], source_table=document["source"]["table"],
                column="updated_at", value=WATERMARK.isoformat(), records_loaded=names.rows,
                run_id="bench-setup",
            )


def run_summit(names: Names, strategy: str) -> int:
    from summit_etl.engine import RunRequest, run_pipeline
    from summit_etl.registry import parse_pipeline

    config = parse_pipeline(summit_document(names, strategy), "bench/merge_speed.py")
    seed_watermark(url_form(SUMMIT_DB), names, strategy)
    started = time.perf_counter()
    outcome = run_pipeline(config, RunRequest(run_id=f"bench-{uuid.uuid4().hex[:12]}"),
                           url_form(SUMMIT_DB))
    _TIMED["summit"] = time.perf_counter() - started
    if outcome.status.value != "success":
        raise BenchmarkError(f"summit {strategy} run ended {outcome.status}: {outcome.errors}")
    _METRICS.update(outcome.metrics)
    return outcome.counts.records_extracted


def run_service(svc: Service, names: Names, strategy: str) -> int:
    """The same pipeline created through the service's API, timed from POST .../execute
    until its run record is terminal (run start included; the engine's own time is the
    record's totalDurationMs, in the table's engine column)."""
    with svc.pipeline(summit_document(names, strategy)) as pipeline_id:
        seed_watermark(svc.summit_url, names, strategy)
        wait_for_quiet()  # the code-location reload that the creation caused
        run = svc.execute(pipeline_id)
    run.check()
    _TIMED[SERVICE] = run.seconds
    _METRICS.update(run.metrics)
    _METRICS.update(run.phases)
    return run.records_extracted


def dlt_pipeline(pipelines_dir: str) -> Any:
    import dlt

    return dlt.pipeline(
        pipeline_name="summit_bench_merge",
        pipelines_dir=pipelines_dir,
        destination=dlt.destinations.postgres(credentials=dlt_target_url()),
        dataset_name=DLT_SCHEMA,
    )


def run_dlt(names: Names, strategy: str) -> int:
    """An untimed first run loads the before-image with the same disposition (dlt merges
    only into tables it created), then the timed run reads the changes incrementally."""
    import dlt
    from dlt.sources.sql_database import sql_table

    disposition = {"disposition": "merge", "strategy": DLT_MERGE[strategy]}
    with psycopg.connect(database_url(TARGET_DB), autocommit=True) as conn:
        for schema in (DLT_SCHEMA, f"{DLT_SCHEMA}_staging"):  # dlt merges through the latter
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    with tempfile.TemporaryDirectory(prefix="summit_bench_dlt_") as pipelines_dir:
        first = sql_table(credentials=url_form(TARGET_DB, "postgresql+psycopg"),
                          table=names.before, schema="public", backend="pyarrow",
                          chunk_size=BATCH_ROWS)
        dlt_pipeline(pipelines_dir).run(
            first, table_name=TABLE, write_disposition=disposition, primary_key="id",
            loader_file_format="csv",
        ).raise_on_failed_jobs()
        with psycopg.connect(database_url(TARGET_DB), autocommit=True) as conn:
            conn.execute(sql.SQL("VACUUM (FREEZE, ANALYZE) {}").format(ident(DLT_SCHEMA, TABLE)))
            conn.execute("CHECKPOINT")
        wait_for_quiet()
        started = time.perf_counter()
        changed = sql_table(
            credentials=url_form(SOURCE_DB, "postgresql+psycopg"), table=names.source,
            schema="public", backend="pyarrow", chunk_size=BATCH_ROWS,
            incremental=dlt.sources.incremental("updated_at", initial_value=WATERMARK),
        )
        pipeline = dlt_pipeline(pipelines_dir)
        pipeline.run(
            changed, table_name=TABLE, write_disposition=disposition, primary_key="id"
        ).raise_on_failed_jobs()
        _TIMED["dlt"] = time.perf_counter() - started
        counts = pipeline.last_trace.last_normalize_info.row_counts
    return int(counts.get(TABLE, 0))


_TIMED: dict[str, float] = {}  # a contender that times only part of its call says so here
_METRICS: dict[str, float] = {}
RUNNERS: dict[str, Callable[[Names, str], int]] = {
    "baseline": run_baseline, "summit": run_summit, "dlt": run_dlt,
}


# --- verification ------------------------------------------------------------------------


def row_hash(table: sql.Identifier, where: str) -> sql.Composed:
    """count(*) and an order-free sum of every row's md5, each column cast as the source has it."""
    row = sql.SQL(", ").join(
        sql.SQL("{}::{}").format(sql.Identifier(name), sql.SQL(kind)) for name, kind in COLUMNS
    )
    return sql.SQL(
        "SELECT count(*), sum(('x' || left(md5(ROW({})::text), 15))::bit(60)::bigint) FROM {}{}"
    ).format(row, table, sql.SQL(where))


def fingerprint(url: str, table: sql.Identifier, where: str = "") -> tuple[int, int]:
    with psycopg.connect(url) as conn:
        found = conn.execute(row_hash(table, where)).fetchone()
    assert found is not None
    return int(found[0]), int(found[1] or 0)


def verify(names: Names, strategy: str, contender: str) -> str | None:
    """None when the target holds exactly the source's rows, else what differs."""
    # A snapshot merged by a strategy that keeps the keys it lacks: the source less the new
    # keys the snapshot lacks (the old ones it lacks never changed, so the source has them).
    keeps_absent = names.snapshot and strategy != "delta"
    expected = fingerprint(
        database_url(SOURCE_DB),
        ident("public", names.source if keeps_absent else names.read_table(strategy)),
        f" WHERE NOT (id > {names.rows} AND {SNAPSHOT_LACKS})" if keeps_absent else "",
    )
    updated, _, _ = changes(names.rows)
    schema = DLT_SCHEMA if contender == "dlt" else SCHEMA
    scd2 = strategy == "scd_type2" and contender != "baseline"
    current = ("" if not scd2 else
               " WHERE _dlt_valid_to IS NULL" if contender == "dlt" else " WHERE is_current")
    found = fingerprint(database_url(TARGET_DB), ident(schema, TABLE), current)
    if found != expected:
        return f"(count, hash) {found} != source {expected}"
    if scd2:
        closed = " WHERE _dlt_valid_to IS NOT NULL" if contender == "dlt" else " WHERE NOT is_current"
        history = fingerprint(database_url(TARGET_DB), ident(schema, TABLE), closed)[0]
        if history != updated:
            return f"{history} closed versions, expected {updated}"
    return None


# --- the run -----------------------------------------------------------------------------


@dataclass
class Result:
    strategy: str
    contender: str
    rows: int
    seconds: float
    wrong: str | None  # what the check found; None: the target equals the source
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds


def measure(names: Names, strategy: str, contender: str,
            runner: Callable[[Names, str], int]) -> Result:
    reset_target(names, scd2=strategy == "scd_type2" and contender in ("summit", SERVICE))
    wait_for_quiet()
    print(f"{strategy}: {contender} ...", flush=True)
    _TIMED.clear()
    _METRICS.clear()
    started = time.perf_counter()
    rows = runner(names, strategy)
    seconds = _TIMED.get(contender, time.perf_counter() - started)
    result = Result(strategy, contender, rows, seconds, verify(names, strategy, contender),
                    dict(_METRICS))
    print(f"  {seconds:.2f} s, {rows:,} rows read, {result.rows_per_second:,.0f} rows/s, "
          f"check: {result.wrong or 'ok'}", flush=True)
    if result.wrong and contender != "dlt":
        raise BenchmarkError(f"{strategy}/{contender}: {result.wrong}")
    return result


def report(results: list[Result]) -> None:
    header = ("strategy", "contender", "rows read", "seconds", "engine s", "rows/s", "check",
              "Summit ÷ contender")
    table = [header]
    order = {(s, c): n for n, (s, c) in enumerate(
        (s, c) for s in STRATEGIES for c in CONTENDERS)}
    results = sorted(results, key=lambda r: order[(r.strategy, r.contender)])
    for r in results:
        summit = next((s for s in results if s.strategy == r.strategy and s.contender == "summit"),
                      None)
        ratio = "-"
        baseline = next((b for b in results if b.strategy == r.strategy and b.contender == "baseline"),
                        None)
        if r.contender == SERVICE and baseline is not None:
            # What the goal asks of the service too: the baseline's time over the client's wait.
            value = baseline.seconds / r.seconds
            ratio = (f"baseline ÷ service {value:.2f}× "
                     f"(target ≥ {TARGET_RATIO:g}×: {'met' if value >= TARGET_RATIO else 'MISSED'})")
        elif summit is not None and r is not summit:
            value = r.seconds / summit.seconds
            ratio = f"{value:.2f}×"
            if r.contender == "baseline":
                ratio += f" (target ≥ {TARGET_RATIO:g}×: {'met' if value >= TARGET_RATIO else 'MISSED'})"
        engine = r.metrics.get("totalDurationMs")
        table.append((r.strategy, r.contender, f"{r.rows:,}", f"{r.seconds:.2f}",
                      "-" if engine is None else f"{engine / 1000:.2f}",
                      f"{r.rows_per_second:,.0f}", "WRONG" if r.wrong else "ok", ratio))
    print_rows(table)
    if any(r.contender == SERVICE for r in results):
        print(f"{SERVICE}: seconds from POST /pipelines/{{id}}/execute until the run record is "
              "terminal, through summit-etl serve; engine s: the run's metrics.totalDurationMs.")
    for r in results:
        if r.wrong:
            print(f"{r.strategy}/{r.contender} target differs from its source: {r.wrong}")
    for r in results:
        if r.metrics:
            stages = ", ".join(f"{k} {v:,.0f}" for k, v in r.metrics.items())
            print(f"{r.contender} {r.strategy} stage metrics: {stages}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="target rows (default 1M)")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--snapshot", action="store_true",
                        help="every strategy reads the full snapshot, as delta does")
    parser.add_argument("--compare-hashes", action="store_true",
                        help="Summit's full reads (delta; every strategy with --snapshot) "
                        "read only the rows whose hash differs from the target's "
                        "(extraction.compareHashes)")
    parser.add_argument("--service", action="store_true",
                        help=f"only {SERVICE} (through summit-etl serve) and its anchors "
                        "baseline,summit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    strategies = [s for s in args.strategies.split(",") if s]
    contenders = (["baseline", "summit", SERVICE] if args.service
                  else [c for c in args.contenders.split(",") if c])
    unknown = set(strategies) - set(STRATEGIES) | set(contenders) - set(CONTENDERS)
    if unknown:
        print(f"unknown strategies or contenders: {sorted(unknown)}", file=sys.stderr)
        return 2
    if args.snapshot and "dlt" in contenders:
        print("--snapshot: dlt is measured on its incremental read; leave it out of "
              "--contenders", file=sys.stderr)
        return 2
    # Imported before any clock starts.
    import summit_etl.engine  # noqa: F401

    if "dlt" in contenders:
        os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
        os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")  # its per-chunk type warnings
        # scd2 needs a row hash in `_dlt_id`, which arrow tables only get when asked.
        os.environ.setdefault("NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_ID", "true")
        import dlt.sources.sql_database  # noqa: F401
    names = Names(args.rows, args.snapshot, args.compare_hashes)
    results = []
    try:
        prepare(names)
        for strategy in strategies:
            for contender in contenders:
                if contender == SERVICE or (contender == "dlt" and strategy not in DLT_MERGE):
                    continue
                results.append(measure(names, strategy, contender, RUNNERS[contender]))
        if SERVICE in contenders:
            with serving() as svc:
                for strategy in strategies:
                    results.append(measure(names, strategy, SERVICE,
                                           functools.partial(run_service, svc)))
    except (BenchmarkError, ServiceError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if results:
            print()
            report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
