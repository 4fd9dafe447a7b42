"""Full reloads through a shadow table, swapped in for the target at the end.

Inside the load's one transaction: a table `LIKE` the target (columns, defaults, identity,
generated columns, CHECK constraints, comments, storage, extended statistics; no indexes)
takes the rows, then gets the target's indexes and primary/unique/exclusion keys built in
bulk, is ANALYZEd, gets its outgoing foreign keys, and only then replaces the target: rename
the target away, rename the shadow in, hand over owned sequences, drop the old table, restore
names, grants, triggers and comments. Readers keep reading the old table until the commit
(they wait only for the short swap at the end, never see a half-loaded table).

`LIKE` drops the planner's tuning, so the shadow gets it before its ANALYZE: column
statistics targets and n_distinct overrides, extended statistics' targets (their objects
then take back their names, schema, owner and comments), the index the table is
clustered on, and each index's tablespace and expression statistics targets.

The rows go in with COPY FREEZE (the shadow is new in this transaction): already frozen
and all-visible, so neither the first reader nor VACUUM rewrites every page for them.

Some targets cannot be swapped without losing something (a view or an incoming foreign
key would need the old table, row triggers on INSERT would be skipped, ...):
`blockers()` names them and the writer falls back to TRUNCATE and COPY in place.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from summit_etl.identifiers import TableName
from summit_etl.load.ddl import with_lock_retry
from summit_etl.load.target import execute

log = logging.getLogger(__name__)

# What pg_get_indexdef(x.indexrelid) prints before `USING ...` for index `i` of table `t`.
_HEAD = """format('CREATE %sINDEX %I ON %I.%I USING ',
       CASE WHEN x.indisunique THEN 'UNIQUE ' ELSE '' END, i.relname,
       (SELECT n.nspname FROM pg_namespace n JOIN pg_class r ON r.relnamespace = n.oid
         WHERE r.oid = x.indrelid),
       (SELECT r.relname FROM pg_class r WHERE r.oid = x.indrelid))"""

# What a swap cannot carry over, one reason per row. `t` is the target's oid.
_BLOCKERS = """
WITH t AS (SELECT to_regclass({target}) AS oid)
SELECT format('view %s reads it', r.ev_class::regclass)
  FROM t, pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
 WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
   AND d.refobjid = t.oid AND r.ev_class <> t.oid
UNION
SELECT format('%s depends on it', pg_describe_object(d.classid, d.objid, d.objsubid))
  FROM t, pg_depend d
 WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = t.oid AND d.deptype = 'n'
   AND d.classid NOT IN ('pg_rewrite'::regclass, 'pg_constraint'::regclass)
UNION
SELECT format('foreign key %I of %s references it', c.conname, c.conrelid::regclass)
  FROM t, pg_constraint c WHERE c.contype = 'f' AND c.confrelid = t.oid
UNION
SELECT format('rule %I is defined on it', r.rulename)
  FROM t, pg_rewrite r WHERE r.ev_class = t.oid
UNION
SELECT format('trigger %I fires on INSERT or TRUNCATE (the shadow load would skip it)', g.tgname)
  FROM t, pg_trigger g
 WHERE g.tgrelid = t.oid AND NOT g.tgisinternal AND (g.tgtype & (4 | 32)) <> 0
UNION
SELECT format('trigger %I is not simply enabled', g.tgname)
  FROM t, pg_trigger g WHERE g.tgrelid = t.oid AND NOT g.tgisinternal AND g.tgenabled <> 'O'
UNION
SELECT format('publication %I lists it', p.pubname)
  FROM t, pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid
 WHERE pr.prrelid = t.oid
UNION
SELECT format('publication %I publishes every table (it would publish the shadow''s rows)',
              p.pubname)
  FROM pg_publication p WHERE p.puballtables
