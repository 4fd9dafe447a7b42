"""One wide source table with a column of every built-in type worth a doubt, and the
value-by-value comparison (as PostgreSQL text) that the type-matrix tests use."""

from __future__ import annotations

from summit_etl_tests.support import run_sql

TYPES_DDL = """
CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE public.pair AS (a integer, b text, m public.mood);
CREATE DOMAIN public.posint AS integer CHECK (VALUE > 0);
CREATE SEQUENCE public.wide_version;
"""

# column -> declared type; `id` is the key, `version`/`updated_at` drive polled CDC.
COLUMNS: dict[str, str] = {
    "i2": "smallint",
    "i8": "bigint",
    "n": "numeric",
    "n_wide": "numeric(50,10)",
    "n_ps": "numeric(10,2)",
    "n_neg": "numeric(5,-2)",  # PostgreSQL 15: a negative scale rounds to hundreds
    "n_tiny": "numeric(3,5)",  # and a scale above the precision
    "f4": "real",
    "f8": "double precision",
    "vc": "varchar(10) NOT NULL",
    "ch": "char(5)",
    "tx": "text",
    "by": "bytea",
    "bo": "boolean",
    "d": "date",
    "ts": "timestamp(3)",
    "tstz": "timestamptz",
    "tm": "time",
    "ttz": "timetz",
    "iv": "interval",
    "ia": "integer[]",
    "ta": "text[]",
    "ia2": "integer[][]",
    "en": "public.mood",
    "ena": "public.mood[]",
    "dom": "public.posint",
    "comp": "public.pair",
    "r": "int4range",
    "mr": "int4multirange",
    "tr": "tstzrange",
    "ip": "inet",
    "ci": "cidr",
    "mac": "macaddr",
    "mac8": "macaddr8",
    "bi": "bit(4)",
    "vb": "varbit(8)",
    "mo": "money",
    "x": "xml",
    "tv": "tsvector",
    "js": "json",
    "jb": "jsonb",
    "u": "uuid",
    "pt": "point",
}
NOT_NULL = {"vc"}

# Row 1: the edges (NaN, ±infinity, NULL array elements, >38 digits); row 2: ordinary
# values; row 3: NULL wherever NULL is allowed.
_EDGES = {
    "i2": "-32768",
    "i8": "9223372036854775807",
    "n": "'NaN'",
    "n_wide": "'1234567890123456789012345678901234567890.0123456789'",
    "n_ps": "'NaN'",
    "n_neg": "'-9999900'",
    "n_tiny": "'0.00999'",
    "f4": "'-Infinity'",
    "f8": "'NaN'",
    "vc": "'abcdefghij'",
    "ch": "'ab'",
    "tx": "E'tab\\there \"quoted\" \\\\ backslash'",
    "by": "'\\x00ff10'::bytea",
    "bo": "false",
    "d": "'infinity'",
    "ts": "'-infinity'",
    "tstz": "'infinity'",
    "tm": "'24:00:00'",
    "ttz": "'23:59:59.999999-12:30'",
    "iv": "'-1 year 2 mons -3 days 04:05:06.789'",
    "ia": "'{1,NULL,3}'",
    "ta": "ARRAY['a b', NULL, 'c\"d', '', 'NULL']",
    "ia2": "'{{1,NULL},{3,4}}'",
    "en": "'happy'",
    "ena": "'{sad,NULL,happy}'",
    "dom": "2147483647",
    "comp": "ROW(1, 'x, \"y\"', 'ok')",
    "r": "'empty'",
    "mr": "'{[1,3), [5,7)}'",
    "tr": "'[2024-01-01 00:00+00, infinity)'",
    "ip": "'2001:db8::1/64'",
    "ci": "'10.0.0.0/8'",
    "mac": "'08:00:2b:01:02:03'",
    "mac8": "'08:00:2b:01:02:03:04:05'",
    "bi": "B'1010'",
    "vb": "B'101'",
    "mo": "'-92233720368547758.08'",
    "x": "'<a b=\"1\">x &amp; y</a>'",
    "tv": "'a fat:1A cat:2B'",
    "js": "'{\"b\": 1,  \"a\": [2, 3.50]}'",
    "jb": "'{\"k\": [1, 2.0, null, \"s\"]}'",
    "u": "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
    "pt": "'(1.5,-2)'",
}
_ORDINARY = {
    "i2": "7",
    "i8": "-42",
    "n": "'-0.000000000000000000000000000000000000000001'",
    "n_wide": "'-99.5'",
    "n_ps": "'12345678.91'",
    "n_neg": "'1250'",
    "n_tiny": "'-0.00012'",
    "f4": "'1.1'",
    "f8": "'0.1'",
    "vc": "'é中'",
    "ch": "'abcde'",
    "tx": "''",
    "by": "''::bytea",
    "bo": "true",
    "d": "'0044-03-15 BC'",
    "ts": "'2024-02-29 12:34:56.789'",
    "tstz": "'1999-12-31 23:59:59.999999+05:30'",
    "tm": "'00:00:00.000001'",
    "ttz": "'12:00:00+02'",
    "iv": "'P1Y2M3DT4H5M6.000007S'",
    "ia": "'{}'",
    "ta": "'{}'",
    "ia2": "'{{5}}'",
    "en": "'sad'",
    "ena": "'{}'",
    "dom": "1",
    "comp": "ROW(NULL, NULL, NULL)",
    "r": "'[1,5)'",
    "mr": "'{}'",
    "tr": "'(,)'",
    "ip": "'10.0.0.1'",
    "ci": "'2001:db8::/32'",
    "mac": "'ff:ff:ff:ff:ff:ff'",
    "mac8": "'00:00:00:00:00:00:00:00'",
    "bi": "B'0000'",
    "vb": "B''",
    "mo": "'0.01'",
    "x": "'plain text content'",
    "tv": "''",
    "js": "'[]'",
    "jb": "'\"just a string\"'",
    "u": "'00000000-0000-0000-0000-000000000000'",
    "pt": "'(0,0)'",
}


