"""Loading strategies against a real PostgreSQL target."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Iterator
from decimal import Decimal

import psycopg
import pyarrow as pa
import pytest

from summit_etl.config import LoadStrategy
from summit_etl.extract.ranges import ReadRange
from summit_etl.identifiers import TableName
from summit_etl.load import writer
from summit_etl.load.locks import target_lock
from summit_etl.load.writer import LoadError, LoadPlan, _target_size, load
from summit_etl_tests.support import run_sql

TABLE = TableName("dw", "people")


def people(rows: list[tuple[int, str, str]]) -> pa.Table:
    ids, names, cities = zip(*rows, strict=True) if rows else ((), (), ())
    return pa.table(
        {"id": pa.array(ids, pa.int64()), "name": pa.array(names), "city": pa.array(cities)}
    )


def target_rows(url: str, order: str = "id") -> list[tuple]:
    return run_sql(url, f"SELECT id, name, city FROM dw.people ORDER BY {order}")


def test_bulk_creates_target_and_replaces_rows(target_url: str) -> None:
    plan = LoadPlan(LoadStrategy.bulk, key=["id"], create_table=True, replace=True)
    result = load(
        target_url, TABLE, plan, [people([(1, "Ann", "Oslo")]), people([(2, "Bob", "Rome")])]
    )
    assert result.rows_written == 2
    assert target_rows(target_url) == [(1, "Ann", "Oslo"), (2, "Bob", "Rome")]
    # The primary key came from the configured key.
    pk = run_sql(
        target_url,
        "SELECT count(*) FROM pg_constraint WHERE conrelid = 'dw.people'::regclass AND contype = 'p'",
    )
    assert pk == [(1,)]
    load(target_url, TABLE, plan, [people([(3, "Cid", "Bern")])])
    assert target_rows(target_url) == [(3, "Cid", "Bern")]


def test_missing_target_without_create_table_is_a_clear_error(target_url: str) -> None:
    with pytest.raises(LoadError, match=r"target table dw.people does not exist.*createTable"):
        load(target_url, TABLE, LoadPlan(LoadStrategy.bulk, key=[]), [people([(1, "A", "B")])])


def test_only_the_targets_own_columns_are_written(target_url: str) -> None:
    run_sql(
        target_url, "CREATE SCHEMA dw; CREATE TABLE dw.people (id bigint PRIMARY KEY, name text)"
    )
    result = load(
        target_url,
        TABLE,
        LoadPlan(LoadStrategy.append_only, key=[]),
        [people([(1, "Ann", "Oslo")])],
    )
    assert result.ignored_columns == ["city"]
    assert run_sql(target_url, "SELECT id, name FROM dw.people") == [(1, "Ann")]


def test_upsert_is_idempotent_and_updates_only_changed_rows(target_url: str) -> None:
    plan = LoadPlan(LoadStrategy.upsert, key=["id"], create_table=True)
    batch = people([(1, "Ann", "Oslo"), (2, "Bob", "Rome")])
    first = load(target_url, TABLE, plan, [batch])
    assert (first.inserted, first.updated) == (2, 0)
    again = load(target_url, TABLE, plan, [batch])
    assert (again.inserted, again.updated) == (0, 0)
    changed = load(target_url, TABLE, plan, [people([(2, "Bob", "Paris"), (3, "Cid", "Bern")])])
    assert (changed.inserted, changed.updated) == (1, 1)
    assert target_rows(target_url) == [(1, "Ann", "Oslo"), (2, "Bob", "Paris"), (3, "Cid", "Bern")]


def test_upsert_keeps_the_last_row_of_a_key_across_batches(target_url: str) -> None:
    plan = LoadPlan(LoadStrategy.upsert, key=["id"], create_table=True)
    load(target_url, TABLE, plan, [people([(1, "Ann", "Oslo")]), people([(1, "Ann", "Lima")])])
    assert target_rows(target_url) == [(1, "Ann", "Lima")]


@pytest.mark.parametrize(
    "strategy",
    [LoadStrategy.upsert, LoadStrategy.scd_type1, LoadStrategy.delta, LoadStrategy.scd_type2],
)
def test_unchanged_rows_are_not_written_again(target_url: str, strategy: LoadStrategy) -> None:
    plan = LoadPlan(strategy, key=["id"], create_table=True)
    load(target_url, TABLE, plan, [people([(1, "Ann", "Oslo"), (2, "Bob", "Rome")])])
    # xmin, xmax and place of every current row version: a rewrite or a row lock changes them.
    versions = (
        "SELECT id, ctid::text, xmin::text, xmax::text FROM dw.people"
        + (" WHERE is_current" if strategy is LoadStrategy.scd_type2 else "")
        + " ORDER BY id"
    )
    before = run_sql(target_url, versions)
    # Key 1 arrives changed and then as it already is: the last row of a key wins.
    result = load(
        target_url,
        TABLE,
        plan,
        [people([(1, "Ann", "Lima"), (2, "Bob", "Paris")]), people([(1, "Ann", "Oslo")])],
    )
    assert (result.inserted, result.updated) == ((1, 1) if strategy is LoadStrategy.scd_type2 else (0, 1))
    after = run_sql(target_url, versions)
    assert after[0] == before[0]
    assert after[1][1:] != before[1][1:]


def test_scd_type2_opens_a_version_only_on_real_change(target_url: str) -> None:
    plan = LoadPlan(LoadStrategy.scd_type2, key=["id"], create_table=True)
    load(target_url, TABLE, plan, [people([(1, "Ann", "Oslo"), (2, "Bob", "Rome")])])
    unchanged = load(target_url, TABLE, plan, [people([(1, "Ann", "Oslo"), (2, "Bob", "Rome")])])
    assert (unchanged.inserted, unchanged.updated) == (0, 0)
    load(target_url, TABLE, plan, [people([(1, "Ann", "Oslo"), (2, "Bob", "Paris")])])
    history = run_sql(
        target_url,
        "SELECT id, city, is_current, effective_to IS NULL FROM dw.people ORDER BY id, effective_from",
    )
    assert history == [
        (1, "Oslo", True, True),
        (2, "Rome", False, False),
        (2, "Paris", True, True),
    ]
    closed, opened = run_sql(
        target_url,
        "SELECT effective_to FROM dw.people WHERE id = 2 AND NOT is_current "
        "UNION ALL SELECT effective_from FROM dw.people WHERE id = 2 AND is_current",
    )
    assert closed[0] == opened[0]  # the old version ends where the new one begins


def test_delta_applies_inserts_updates_and_deletes(target_url: str) -> None:
    plan = LoadPlan(LoadStrategy.delta, key=["id"], create_table=True, delete_missing=True)
    load(
        target_url,
        TABLE,
        plan,
        [people([(1, "Ann", "Oslo"), (2, "Bob", "Rome"), (3, "Cid", "Bern")])],
    )
    result = load(
        target_url,
        TABLE,
        plan,
        [people([(1, "Ann", "Oslo"), (3, "Cid", "Nice"), (4, "Dee", "Graz")])],
    )
    assert (result.inserted, result.updated, result.deleted) == (1, 1, 1)
    assert target_rows(target_url) == [(1, "Ann", "Oslo"), (3, "Cid", "Nice"), (4, "Dee", "Graz")]


def test_append_skipping_existing_keys_does_not_duplicate(target_url: str) -> None:
    plan = LoadPlan(LoadStrategy.append_only, key=["id"], create_table=True, skip_existing=True)
    load(target_url, TABLE, plan, [people([(1, "Ann", "Oslo")])])
    result = load(target_url, TABLE, plan, [people([(1, "Ann", "Oslo"), (2, "Bob", "Rome")])])
    assert result.inserted == 1
    assert target_rows(target_url) == [(1, "Ann", "Oslo"), (2, "Bob", "Rome")]


def test_types_survive_a_created_target(target_url: str) -> None:
    moment = dt.datetime(2025, 3, 1, 12, 30, 15, 123456, tzinfo=dt.UTC)
    batch = pa.table(
        {
            "id": pa.array([1], pa.int32()),
            "price": pa.array([Decimal("12.34")], pa.decimal128(10, 2)),
            "at": pa.array([moment], pa.timestamp("us", tz="UTC")),
            "day": pa.array([dt.date(2025, 3, 1)], pa.date32()),
            "ok": pa.array([True]),
            "ratio": pa.array([0.25]),
        }
    )
    load(target_url, TABLE, LoadPlan(LoadStrategy.bulk, key=["id"], create_table=True), [batch])
    types = dict(
        run_sql(
            target_url,
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'dw'",
        )
    )
    assert types == {
        "id": "integer",
        "price": "numeric",
        "at": "timestamp with time zone",
        "day": "date",
        "ok": "boolean",
        "ratio": "double precision",
    }
    assert run_sql(target_url, "SELECT id, price, at, day, ok, ratio FROM dw.people") == [
        (1, Decimal("12.34"), moment, dt.date(2025, 3, 1), True, 0.25)
    ]


def test_text_staged_types_are_cast_by_the_server(target_url: str) -> None:
    run_sql(
        target_url,
        "CREATE SCHEMA dw; CREATE TABLE dw.people (id uuid PRIMARY KEY, amount numeric, doc jsonb)",
    )
    batch = pa.table(
        {
            "id": ["8f2b8c9e-4a43-4a53-9d1e-1c2b3d4e5f60"],
            "amount": ["123456789012345678901234567890.123456789"],
            "doc": ['{"a": [1, 2]}'],
        }
    )
    load(target_url, TABLE, LoadPlan(LoadStrategy.upsert, key=["id"]), [batch])
    assert run_sql(target_url, "SELECT id::text, amount::text, doc->'a'->>1 FROM dw.people") == [
        ("8f2b8c9e-4a43-4a53-9d1e-1c2b3d4e5f60", "123456789012345678901234567890.123456789", "2")
    ]


def _waiting_for_the_target_lock(url: str) -> int:
    return run_sql(
        url,
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )[0][0]


@pytest.mark.parametrize(
    ("strategy", "ddl"),
    [
        (LoadStrategy.upsert, ""),
        (
            LoadStrategy.scd_type2,
            ", effective_from timestamptz, effective_to timestamptz, is_current boolean",
        ),
    ],
)
def test_concurrent_loads_into_a_target_without_unique_index_serialize(
    target_url: str, strategy: LoadStrategy, ddl: str
) -> None:
    # No unique index: only the target lock keeps two merges from inserting one key twice.
    run_sql(target_url, f"CREATE SCHEMA dw; CREATE TABLE dw.people (id bigint, name text, city text{ddl})")
    rows = people([(i, f"n{i}", "Oslo") for i in range(1, 2001)])
    plan = LoadPlan(strategy, key=["id"])
    errors: list[BaseException] = []

    def one_load() -> None:
        try:
            load(target_url, TABLE, plan, [rows])
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    with psycopg.connect(target_url) as holder:
        holder.execute(target_lock(TABLE))  # both loads must queue behind it
        loads = [threading.Thread(target=one_load) for _ in range(2)]
        for thread in loads:
            thread.start()
        deadline = time.monotonic() + 30
        while _waiting_for_the_target_lock(target_url) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _waiting_for_the_target_lock(target_url) == 2
    for thread in loads:
        thread.join(60)
    assert not errors
    current = "is_current" if strategy is LoadStrategy.scd_type2 else "true"
    assert run_sql(
        target_url, f"SELECT count(*), count(DISTINCT id) FROM dw.people WHERE {current}"
    ) == [(2000, 2000)]


def test_no_target_transaction_waits_on_a_slow_first_batch(target_url: str) -> None:
    """The target connection's slow start runs beside the wait for the first batch, but
    the connection and its transaction open only once that batch is there: a slow source
    leaves no session idle in a transaction on the target."""
    states: list[list[tuple]] = []

    def slow_source() -> Iterator[pa.Table]:
        deadline = time.monotonic() + 10
        while any(t.name.startswith("summit-catalog") for t in threading.enumerate()):
            assert time.monotonic() < deadline, "the catalog load never ended"
            time.sleep(0.01)
        states.append(
            run_sql(
                target_url,
                "SELECT state FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid()",
            )
        )
        yield people([(1, "Ann", "Oslo")])

    plan = LoadPlan(LoadStrategy.upsert, key=["id"], create_table=True)
    assert load(target_url, TABLE, plan, slow_source()).rows_written == 1
    assert states == [[]]
    assert target_rows(target_url) == [(1, "Ann", "Oslo")]


def test_a_merge_of_no_rows_changes_nothing(target_url: str) -> None:
    plan = LoadPlan(LoadStrategy.upsert, key=["id"], create_table=True)
    load(target_url, TABLE, plan, [people([(1, "Ann", "Oslo")])])
    assert load(target_url, TABLE, plan, []).rows_written == 0
    assert target_rows(target_url) == [(1, "Ann", "Oslo")]


def test_a_bulk_load_within_a_range_replaces_that_range_only(target_url: str) -> None:
    bulk = LoadPlan(LoadStrategy.bulk, key=["id"], create_table=True, replace=True)
    load(target_url, TABLE, bulk, [people([(1, "Ann", "Oslo"), (5, "Eve", "Kyiv"), (9, "Ivo", "Rome")])])
    within = LoadPlan(LoadStrategy.bulk, key=["id"], replace=True, within=ReadRange("id", 2, 9))
    result = load(target_url, TABLE, within, [people([(3, "Cy", "Pula")])])
    assert (result.deleted, result.rows_written) == (1, 1)
    assert target_rows(target_url) == [(1, "Ann", "Oslo"), (3, "Cy", "Pula"), (9, "Ivo", "Rome")]
    # Nothing left in the range at the source: its rows go from the target too.
    assert load(target_url, TABLE, within, []).deleted == 1
    assert target_rows(target_url) == [(1, "Ann", "Oslo"), (9, "Ivo", "Rome")]
    keyless = LoadPlan(LoadStrategy.bulk, key=[], replace=True, within=ReadRange(None, None, "(1,0)"))
    with pytest.raises(LoadError, match="without a primary key"):
        load(target_url, TABLE, keyless, [people([(3, "Cy", "Pula")])])


KEYED = "ALTER TABLE dw.people ADD PRIMARY KEY (id);"
HISTORY = (
    ", effective_from timestamptz NOT NULL DEFAULT now(), effective_to timestamptz,"
    " is_current boolean NOT NULL DEFAULT true"
)


def _joins_seen(
    url: str,
    staged: int,
    target: int,
    index: str,
    strategy: LoadStrategy = LoadStrategy.upsert,
) -> tuple[int, int, str, str]:
    """Merge `staged` changed rows into a `target`-row dw.people (ANALYZEd); the target's
    index and sequential scans and the join settings in the load's transaction, before its
    commit."""
    history = HISTORY if strategy is LoadStrategy.scd_type2 else ""
    run_sql(
        url,
        f"CREATE SCHEMA dw; CREATE TABLE dw.people (id bigint NOT NULL, name text, city text"
        f"{history}); {index} INSERT INTO dw.people (id, name, city)"
        f" SELECT g, 'n' || g, 'c' FROM generate_series(1, {target}) g; ANALYZE dw.people",
    )
    seen: list[tuple[int, int, str, str]] = []

    def look(conn) -> None:  # noqa: ANN001
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT coalesce(idx_scan, 0), seq_scan, current_setting('enable_mergejoin'),"
                " current_setting('enable_hashjoin')"
                " FROM pg_stat_xact_user_tables WHERE relid = 'dw.people'::regclass"
            )
            seen.extend(cursor.fetchall())

    changed = people([(i, f"new {i}", "d") for i in range(1, staged + 1)])
    result = load(url, TABLE, LoadPlan(strategy, key=["id"]), [changed], before_commit=look)
    assert result.updated == staged
    assert run_sql(url, "SELECT count(*) FROM dw.people WHERE city = 'd'") == [(staged,)]
    return seen[0]


def test_a_small_stage_is_merged_by_probing_the_targets_key(target_url: str) -> None:
    index_scans, _, mergejoin, hashjoin = _joins_seen(target_url, 2_000, 40_000, KEYED)
    # One probe per staged row for the new keys' anti-join and one for the update, where
    # the planner left alone merge-joins or hash-joins the whole target.
    assert index_scans >= 2 * 2_000
    assert (mergejoin, hashjoin) == ("on", "on")  # reset for what runs after the merge


def test_a_large_stage_is_left_to_the_planner(target_url: str) -> None:
    index_scans, _, _, _ = _joins_seen(target_url, 20_000, 40_000, KEYED)
    assert index_scans < 20_000  # joined whole, not probed per row


@pytest.mark.parametrize(
    "strategy",
    [LoadStrategy.upsert, LoadStrategy.scd_type1, LoadStrategy.delta, LoadStrategy.scd_type2],
)
def test_a_full_snapshot_is_narrowed_to_its_new_and_changed_rows_before_writing(
    target_url: str, caplog: pytest.LogCaptureFixture, strategy: LoadStrategy
) -> None:
    # json has no equality operator (compared by its text); numeric arrives as text and is
    # cast by the server: both must compare as the merge compares them.
    scd2 = strategy is LoadStrategy.scd_type2
    run_sql(
        target_url,
        "CREATE SCHEMA dw; CREATE TABLE dw.people (id bigint NOT NULL, name text, city text,"
        f" tags json, amount numeric(8,2){HISTORY if scd2 else ''});"
        + ("CREATE UNIQUE INDEX ON dw.people (id) WHERE is_current;" if scd2 else KEYED)
        + " INSERT INTO dw.people (id, name, city, tags, amount) SELECT g, 'n' || g, 'c',"
        " ('{\"g\": ' || g || '}')::json, g / 100.0 FROM generate_series(1, 4000) g;"
        " ANALYZE dw.people",
    )
    current = " WHERE is_current" if scd2 else ""
    versions = f"SELECT id, xmin::text, ctid::text FROM dw.people{current} ORDER BY id"
    before = {row[0]: row[1:] for row in run_sql(target_url, versions)}
    # The snapshot: every key but 3,991-4,000 (gone), 100 rows changed, each in one column
    # (city, tags or amount), and 20 new keys.
    ids = list(range(1, 3991)) + list(range(5001, 5021))
    changed = {i: i % 3 for i in range(7, 3991, 39)}
    snapshot = pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "name": [f"n{i}" for i in ids],
            "city": ["d" if changed.get(i) == 0 else "c" for i in ids],
            "tags": [f'{{"g": {i + (changed.get(i) == 1)}}}' for i in ids],
            "amount": [f"{(i + 100 * (changed.get(i) == 2)) / 100:.2f}" for i in ids],
        }
    )
    plan = LoadPlan(strategy, key=["id"], delete_missing=strategy is LoadStrategy.delta)
    probes: list[tuple[int]] = []

    def look(conn: psycopg.Connection) -> None:
        probes.extend(
            conn.execute(
                "SELECT coalesce(idx_scan, 0) FROM pg_stat_xact_user_tables"
                " WHERE relid = 'dw.people'::regclass"
            ).fetchall()
        )

    with caplog.at_level(logging.DEBUG, logger="summit_etl.load"):
        result = load(target_url, TABLE, plan, [snapshot], before_commit=look)
    statements = _statements(caplog)
    assert any(s.startswith('CREATE TEMP TABLE "summit_differing"') for s in statements)
    # The 120 new and changed rows, not the 4,010 staged, are probed for: the new keys'
    # anti-join and the update (scd_type2: the close), one descent each.
    assert 2 * 120 <= probes[0][0] < 4_000
    deleted = 10 if strategy is LoadStrategy.delta else 0
    if deleted:  # the delete of absent keys joins the whole stage, not probing per target row
        resets = [n for n, s in enumerate(statements) if s == "RESET enable_hashjoin"]
        deletes = [n for n, s in enumerate(statements) if "DELETE FROM" in s]
        assert resets and deletes and resets[0] < deletes[-1]
    opened = 20 + (len(changed) if scd2 else 0)  # scd_type2 opens a version per change
    assert (result.inserted, result.updated, result.deleted) == (opened, len(changed), deleted)
    after = {row[0]: row[1:] for row in run_sql(target_url, versions)}
    untouched = [i for i in ids if i <= 4000 and i not in changed]
    assert all(after[i] == before[i] for i in untouched)  # not rewritten, not locked
    assert all(after[i] != before[i] for i in changed)
    rows = run_sql(
        target_url, f"SELECT id, name, city, tags::text, amount::text FROM dw.people{current}"
    )
    expected = {(r["id"], r["name"], r["city"], r["tags"], r["amount"]) for r in snapshot.to_pylist()}
    kept = {  # keys gone from the snapshot stay but for delta
        (i, f"n{i}", "c", f'{{"g": {i}}}', f"{i / 100:.2f}")
        for i in range(3991, 4001)
        if strategy is not LoadStrategy.delta
    }
    assert set(rows) == expected | kept
    if scd2:
        closed = run_sql(target_url, "SELECT id FROM dw.people WHERE NOT is_current")
        assert sorted(r[0] for r in closed) == sorted(changed)
    # The same snapshot again: narrowed to nothing, and nothing is written or locked.
    settled = run_sql(target_url, versions)
    again = load(target_url, TABLE, plan, [snapshot])
    assert (again.inserted, again.updated, again.deleted) == (0, 0, 0)
    assert run_sql(target_url, versions) == settled


@pytest.mark.parametrize(
    ("index", "key", "probes"),
    [
        ("PRIMARY KEY (id, name)", ["name", "id"], True),  # the key's columns, in any order
        ("UNIQUE (id, name, city)", ["id", "name"], True),  # leading the index
        ("UNIQUE (city, id)", ["id"], False),  # not leading: a probe would scan it all
        ("CHECK (id > 0)", ["id"], False),  # no index at all
    ],
)
def test_probing_needs_an_index_that_leads_with_the_key(
    target_url: str, index: str, key: list[str], probes: bool
) -> None:
    run_sql(
        target_url,
        f"CREATE SCHEMA dw; CREATE TABLE dw.people (id bigint, name text, city text, {index});"
        " INSERT INTO dw.people SELECT g, 'n' || g, 'c' || g FROM generate_series(1, 1000) g;"
        " ANALYZE dw.people",
    )
    with psycopg.connect(target_url) as conn:
        size = _target_size(conn, TABLE, key)
        assert size is not None
        assert size.probing_pays(100) is probes
        assert size.probing_pays(101) is False  # over a tenth of the target


def test_an_scd_type2_merge_probes_the_current_versions_index(target_url: str) -> None:
    current = "CREATE UNIQUE INDEX people_current ON dw.people (id) WHERE is_current;"
    index_scans, _, _, _ = _joins_seen(
        target_url, 2_000, 40_000, current, LoadStrategy.scd_type2
    )
    assert index_scans >= 2 * 2_000  # the new keys' anti-join and the close, per staged row
    assert run_sql(
        target_url, "SELECT count(*), count(*) FILTER (WHERE is_current) FROM dw.people"
    ) == [(42_000, 40_000)]
    with psycopg.connect(target_url) as conn:  # the partial index serves scd_type2 only
        size = _target_size(conn, TABLE, ["id"], current_only=False)
        assert size is not None and size.probing_pays(2_000) is False


def _statements(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.sql for r in caplog.records if r.getMessage() == "target sql"]


def _superseded_pass(statements: list[str]) -> bool:
    return any("row_number() OVER" in s for s in statements)


@pytest.mark.parametrize(
    ("key_type", "skipped"),
    [
        ("bigint", True),
        ("text", True),
        ("timestamp with time zone", True),
        # Equal values with different Arrow forms, or a modifier the server applies.
        ("numeric", False),
        ("double precision", False),
        ("varchar(4)", False),
    ],
)
def test_a_stage_whose_keys_all_differ_skips_the_superseded_rows_pass(
    target_url: str, caplog: pytest.LogCaptureFixture, key_type: str, skipped: bool
) -> None:
    run_sql(target_url, f"CREATE SCHEMA dw; CREATE TABLE dw.t (k {key_type} PRIMARY KEY, v text)")
    values = {
        "bigint": [1, 2, 3],
        "text": ["a", "b", "A"],
        "timestamp with time zone": [
            dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
            dt.datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=dt.UTC),
            dt.datetime(2024, 1, 2, tzinfo=dt.UTC),
        ],
        "numeric": [Decimal(1), Decimal(2), Decimal(3)],
        "double precision": [1.0, 2.0, 3.0],
        "varchar(4)": ["a", "b", "c"],
    }[key_type]
    plan = LoadPlan(LoadStrategy.upsert, key=["k"])
    with caplog.at_level("DEBUG", logger="summit_etl.load.target"):
        load(target_url, TableName("dw", "t"), plan, [pa.table({"k": values, "v": ["x", "y", "z"]})])
    assert _superseded_pass(_statements(caplog)) is not skipped
    assert run_sql(target_url, "SELECT count(*) FROM dw.t") == [(3,)]


def test_a_stage_with_a_repeated_key_keeps_its_last_row(
    target_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Across batches, and with NULL keys counting as one key, as the pass counts them."""
    plan = LoadPlan(LoadStrategy.upsert, key=["id"], create_table=True)
    batches = [people([(1, "Ann", "Oslo"), (2, "Bo", "Rome")]), people([(3, "Cy", "Bern")])]
    with caplog.at_level("DEBUG", logger="summit_etl.load.target"):
        load(target_url, TABLE, plan, batches)
    assert not _superseded_pass(_statements(caplog))
    caplog.clear()
    batches = [people([(1, "Ann", "Lima"), (2, "Bo", "Rome")]), people([(1, "Ann", "Kyiv")])]
    with caplog.at_level("DEBUG", logger="summit_etl.load.target"):
        load(target_url, TABLE, plan, batches)
    assert _superseded_pass(_statements(caplog))
    assert target_rows(target_url) == [(1, "Ann", "Kyiv"), (2, "Bo", "Rome"), (3, "Cy", "Bern")]

    run_sql(target_url, "CREATE TABLE dw.nullable (k int UNIQUE, v text)")
    nulls = pa.table({"k": pa.array([None, None], pa.int32()), "v": ["first", "last"]})
    caplog.clear()
    with caplog.at_level("DEBUG", logger="summit_etl.load.target"):
        load(target_url, TableName("dw", "nullable"), LoadPlan(LoadStrategy.delta, key=["k"]), [nulls])
    assert _superseded_pass(_statements(caplog))
    assert run_sql(target_url, "SELECT k, v FROM dw.nullable") == [(None, "last")]