UNION
SELECT 'it has row-level security policies'
  FROM t, pg_class c
 WHERE c.oid = t.oid AND (c.relrowsecurity OR EXISTS (SELECT FROM pg_policy WHERE polrelid = t.oid))
UNION
SELECT 'it is partitioned, a partition, or in an inheritance tree'
  FROM t, pg_class c
 WHERE c.oid = t.oid AND (c.relkind = 'p' OR c.relispartition OR c.relhassubclass
       OR EXISTS (SELECT FROM pg_inherits WHERE inhrelid = t.oid))
UNION
SELECT 'it is unlogged, has storage options, a tablespace or a replica identity of its own'
  FROM t, pg_class c
 WHERE c.oid = t.oid AND (c.relpersistence <> 'p' OR c.reloptions IS NOT NULL
       OR c.reltablespace <> 0 OR c.relreplident <> 'd')
UNION
SELECT format('column %I has privileges of its own', a.attname)
  FROM t, pg_attribute a WHERE a.attrelid = t.oid AND a.attacl IS NOT NULL
UNION
SELECT format('%s uses its row type', pg_describe_object(d.classid, d.objid, d.objsubid))
  FROM t, pg_class c, pg_depend d
 WHERE c.oid = t.oid AND d.refclassid = 'pg_type'::regclass AND d.refobjid = c.reltype
   AND d.deptype = 'n'
UNION
SELECT format('the loading role is not a member of its owner %s', c.relowner::regrole)
  FROM t, pg_class c WHERE c.oid = t.oid AND NOT pg_has_role(c.relowner, 'USAGE')
UNION
SELECT format('the loading role is not a member of %s, owner of its statistics object %I',
              s.stxowner::regrole, s.stxname)
  FROM t, pg_statistic_ext s WHERE s.stxrelid = t.oid AND NOT pg_has_role(s.stxowner, 'USAGE')
UNION
SELECT format('its statistics object %I is in schema %s, where the loading role may not create',
              s.stxname, s.stxnamespace::regnamespace)
  FROM t, pg_class c, pg_statistic_ext s
 WHERE c.oid = t.oid AND s.stxrelid = t.oid AND s.stxnamespace <> c.relnamespace
   AND NOT has_schema_privilege(s.stxnamespace, 'CREATE')
UNION
SELECT format('index %I is in tablespace %I, where the loading role may not create', i.relname,
              s.spcname)
  FROM t, pg_index x JOIN pg_class i ON i.oid = x.indexrelid
  JOIN pg_tablespace s ON s.oid = i.reltablespace
 WHERE x.indrelid = t.oid AND NOT has_tablespace_privilege(s.oid, 'CREATE')
UNION
SELECT format('index %I is not in the form a shadow can rebuild', i.relname)
  FROM t, pg_index x JOIN pg_class i ON i.oid = x.indexrelid
 WHERE x.indrelid = t.oid AND NOT starts_with(pg_get_indexdef(x.indexrelid), {head})
ORDER BY 1
"""

# The target's indexes: constraint-backed ones come back with the constraint's definition
# (PRIMARY KEY (...), UNIQUE (...), EXCLUDE ...), the others from `USING ...` on. Neither
# definition names the index's tablespace, nor the statistics targets of its expression
# columns (`attnum=target`): those come apart.
_INDEXES = """
SELECT i.relname, c.conname,
       coalesce(pg_get_constraintdef(c.oid),
                'USING ' || substr(pg_get_indexdef(x.indexrelid), length({head}) + 1)),
       x.indisunique, obj_description(x.indexrelid, 'pg_class'),
       obj_description(c.oid, 'pg_constraint'), x.indisclustered,
       (SELECT spcname FROM pg_tablespace WHERE oid = i.reltablespace),
       ARRAY(SELECT a.attnum || '=' || a.attstattarget FROM pg_attribute a
              WHERE a.attrelid = x.indexrelid AND a.attstattarget >= 0 ORDER BY a.attnum)
  FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
  LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid AND c.conrelid = x.indrelid
       AND c.contype IN ('p', 'u', 'x')
 WHERE x.indrelid = to_regclass({target})
 ORDER BY c.contype = 'p' DESC NULLS LAST, i.relname
