"""`extraction.compareHashes` on real PostgreSQL: a full read into a merge reads only the
rows whose hash differs from the target's, ends with the same target as the full read
(key by key, run after run), reads in one snapshot, and reads every row, saying why,
wherever it cannot compare exactly."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

from summit_etl.engine import RunRequest, run_pipeline
from summit_etl.extract import changed
from summit_etl.registry import ConfigError, parse_pipeline
from summit_etl.runs.stages import StageFailure
from summit_etl_tests.support import cancel_when, run_sql

ROWS = 2_000

# Types hashed by their own hash function and types hashed by their text (json, arrays,
# varchar), NULLs among them.
SOURCE = """
CREATE TABLE public.src (
    id bigint PRIMARY KEY, name text NOT NULL, code varchar(12), amount numeric(12,2),
    score double precision, at timestamptz, doc jsonb, raw json, tags int[]
)
"""
FILL = f"""
INSERT INTO public.src
SELECT g, 'n' || g, CASE WHEN g % 7 = 0 THEN NULL ELSE 'c' || g END, g / 100.0,
       CASE WHEN g % 11 = 0 THEN NULL ELSE sqrt(g) END,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute',
       jsonb_build_object('g', g), json_build_object('g', g), ARRAY[g, g + 1]
  FROM generate_series(1, {ROWS}) g
"""
# Each change touches one column of a different kind; ten new rows; seven deleted.
CHANGES = (
    "UPDATE public.src SET name = name || ' v2' WHERE id % 100 = 1",
    "UPDATE public.src SET raw = json_build_object('g', id, 'v', 2) WHERE id % 100 = 2",
    "UPDATE public.src SET tags = tags || 9 WHERE id % 100 = 3",
    "UPDATE public.src SET score = 0.1 + 0.2 WHERE id % 100 = 4",
    "UPDATE public.src SET code = 'x' WHERE id % 100 = 7 AND code IS NULL",
    f"INSERT INTO public.src (id, name) SELECT g, 'new' FROM generate_series({ROWS} + 1, "
    f"{ROWS} + 10) g",
    "DELETE FROM public.src WHERE id % 300 = 5",
)
CHANGED = 4 * (ROWS // 100) + len([g for g in range(7, ROWS + 1, 100) if g % 7 == 0]) + 10
DELETED = len(range(5, ROWS + 1, 300))
COLUMNS = "id, name, code, amount, score, at, doc::text, raw::text, tags"


def pipeline(
    source_url: str,
    target_url: str,
    strategy: str,
    target: str,
    compare: bool = True,
    key: tuple[str, ...] = ("id",),
    create: bool = True,
) -> Any:
    return parse_pipeline(
        {
            "id": f"compare_{target.split('.')[1]}",
            "name": "Compared",
            "source": {"url": source_url, "table": "public.src"},
            "extraction": {"strategy": "full", "batchSize": 500, "compareHashes": compare},
            "loading": {
                "strategy": strategy,
                "targetTable": target,
                "targetUrl": target_url,
                "createTable": create,
                "upsertKey": list(key),
            },
        },
        "test",
    )


def run(cfg: Any, summit_url: str) -> Any:
    return run_pipeline(cfg, RunRequest(run_id=str(uuid.uuid4())), summit_url)


def held(url: str, table: str, strategy: str) -> list[tuple]:
    """The target's rows (scd_type2: every version, open or closed, without its times)."""
    history = ", is_current" if strategy == "scd_type2" else ""
    return run_sql(url, f"SELECT {COLUMNS}{history} FROM {table} ORDER BY id{history}")  # noqa: S608


def in_source(url: str, where: str = "TRUE") -> list[tuple]:
    """The source's rows as `held` lists a delta target's."""
    return run_sql(url, f"SELECT {COLUMNS} FROM public.src WHERE {where} ORDER BY id")  # noqa: S608


@pytest.fixture
def source(source_url: str) -> str:
    run_sql(source_url, SOURCE)
    run_sql(source_url, FILL)
    return source_url