def test_keys_beyond_the_kept_bytes_leave_the_pass_to_the_server(
    target_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer keeps at most `_KEYS_AT_MOST` bytes of keys: past that it stops noting
    them (memory stays flat) and the server drops superseded rows as before."""
    monkeypatch.setattr(writer, "_KEYS_AT_MOST", 8 * 1_000)  # a thousand int8 keys
    plan = LoadPlan(LoadStrategy.upsert, key=["id"], create_table=True)
    rows = [(i, f"n{i}", "c") for i in range(1, 3_001)]
    batches = [people(rows[:1_000]), people(rows[1_000:2_000]), people(rows[2_000:])]
    with caplog.at_level("DEBUG", logger="summit_etl.load.target"):
        load(target_url, TABLE, plan, batches)
    assert _superseded_pass(_statements(caplog))
    assert run_sql(target_url, "SELECT count(*), count(DISTINCT id) FROM dw.people") == [(3_000, 3_000)]


# Every type the writer encodes itself (load/types.py), at its edges: each row as SQL
# literals for the reference table and as the Arrow values the writer receives.
_EDGE_COLUMNS = (
    "id int8 PRIMARY KEY, i2 int2, i4 int4, f4 float4, f8 float8, t text, v varchar(5),"
    " c char(3), b bool, d date, ts timestamp, tz timestamptz, raw bytea, doc jsonb,"
    " money numeric(12,2), wide numeric(38,10), whole numeric(5,0)"
)
_EDGE_LITERALS = [
    "(1, -32768, -2147483648, 'NaN', 'NaN', '', 'abcde', 'ab', true, '0001-01-01',"
    " '0001-01-01 00:00:00', '0001-01-01 00:00:00+00', '\\x00ff', '{\"a\": \"ü\", \"n\": [1, 2.5, null]}',"
    " -9999999999.99, -1234567890123456789012345678.0123456789, -99999)",
    "(2, 32767, 2147483647, 'Infinity', '-Infinity', 'ünï\tcødé\n', 'x', 'abc', false,"
    " '9999-12-31', '9999-12-31 23:59:59.999999', '9999-12-31 23:59:59.999999+00', '\\x',"
    " '[]', 0.01, 0.0000000001, 0)",
    "(3, 0, 0, -0.5, 5e-324, repeat('z', 100000), NULL, NULL, NULL, '1999-12-31',"
    " '1999-12-31 23:59:59.999999', '1969-07-20 20:17:40.000001+00', NULL, '\"s\"',"
    " 0, 1E+27, 1)",
    "(4, NULL, NULL, NULL, 1e308, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
    " NULL, NULL, NULL)",
]


def _edge_batch() -> pa.Table:
    utc = dt.UTC
    return pa.table(
        {
            "id": pa.array([1, 2, 3, 4], pa.int64()),
            "i2": pa.array([-32768, 32767, 0, None], pa.int16()),
            "i4": pa.array([-(2**31), 2**31 - 1, 0, None], pa.int32()),
            "f4": pa.array([float("nan"), float("inf"), -0.5, None], pa.float32()),
            "f8": pa.array([float("nan"), float("-inf"), 5e-324, 1e308], pa.float64()),
            "t": pa.array(["", "ünï\tcødé\n", "z" * 100_000, None]),
            "v": pa.array(["abcde", "x", None, None]),
            "c": pa.array(["ab", "abc", None, None]),
            "b": pa.array([True, False, None, None]),
            "d": pa.array(
                [dt.date(1, 1, 1), dt.date(9999, 12, 31), dt.date(1999, 12, 31), None]
            ),
            "ts": pa.array(
                [
                    dt.datetime(1, 1, 1),
                    dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
                    dt.datetime(1999, 12, 31, 23, 59, 59, 999999),
                    None,
                ],
                pa.timestamp("us"),
            ),
            "tz": pa.array(
                [
                    dt.datetime(1, 1, 1, tzinfo=utc),
                    dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=utc),
                    dt.datetime(1969, 7, 20, 20, 17, 40, 1, tzinfo=utc),
                    None,
                ],
                pa.timestamp("us", tz="UTC"),
            ),
            "raw": pa.array([b"\x00\xff", b"", None, None], pa.binary()),
            "doc": pa.array(['{"n": [1, 2.5, null], "a": "ü"}', "[]", '"s"', None]),
            "money": pa.array(
                [Decimal("-9999999999.99"), Decimal("0.01"), Decimal(0), None],
                pa.decimal128(12, 2),
            ),
            "wide": pa.array(
                [
                    Decimal("-1234567890123456789012345678.0123456789"),
                    Decimal("0.0000000001"),
                    Decimal("1E+27"),
                    None,
                ],
                pa.decimal128(38, 10),
            ),
            "whole": pa.array([Decimal(-99999), Decimal(0), Decimal(1), None], pa.decimal128(5, 0)),
        }
    )


@pytest.mark.parametrize(
    "plan",
    [
        LoadPlan(LoadStrategy.bulk, key=["id"], replace=True),  # a shadow, COPY FREEZE
        LoadPlan(LoadStrategy.append_only, key=[]),  # COPY into the target itself
        LoadPlan(LoadStrategy.upsert, key=["id"]),  # COPY into a stage, then a merge
    ],
    ids=["bulk", "append_only", "upsert"],
)
def test_each_type_the_writer_encodes_lands_exactly_at_its_edges(
    target_url: str, plan: LoadPlan
) -> None:
    run_sql(
        target_url,
        f"CREATE SCHEMA dw; CREATE TABLE dw.people ({_EDGE_COLUMNS});"
        f" CREATE TABLE dw.expected ({_EDGE_COLUMNS});"
        f" INSERT INTO dw.expected VALUES {', '.join(_EDGE_LITERALS)}",
    )
    result = load(target_url, TABLE, plan, [_edge_batch()])
    assert result.rows_written == 4
    differing = run_sql(
        target_url,
        "SELECT 'missing', id FROM (TABLE dw.expected EXCEPT TABLE dw.people) m"
        " UNION ALL SELECT 'unexpected', id FROM (TABLE dw.people EXCEPT TABLE dw.expected) u",
    )
    assert differing == []
    assert run_sql(target_url, "SELECT count(*) FROM dw.people") == [(4,)]