"""

_FOREIGN_KEYS = """
SELECT conname, pg_get_constraintdef(oid), obj_description(oid, 'pg_constraint')
  FROM pg_constraint WHERE conrelid = to_regclass({target}) AND contype = 'f' ORDER BY conname
"""

_TRIGGERS = """
SELECT pg_get_triggerdef(oid), tgname, obj_description(oid, 'pg_trigger')
  FROM pg_trigger WHERE tgrelid = to_regclass({target}) AND NOT tgisinternal ORDER BY tgname
"""

# Sequences the target's columns own: 'a' a serial's (handed over), 'i' an identity's.
_SEQUENCES = """
SELECT a.attname, s.relname, d.deptype = 'i'
  FROM pg_attribute a
  JOIN pg_depend d ON d.refclassid = 'pg_class'::regclass AND d.refobjid = a.attrelid
   AND d.refobjsubid = a.attnum AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
  JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
 WHERE a.attrelid = to_regclass({target})
 ORDER BY a.attnum
"""

# Per-column planner settings `LIKE` does not copy: a statistics target other than the
# default and n_distinct overrides.
_COLUMN_TUNING = """
SELECT a.attname, CASE WHEN a.attstattarget >= 0 THEN a.attstattarget END, o.options
  FROM pg_attribute a,
       LATERAL (SELECT coalesce(array_agg(v), '{{}}') AS options FROM unnest(a.attoptions) v
                 WHERE starts_with(v, 'n_distinct=') OR starts_with(v, 'n_distinct_inherited=')) o
 WHERE a.attrelid = to_regclass({target}) AND a.attnum > 0 AND NOT a.attisdropped
   AND (a.attstattarget >= 0 OR o.options <> '{{}}')
 ORDER BY a.attnum
"""

# Extended statistics in creation order, the order `LIKE ... INCLUDING STATISTICS` copies
# them in; the column list tells a copy from its original.
_STATISTICS = """
SELECT n.nspname, s.stxname, r.rolname, CASE WHEN s.stxstattarget >= 0 THEN s.stxstattarget END,
       obj_description(s.oid, 'pg_statistic_ext'), pg_get_statisticsobjdef_columns(s.oid)
  FROM pg_statistic_ext s JOIN pg_namespace n ON n.oid = s.stxnamespace
  JOIN pg_roles r ON r.oid = s.stxowner
 WHERE s.stxrelid = to_regclass({target})
 ORDER BY s.oid
"""

_TABLE = """
SELECT n.nspname, c.relowner::regrole::text, obj_description(c.oid, 'pg_class'),
       current_user::regrole::text
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.oid = to_regclass({target})
"""

# Grants other than the owner's own; grantee 0 is PUBLIC.
_GRANTS = """
SELECT CASE WHEN g.grantee = 0 THEN NULL ELSE g.grantee::regrole::text END,
       g.privilege_type, g.is_grantable
  FROM pg_class c, aclexplode(c.relacl) g
 WHERE c.oid = to_regclass({target}) AND g.grantee <> c.relowner
 ORDER BY 1, 2
"""


# PostgreSQL 15 and later: publications of whole schemas.
_SCHEMA_PUBLICATIONS = """
SELECT format('publication %I publishes its schema (it would publish the shadow''s rows)',
              p.pubname)
  FROM pg_class c, pg_publication_namespace pn JOIN pg_publication p ON p.oid = pn.pnpubid
 WHERE c.oid = to_regclass({target}) AND pn.pnnspid = c.relnamespace