@pytest.mark.parametrize("strategy", ["upsert", "scd_type1", "scd_type2", "delta"])
def test_a_compared_read_reads_the_changed_rows_and_ends_as_the_full_read(
    strategy: str, source: str, target_url: str, summit_url: str
) -> None:
    compared = pipeline(source, target_url, strategy, "dw.compared")
    full = pipeline(source, target_url, strategy, "dw.full", compare=False)
    # First run: no target yet, so every row is read.
    assert run(compared, summit_url).counts.records_extracted == ROWS
    run(full, summit_url)
    for change in CHANGES:
        run_sql(source, change)

    outcome = run(compared, summit_url)
    run(full, summit_url)
    assert outcome.counts.records_extracted == CHANGED
    assert outcome.load.deleted == (DELETED if strategy == "delta" else 0)
    assert held(target_url, "dw.compared", strategy) == held(target_url, "dw.full", strategy)
    if strategy == "delta":
        assert held(target_url, "dw.compared", strategy) == in_source(source)

    # The second time round nothing differs: nothing is read, written or deleted.
    again = run(compared, summit_url)
    assert again.counts.records_extracted == 0
    assert (again.load.inserted, again.load.updated, again.load.deleted) == (0, 0, 0)
    assert held(target_url, "dw.compared", strategy) == held(target_url, "dw.full", strategy)