def create_wide(url: str, *, rows: bool = True, tables: tuple[str, ...] = ("wide",)) -> None:
    """The types, then each of `tables` in schema public (all of one shape)."""
    columns = ", ".join(f"{name} {kind}" for name, kind in COLUMNS.items())
    run_sql(
        url,
        TYPES_DDL
        + """
        CREATE FUNCTION public.wide_touch() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          NEW.updated_at := clock_timestamp();
          NEW.version := nextval('public.wide_version');
          RETURN NEW;
        END $$;
        """,
    )
    for table in tables:
        run_sql(
            url,
            f"""
            CREATE TABLE public.{table} (
                id integer PRIMARY KEY, {columns},
                version bigint NOT NULL DEFAULT nextval('public.wide_version'),
                updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
            );
            CREATE TRIGGER {table}_touch BEFORE UPDATE ON public.{table}
               FOR EACH ROW EXECUTE FUNCTION public.wide_touch();
            """,
        )
        if rows:
            insert_rows(url, 1, f"public.{table}")


def insert_rows(url: str, first_id: int, table: str = "public.wide") -> None:
    """Three rows (edges, ordinary, NULLs) with ids first_id .. first_id + 2."""
    names = list(COLUMNS)
    nulls = {name: ("'x'" if name in NOT_NULL else "NULL") for name in names}
    values = [
        f"({first_id + i}, " + ", ".join(row[n] for n in names) + ")"
        for i, row in enumerate((_EDGES, _ORDINARY, nulls))
    ]
    run_sql(url, f"INSERT INTO {table} (id, {', '.join(names)}) VALUES {', '.join(values)}")


def update_to_edges(url: str, row_id: int, table: str = "public.wide") -> None:
    """Set every column of one row to its edge value (a change the CDC tests capture)."""
    assignments = ", ".join(f"{name} = {value}" for name, value in _EDGES.items())
    run_sql(url, f"UPDATE {table} SET {assignments} WHERE id = %s", (row_id,))


def as_text(url: str, table: str, where: str = "true") -> list[tuple[str | None, ...]]:
    """Every row of `table` as the text PostgreSQL prints for each column, by id."""
    columns = ", ".join(f"{name}::text" for name in ["id", *COLUMNS])
    return [tuple(r) for r in run_sql(url, f"SELECT {columns} FROM {table} WHERE {where} ORDER BY id")]


def differences(source: list[tuple], target: list[tuple]) -> list[str]:
    """Readable cell differences: `row id, column: source != target`."""
    names = ["id", *COLUMNS]
    if len(source) != len(target):
        return [f"{len(source)} source rows, {len(target)} target rows"]
    return [
        f"row {s[0]}, {names[i]}: {s[i]!r} != {t[i]!r}"
        for s, t in zip(source, target, strict=True)
        for i in range(len(names))
        if s[i] != t[i]
    ]


def declared_types(url: str, table: str) -> dict[str, str]:
    rows = run_sql(
        url,
        "SELECT attname, format_type(atttypid, atttypmod) || CASE WHEN attnotnull THEN ' NOT NULL' ELSE '' END "
        "FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
        (table,),
    )
    return dict(rows)