"""


def blockers(conn: psycopg.Connection, table: TableName) -> list[str]:
    """Why `table` cannot be replaced by a swapped-in shadow; empty when it can."""
    reasons = [r[0] for r in _query(conn, _BLOCKERS, table)]
    version = execute(conn, sql.SQL("SELECT current_setting('server_version_num')::int"))
    if version[0][0] >= 150000:
        reasons += [r[0] for r in _query(conn, _SCHEMA_PUBLICATIONS, table)]
    return reasons


_NOT_VALID = " NOT VALID"


class ForeignKeyBroken(ValueError):
    """The reloaded rows reference rows that the referenced table lacks."""


@dataclass
class _Index:
    name: str
    constraint: str | None
    definition: str  # server-made text: `PRIMARY KEY (..)` or `USING btree (..)`
    unique: bool
    comment: str | None
    constraint_comment: str | None
    clustered: bool
    tablespace: str | None  # None: the database's default
    statistics_targets: list[str]  # `column number=target` of its expression columns
    temporary: str = ""  # its name on the shadow until the old table is gone


@dataclass
class _Statistics:
    schema: str
    name: str
    owner: str
    target: int | None  # None: the columns' own targets
    comment: str | None
    columns: str  # pg_get_statisticsobjdef_columns()

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)


@dataclass
class _Target:
    schema: str
    owner: str
    comment: str | None
    loading_role: str
    indexes: list[_Index] = field(default_factory=list)
    foreign_keys: list[tuple[str, str, str | None]] = field(default_factory=list)
    triggers: list[tuple[str, str, str | None]] = field(default_factory=list)
    sequences: list[tuple[str, str, bool]] = field(default_factory=list)
    grants: list[tuple[str | None, str, bool]] = field(default_factory=list)
    column_tuning: list[tuple[str, int | None, list[str]]] = field(default_factory=list)
    statistics: list[_Statistics] = field(default_factory=list)


def reload(conn: psycopg.Connection, table: TableName, copy: Callable[[TableName], int]) -> int:
    """Replace `table` (which `blockers()` found swappable) by a shadow filled by `copy`;
    the number of rows `copy` wrote. Uncommitted: the caller commits or rolls back."""
    target = _describe(conn, table)
    token = secrets.token_hex(4)
    shadow = TableName(target.schema, f"summit_shadow_{token}")
    old = f"summit_replaced_{token}"
    execute(
        conn,
        sql.SQL(
            "CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING GENERATED"
            " INCLUDING CONSTRAINTS INCLUDING COMMENTS INCLUDING STORAGE INCLUDING COMPRESSION"
            " INCLUDING STATISTICS)"
        ).format(shadow.ident, table.ident),
    )
    if target.owner != target.loading_role:
        # First: a serial's sequence can only be handed to a table of its own owner.
        execute(
            conn,
            sql.SQL("ALTER TABLE {} OWNER TO {}").format(
                shadow.ident, sql.Identifier(target.owner)
            ),
        )
    _continue_identities(conn, shadow, target)
    copied_statistics = _tune(conn, shadow, target)
    rows = copy(shadow)
    _build(conn, shadow, target, token)
    execute(conn, sql.SQL("ANALYZE {}").format(shadow.ident))
    _add_foreign_keys(conn, table, shadow, target)
    _swap(conn, table, shadow, old, target, copied_statistics)
    log.info(
        "full reload swapped in a shadow table",
        extra={"stage": "loading", "table": str(table), "rows": rows},
    )
    return rows


def _literal(table: TableName) -> sql.Literal:
    return sql.Literal(table.ident.as_string(None))


def _query(conn: psycopg.Connection, query: str, table: TableName) -> list[tuple]:
    """One of the catalog queries above, about `table`."""
    return execute(conn, sql.SQL(query).format(target=_literal(table), head=sql.SQL(_HEAD)))


def _describe(conn: psycopg.Connection, table: TableName) -> _Target:
    def rows(query: str) -> list[tuple]:
        return _query(conn, query, table)

    schema, owner, comment, loading_role = rows(_TABLE)[0]
    return _Target(
        schema=schema,
        owner=owner,
        comment=comment,
        loading_role=loading_role,
        indexes=[
            _Index(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], list(r[8]))
            for r in rows(_INDEXES)
        ],
        foreign_keys=[(r[0], r[1], r[2]) for r in rows(_FOREIGN_KEYS)],
        triggers=[(r[0], r[1], r[2]) for r in rows(_TRIGGERS)],
        sequences=[(r[0], r[1], bool(r[2])) for r in rows(_SEQUENCES)],
        grants=[(r[0], r[1], bool(r[2])) for r in rows(_GRANTS)],
        column_tuning=[(r[0], r[1], list(r[2])) for r in rows(_COLUMN_TUNING)],
        statistics=[_Statistics(*r) for r in rows(_STATISTICS)],
    )


def _tune(
    conn: psycopg.Connection, shadow: TableName, target: _Target
) -> list[tuple[_Statistics, _Statistics]]:
    """The target's planner tuning on the shadow, before its ANALYZE; the shadow's copies
    of the target's extended statistics, each beside its original."""
    for column, statistics_target, options in target.column_tuning:
        alter = sql.SQL("ALTER TABLE {} ALTER COLUMN {} ").format(
            shadow.ident, sql.Identifier(column)
        )
        if statistics_target is not None:
            execute(conn, alter + sql.SQL("SET STATISTICS {}").format(statistics_target))
        for option in options:
            name, value = option.split("=", 1)  # one of _COLUMN_TUNING's two names
            execute(
                conn,
                alter + sql.SQL("SET ({} = {})").format(sql.SQL(name), sql.Literal(value)),
            )
    copies = [_Statistics(*r) for r in _query(conn, _STATISTICS, shadow)]
    if [c.columns for c in copies] != [s.columns for s in target.statistics]:
        raise RuntimeError(
            f"the shadow of {shadow} did not get the target's extended statistics in their order"
        )
    for copy, original in zip(copies, target.statistics, strict=True):
        if original.target is not None:
            execute(
                conn,
                sql.SQL("ALTER STATISTICS {} SET STATISTICS {}").format(
                    copy.ident, original.target
                ),
            )
    return list(zip(copies, target.statistics, strict=True))