@pytest.mark.parametrize("strategy", ["delta", "scd_type2"])
def test_a_table_larger_than_a_pass_is_compared_range_by_range(
    strategy: str,
    source: str,
    target_url: str,
    summit_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(changed, "_PASS_ROWS", ROWS // 4)
    compared = pipeline(source, target_url, strategy, "dw.compared")
    full = pipeline(source, target_url, strategy, "dw.full", compare=False)
    run(compared, summit_url)
    run(full, summit_url)
    for change in CHANGES:
        run_sql(source, change)
    run_sql(source, "ANALYZE public.src")  # the statistics the passes are sized by
    with caplog.at_level(logging.INFO, logger="summit_etl.extract.changed"):
        outcome = run(compared, summit_url)
    run(full, summit_url)
    passes = [r.passes for r in caplog.records if hasattr(r, "passes")]
    assert passes == [-(-(ROWS + 10 - DELETED) // (ROWS // 4))]  # ceil: 5 ranges
    assert outcome.counts.records_extracted == CHANGED
    assert held(target_url, "dw.compared", strategy) == held(target_url, "dw.full", strategy)


def test_most_rows_changed_are_read_whole_and_say_so(
    source: str, target_url: str, summit_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = pipeline(source, target_url, "delta", "dw.compared")
    run(cfg, summit_url)
    run_sql(source, "UPDATE public.src SET name = name || '!' WHERE id % 10 < 8")
    with caplog.at_level(logging.INFO, logger="summit_etl.extract.changed"):
        outcome = run(cfg, summit_url)
    assert f"reading every row, {8 * ROWS // 10} of the {ROWS} source rows" in caplog.text
    assert outcome.counts.records_extracted == ROWS
    assert held(target_url, "dw.compared", "delta") == in_source(source)


def test_a_query_source_is_compared_as_its_rows(
    source: str, target_url: str, summit_url: str
) -> None:
    doc = pipeline(source, target_url, "delta", "dw.queried").model_dump(by_alias=True)
    doc["source"] = {"url": source, "query": "SELECT * FROM public.src WHERE id <= 1500"}
    cfg = parse_pipeline(doc, "test")
    assert run(cfg, summit_url).counts.records_extracted == 1500
    for change in CHANGES:
        run_sql(source, change)
    outcome = run(cfg, summit_url)
    changed_ids = run_sql(
        source, "SELECT count(*) FROM public.src WHERE id <= 1500 AND id % 100 IN (1, 2, 3, 4)"
    )[0][0] + len([g for g in range(7, 1501, 100) if g % 7 == 0])
    assert outcome.counts.records_extracted == changed_ids
    assert outcome.load.deleted == len(range(5, 1501, 300))
    assert held(target_url, "dw.queried", "delta") == in_source(source, "id <= 1500")


def test_the_rows_are_read_in_the_snapshot_the_hashes_were_read_in(
    source: str, target_url: str, summit_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = pipeline(source, target_url, "delta", "dw.compared")
    run(cfg, summit_url)
    run_sql(source, "UPDATE public.src SET name = 'seen' WHERE id IN (10, 20)")
    find = changed.find_changes

    def then_the_source_moves(*args: Any, **kwargs: Any) -> changed.Changes | None:
        found = find(*args, **kwargs)
        # Committed after the hashes were read, before the rows are: the run must not see it.
        run_sql(source, "UPDATE public.src SET name = 'later' WHERE id = 10")
        run_sql(source, "DELETE FROM public.src WHERE id = 20")
        return found

    monkeypatch.setattr(changed, "find_changes", then_the_source_moves)
    outcome = run(cfg, summit_url)
    assert outcome.counts.records_extracted == 2
    assert run_sql(target_url, "SELECT id, name FROM dw.compared WHERE id IN (10, 20)") == [
        (10, "seen"),
        (20, "seen"),
    ]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            "ALTER TABLE dw.compared ALTER COLUMN code TYPE varchar(20)",
            "the column 'code' is character varying(12) in the source and character "
            "varying(20) in the target",
        ),
        ("ALTER TABLE dw.compared DROP COLUMN raw", "the target lacks the column 'raw'"),
        (
            "ALTER TABLE dw.compared ADD COLUMN note text",
            "the target has the column 'note', which the source lacks",
        ),
    ],
)
def test_a_target_typed_otherwise_is_read_in_full_and_says_why(
    change: str,
    reason: str,
    source: str,
    target_url: str,
    summit_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cfg = pipeline(source, target_url, "upsert", "dw.compared").model_copy(
        update={"schema_changes": "evolve"}
    )
    run(cfg, summit_url)
    run_sql(target_url, change)
    run_sql(source, "UPDATE public.src SET name = 'changed' WHERE id = 1")
    with caplog.at_level(logging.WARNING, logger="summit_etl.extract.changed"):
        outcome = run(cfg, summit_url)
    assert outcome.counts.records_extracted == ROWS
    assert any(reason in r.getMessage() for r in caplog.records), caplog.text
    assert run_sql(target_url, "SELECT name FROM dw.compared WHERE id = 1") == [("changed",)]


# Each key (its columns, their values) with values whose text needs care: a zone, quotes
# and braces, a backslash.
KEYS = {
    "integer": ("k int4", "g"),
    "uuid": ("k uuid", "md5(g::text)::uuid"),
    "timestamptz": ("k timestamptz", "timestamptz '2024-03-31 01:30:00+02' + g * interval '1 h'"),
    "bytea": ("k bytea", "decode(lpad(to_hex(g), 4, '0') || '5c22', 'hex')"),
    "date": ("k date", "date '1999-12-31' + g"),
    "composite text": ("region text, code text", "'r' || (g % 3), 'it''s {' || g || '}'"),
}


@pytest.mark.parametrize("kind", KEYS)
def test_each_key_finds_its_rows_and_deletes_by_name(
    kind: str, source_url: str, target_url: str, summit_url: str
) -> None:
    columns, values = KEYS[kind]
    key = tuple(c.split()[0] for c in columns.split(", "))
    run_sql(
        source_url,
        f"CREATE TABLE public.src ({columns}, n int, body text, PRIMARY KEY ({', '.join(key)}))",
    )
    run_sql(
        source_url,
        f"INSERT INTO public.src SELECT {values}, g, 'b' FROM generate_series(1, 50) g",  # noqa: S608
    )
    cfg = pipeline(source_url, target_url, "delta", "dw.keyed", key=key)
    run(cfg, summit_url)
    run_sql(source_url, "UPDATE public.src SET body = 'changed' WHERE n IN (3, 4)")
    run_sql(source_url, "DELETE FROM public.src WHERE n = 7")
    outcome = run(cfg, summit_url)
    assert (outcome.counts.records_extracted, outcome.load.deleted) == (2, 1)
    query = f"SELECT {', '.join(k + '::text' for k in key)}, n, body FROM {{}} ORDER BY n"
    assert run_sql(target_url, query.format("dw.keyed")) == run_sql(
        source_url, query.format("public.src")
    )


def test_a_key_whose_equal_values_print_differently_is_read_in_full(
    source_url: str, target_url: str, summit_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    run_sql(source_url, "CREATE TABLE public.src (k numeric PRIMARY KEY, body text)")
    run_sql(source_url, "INSERT INTO public.src VALUES (1.0, 'a'), (2.50, 'b')")
    cfg = pipeline(source_url, target_url, "delta", "dw.keyed", key=("k",))
    run(cfg, summit_url)
    with caplog.at_level(logging.WARNING, logger="summit_etl.extract.changed"):
        assert run(cfg, summit_url).counts.records_extracted == 2
    assert "the key column 'k' is of type numeric, whose equal values may print" in caplog.text


# The source side's hashing is kept waiting by a view whose rows sleep, once its first
# read is done (a lock on the source table would stop the run earlier, at its type probe).
_PAUSE = "CREATE OR REPLACE FUNCTION public.pause() RETURNS text LANGUAGE sql VOLATILE AS $$ {} $$"
_PAUSED_VIEW = (
    "CREATE VIEW public.src_paused AS SELECT id, name || public.pause() AS name, code, amount,"
    " score, at, doc, raw, tags FROM public.src"
)


@pytest.mark.parametrize("side", ["source", "target"])
def test_a_cancel_while_either_side_hashes_its_rows_ends_the_run_cancelled_at_once(
    side: str, source: str, target_url: str, summit_url: str
) -> None:
    doc = pipeline(source, target_url, "upsert", "dw.compared").model_dump(by_alias=True)
    doc["timeouts"] = {"lockSeconds": 120}
    if side == "source":
        run_sql(source, _PAUSE.format("SELECT ''"))
        run_sql(source, _PAUSED_VIEW)
        doc["source"]["table"] = "public.src_paused"
    cfg = parse_pipeline(doc, "test")
    run(cfg, summit_url)
    request = RunRequest(run_id=str(uuid.uuid4()))
    url = source if side == "source" else target_url

    def hashing_waits() -> bool:
        return bool(
            run_sql(
                url,
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event IN ('PgSleep', 'relation')"
                " AND query LIKE '%hash_record_extended%'",
            )[0][0]
        )

    # A cancel (SIGINT, as Dagster sends it) while either side hashes ends the run as
    # cancelled: not as a failed statement, and not lost to the database driver's own SIGINT
    # handler (which took it while the source's statement ran on the main thread).
    with psycopg.connect(target_url) as locker:
        if side == "source":
            run_sql(source, _PAUSE.format("SELECT pg_sleep(60)::text"))
        else:  # an operator's lock keeps the target's hashing waiting up to lockSeconds
            locker.execute("LOCK TABLE dw.compared IN ACCESS EXCLUSIVE MODE")
        canceller = cancel_when(hashing_waits)
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            run_pipeline(cfg, request, summit_url)
        elapsed = time.monotonic() - started
        canceller.join()
        assert not hashing_waits()  # its statement was cancelled, not left to wait
    assert elapsed < 20
    status = run_sql(
        summit_url, "SELECT status FROM pipeline_runs WHERE id = %s", (request.run_id,)
    )
    assert status == [("cancelled",)]


def test_a_target_that_times_out_fails_the_run_without_waiting_for_the_source(
    source: str, target_url: str, summit_url: str
) -> None:
    run_sql(source, _PAUSE.format("SELECT ''"))
    run_sql(source, _PAUSED_VIEW)
    doc = pipeline(source, target_url, "upsert", "dw.compared").model_dump(by_alias=True)
    doc["source"]["table"] = "public.src_paused"
    doc["timeouts"] = {"lockSeconds": 2}
    cfg = parse_pipeline(doc, "test")
    run(cfg, summit_url)
    # The source's hashing would take hours; the target's is kept waiting past lockSeconds.
    run_sql(source, _PAUSE.format("SELECT pg_sleep(60)::text"))
    with psycopg.connect(target_url) as locker:
        locker.execute("LOCK TABLE dw.compared IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        with pytest.raises(StageFailure, match="lock timeout"):
            run_pipeline(cfg, RunRequest(run_id=str(uuid.uuid4())), summit_url)
        elapsed = time.monotonic() - started
    assert elapsed < 20
    sleeping = run_sql(
        source,
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'"
        " AND query LIKE '%hash_record_extended%'",
    )
    assert sleeping == [(0,)]  # the source's statement was cancelled too


@pytest.mark.parametrize("strategy", ["upsert", "scd_type2", "delta"])
def test_two_runs_that_compared_before_either_loaded_end_as_one_full_read(
    strategy: str,
    source: str,
    target_url: str,
    summit_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two runs of one target at once, as two pipelines of one source (the service keeps
    this from happening: one run per pipeline, one pipeline per target; the engine does
    not count on it): both compare with the target as it was, then load in turn on the
    target's lock. The second load finds the first one's rows and changes nothing twice:
    no key inserted twice, no second version, no row deleted that it keeps."""
    first = pipeline(source, target_url, strategy, "dw.compared")
    second = first.model_copy(update={"id": "compare_compared_again"})
    full = pipeline(source, target_url, strategy, "dw.full", compare=False)
    run(first, summit_url)
    run(full, summit_url)
    for change in CHANGES:
        run_sql(source, change)
    both_compared = threading.Barrier(2, timeout=60)
    find = changed.find_changes

    def then_wait_for_the_other(*args: Any, **kwargs: Any) -> changed.Changes | None:
        found = find(*args, **kwargs)
        both_compared.wait()
        return found

    monkeypatch.setattr(changed, "find_changes", then_wait_for_the_other)
    with ThreadPoolExecutor(2) as pool:
        outcomes = [
            o.result(120) for o in [pool.submit(run, c, summit_url) for c in (first, second)]
        ]
    run(full, summit_url)
    assert [o.counts.records_extracted for o in outcomes] == [CHANGED, CHANGED]
    loads = sorted((o.load.inserted, o.load.updated, o.load.deleted) for o in outcomes)
    assert loads[0] == (0, 0, 0)  # the later load found every change made
    assert held(target_url, "dw.compared", strategy) == held(target_url, "dw.full", strategy)
    if strategy == "delta":
        assert held(target_url, "dw.compared", strategy) == in_source(source)


# Keys Summit's own targets would refuse (NULL, shared), in a target made by hand: what the
# source holds, what the target holds, what the run says, and the delta's end state.
UNMATCHABLE = {
    "source NULL key": (
        "('a', '1'), (NULL, '2')",
        "('a', '0')",
        "1 source rows have a NULL key",
        [("a", "1")],  # a full delta inserts the NULL-keyed row and deletes it as unmatched
    ),
    "target NULL key": (
        "('a', '1')",
        "('a', '1'), (NULL, '2')",
        "1 target rows have a NULL key",
        [("a", "1")],
    ),
    "target rows sharing a key": (
        "('a', '1')",
        "('a', '1'), ('a', '2')",
        "1 target rows share their key with another",
        [("a", "1"), ("a", "1")],
    ),
}


@pytest.mark.parametrize("case", UNMATCHABLE)
def test_keys_that_cannot_be_matched_are_read_in_full_and_say_why(
    case: str,
    source_url: str,
    target_url: str,
    summit_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    source_rows, target_rows, reason, expected = UNMATCHABLE[case]
    run_sql(source_url, "CREATE TABLE public.src (code text, body text)")
    run_sql(source_url, f"INSERT INTO public.src VALUES {source_rows}")  # noqa: S608
    run_sql(target_url, "CREATE SCHEMA dw; CREATE TABLE dw.loose (code text, body text)")
    run_sql(target_url, f"INSERT INTO dw.loose VALUES {target_rows}")  # noqa: S608
    cfg = pipeline(source_url, target_url, "delta", "dw.loose", key=("code",), create=False)
    with caplog.at_level(logging.WARNING, logger="summit_etl.extract.changed"):
        outcome = run(cfg, summit_url)
    assert reason in caplog.text
    assert outcome.counts.records_extracted == len(source_rows.split("), ("))
    held = run_sql(target_url, "SELECT * FROM dw.loose")
    assert sorted(held, key=str) == sorted(expected, key=str)


@pytest.mark.parametrize(
    "change",
    [
        {"loading": {"strategy": "bulk"}},
        {"extraction": {"strategy": "incremental", "incrementalColumn": "at"}},
        {"extraction": {"parallelism": 2}},
        {"transformation": {"transformations": [{"type": "filter", "expression": "id > 1"}]}},
    ],
)
def test_compare_hashes_refuses_what_it_cannot_compare(change: dict[str, Any]) -> None:
    document: dict[str, Any] = {
        "id": "refused",
        "name": "Refused",
        "source": {"url": "postgresql://localhost/src", "table": "public.src"},
        "extraction": {"strategy": "full", "compareHashes": True},
        "loading": {"strategy": "upsert", "targetTable": "dw.t", "upsertKey": ["id"]},
    }
    for part, values in change.items():
        document[part] = {**document.get(part, {}), **values}
    with pytest.raises(ConfigError, match="extraction.compareHashes compares"):
        parse_pipeline(document, "test")