def _continue_identities(conn: psycopg.Connection, shadow: TableName, target: _Target) -> None:
    """The shadow's identity columns go on from where the target's stood, as they would
    after a TRUNCATE (LIKE gives the shadow fresh sequences)."""
    for column, sequence, identity in target.sequences:
        if identity:
            execute(
                conn,
                sql.SQL(
                    "SELECT setval(pg_get_serial_sequence({}, {}), v) FROM"
                    " (SELECT pg_sequence_last_value({}::regclass) AS v) s WHERE v IS NOT NULL"
                ).format(
                    sql.Literal(shadow.ident.as_string(None)),
                    sql.Literal(column),
                    sql.Literal(sql.Identifier(target.schema, sequence).as_string(None)),
                ),
            )


def _build(conn: psycopg.Connection, shadow: TableName, target: _Target, token: str) -> None:
    """The target's indexes and key constraints (foreign keys come later), built on the
    loaded shadow under temporary names (index names are per schema, the target still holds
    the real ones); definitions are the server's own text from pg_get_indexdef and
    pg_get_constraintdef, each built in the tablespace the target's index is in."""
    for number, index in enumerate(target.indexes):
        index.temporary = f"summit_shadow_{token}_{number}"
        execute(
            conn,
            sql.SQL("SET LOCAL default_tablespace = {}").format(
                sql.Identifier(index.tablespace) if index.tablespace else sql.Literal("")
            ),
        )
        if index.constraint is not None:
            statement = sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                shadow.ident, sql.Identifier(index.temporary), sql.SQL(index.definition)
            )
        else:
            statement = sql.SQL("CREATE {}INDEX {} ON {} {}").format(
                sql.SQL("UNIQUE " if index.unique else ""),
                sql.Identifier(index.temporary),
                shadow.ident,
                sql.SQL(index.definition),
            )
        execute(conn, statement)
        for setting in index.statistics_targets:
            column, statistics_target = setting.split("=")
            execute(
                conn,
                sql.SQL("ALTER INDEX {} ALTER COLUMN {} SET STATISTICS {}").format(
                    sql.Identifier(target.schema, index.temporary),
                    sql.Literal(int(column)),
                    sql.Literal(int(statistics_target)),
                ),
            )
    execute(conn, sql.SQL("RESET default_tablespace"))


def _add_foreign_keys(
    conn: psycopg.Connection, table: TableName, shadow: TableName, target: _Target
) -> None:
    """The target's foreign keys on the shadow, last before the swap: adding one locks the
    table it references against writers (SHARE ROW EXCLUSIVE) until the commit. The lock
    gives way to a long writer like the swap's does; the one attempt only records the keys
    (NOT VALID), so a retry repeats no scan, and the rows are checked after it under the
    locks it took. A key the target had NOT VALID stays so, unchecked."""
    if not target.foreign_keys:
        return
    # pg_get_constraintdef() ends a key the target never validated with NOT VALID.
    checked = [n for n, definition, _ in target.foreign_keys if not definition.endswith(_NOT_VALID)]
    execute(
        conn,
        with_lock_retry(
            *(
                # Constraint names are per table: the shadow's may be the final ones at once.
                sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}{}").format(
                    shadow.ident,
                    sql.Identifier(name),
                    sql.SQL(definition),
                    sql.SQL(_NOT_VALID if name in checked else ""),
                )
                for name, definition, _ in target.foreign_keys
            ),
            what=f"adding the foreign keys of the reloaded {table}",
        ),
    )
    for name in checked:
        try:
            execute(
                conn,
                sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {}").format(
                    shadow.ident, sql.Identifier(name)
                ),
            )
        except psycopg.errors.ForeignKeyViolation as exc:
            raise ForeignKeyBroken(
                f"the reloaded rows of {table} break its foreign key {name}"
                f" ({exc.diag.message_detail or exc}); the old rows are kept"
            ) from exc


def _swap(
    conn: psycopg.Connection,
    table: TableName,
    shadow: TableName,
    old: str,
    target: _Target,
    copied_statistics: list[tuple[_Statistics, _Statistics]],
) -> None:
    schema = target.schema
    live = TableName(schema, table.name)
    # A serial's sequence would go with the old table: it moves to the new one first.
    serials = [
        sql.SQL("ALTER SEQUENCE {} OWNED BY {}.{}").format(
            sql.Identifier(schema, sequence), live.ident, sql.Identifier(column)
        )
        for column, sequence, identity in target.sequences
        if not identity
    ]
    # The one wait for readers, given way to them: the target's ACCESS EXCLUSIVE lock, and
    # that of each table its foreign keys reference (dropping the old table drops them).
    # One attempt takes both, so neither is held while the other waits.
    execute(
        conn,
        with_lock_retry(
            sql.SQL("ALTER TABLE {} RENAME TO {}").format(live.ident, sql.Identifier(old)),
            sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                shadow.ident, sql.Identifier(table.name)
            ),
            *serials,
            sql.SQL("DROP TABLE {}").format(sql.Identifier(schema, old)),
            what=f"swapping in the reloaded {table}",
        ),
    )
    new_sequences = {column: name for column, name, identity in _owned(conn, live) if identity}
    _restore(conn, live, target, new_sequences)
    _restore_statistics(conn, copied_statistics)


def _owned(conn: psycopg.Connection, table: TableName) -> list[tuple]:
    return _query(conn, _SEQUENCES, table)


def _restore(
    conn: psycopg.Connection, live: TableName, target: _Target, new_sequences: dict[str, str]
) -> None:
    """Names, grants, triggers and comments the old table had, on the new one."""
    schema = target.schema
    for column, sequence, identity in target.sequences:
        if identity:
            execute(
                conn,
                sql.SQL("ALTER SEQUENCE {} RENAME TO {}").format(
                    sql.Identifier(schema, new_sequences[column]), sql.Identifier(sequence)
                ),
            )
    for index in target.indexes:
        if index.constraint is not None:
            execute(
                conn,
                sql.SQL("ALTER TABLE {} RENAME CONSTRAINT {} TO {}").format(
                    live.ident, sql.Identifier(index.temporary), sql.Identifier(index.constraint)
                ),
            )
        if index.constraint != index.name:
            execute(
                conn,
                sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                    sql.Identifier(schema, index.constraint or index.temporary),
                    sql.Identifier(index.name),
                ),
            )
        _comment(conn, "INDEX", sql.Identifier(schema, index.name), index.comment)
        if index.constraint is not None:
            _comment_constraint(conn, index.constraint, live, index.constraint_comment)
        if index.clustered:
            execute(
                conn,
                sql.SQL("ALTER TABLE {} CLUSTER ON {}").format(
                    live.ident, sql.Identifier(index.name)
                ),
            )
    for name, _, comment in target.foreign_keys:
        _comment_constraint(conn, name, live, comment)
    for grantee, privilege, grantable in target.grants:
        execute(
            conn,
            sql.SQL("GRANT {} ON TABLE {} TO {}{}").format(
                sql.SQL(privilege),  # a privilege keyword aclexplode returned
                live.ident,
                sql.Identifier(grantee) if grantee is not None else sql.SQL("PUBLIC"),
                sql.SQL(" WITH GRANT OPTION" if grantable else ""),
            ),
        )
    for definition, name, comment in target.triggers:
        # The server's own CREATE TRIGGER text names the table, which now is the new one.
        execute(conn, sql.SQL(definition))
        if comment is not None:
            execute(
                conn,
                sql.SQL("COMMENT ON TRIGGER {} ON {} IS {}").format(
                    sql.Identifier(name), live.ident, sql.Literal(comment)
                ),
            )
    _comment(conn, "TABLE", live.ident, target.comment)


def _restore_statistics(
    conn: psycopg.Connection, copied: list[tuple[_Statistics, _Statistics]]
) -> None:
    """The extended statistics' names, schema, owner and comment, once the originals went
    with the old table."""
    for copy, original in copied:
        moved = copy.ident
        if copy.schema != original.schema:
            execute(
                conn,
                sql.SQL("ALTER STATISTICS {} SET SCHEMA {}").format(
                    moved, sql.Identifier(original.schema)
                ),
            )
            moved = sql.Identifier(original.schema, copy.name)
        execute(
            conn,
            sql.SQL("ALTER STATISTICS {} RENAME TO {}").format(
                moved, sql.Identifier(original.name)
            ),
        )
        if original.owner != copy.owner:
            execute(
                conn,
                sql.SQL("ALTER STATISTICS {} OWNER TO {}").format(
                    original.ident, sql.Identifier(original.owner)
                ),
            )
        _comment(conn, "STATISTICS", original.ident, original.comment)


def _comment(
    conn: psycopg.Connection, kind: str, name: sql.Composable, comment: str | None
) -> None:
    if comment is not None:
        execute(
            conn,
            sql.SQL("COMMENT ON {} {} IS {}").format(sql.SQL(kind), name, sql.Literal(comment)),
        )


def _comment_constraint(
    conn: psycopg.Connection, name: str, live: TableName, comment: str | None
) -> None:
    if comment is not None:
        execute(
            conn,
            sql.SQL("COMMENT ON CONSTRAINT {} ON {} IS {}").format(
                sql.Identifier(name), live.ident, sql.Literal(comment)
            ),
        )
