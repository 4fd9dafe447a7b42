"""The set-based statements that merge staged rows into a target, for batch loads and CDC
applies alike (in the spirit of dlt's `sql_jobs.py`: one generator of merge SQL).

Every statement reads the incoming rows from one FROM item that binds the alias `s` and
writes the target as `t`. The caller decides which statements a strategy runs, in which
order, and restricts each to the rows it concerns with `where` (CDC: deletes or not).
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from summit_etl.identifiers import TableName, columns_sql

# The scd_type2 bookkeeping a newly opened version gets, and what closing one sets.
_OPEN_VERSION = sql.SQL("now(), NULL, true")
_HISTORY_COLUMNS = sql.SQL("effective_from, effective_to, is_current")
_CLOSE_VERSION = sql.SQL("effective_to = now(), is_current = false")


@dataclass(frozen=True)
class MergeSql:
    target: TableName
    columns: list[str]  # the target columns the incoming rows carry
    key: list[str]
    source: sql.Composable  # a FROM item binding `s`, e.g. `summit_latest AS s`
    # A jsonb column of `s` whose keys name the columns a row really carries: an absent
    # column (an unchanged TOASTed value in the WAL) keeps what the target holds.
    present: sql.Identifier | None = None
    # Columns whose change is judged by their text: types without an equality operator
    # (xml, json, point); equal values print alike.
    by_text: frozenset[str] = frozenset()

    @property
    def tracked(self) -> list[str]:
        return [c for c in self.columns if c not in self.key]

    def match(self, current_only: bool = False) -> sql.Composable:
        """`t` is the target row of `s`'s key (with `current_only`, its open version)."""
        if not self.key:
            return sql.SQL("false")
        keys = sql.SQL(" AND ").join(
            sql.SQL("t.{k} = s.{k}").format(k=sql.Identifier(k)) for k in self.key
        )
        return sql.SQL("{}{}").format(keys, sql.SQL(" AND t.is_current" if current_only else ""))

    def changed(self) -> sql.Composable:
        """The matched target row differs from the incoming one in a non-key column."""
        if not self.tracked:
            return sql.SQL("false")
        target: list[sql.Composable] = [
            sql.SQL("t.{}").format(sql.Identifier(c)) for c in self.tracked
        ]
        return sql.SQL("ROW({}) IS DISTINCT FROM ROW({})").format(
            self._compared(target), self._compared(self._incoming_each())
        )

    def _compared(self, values: list[sql.Composable]) -> sql.Composable:
        return sql.SQL(", ").join(
            sql.SQL("({})::text").format(v) if c in self.by_text else v
            for c, v in zip(self.tracked, values, strict=True)
        )

    def differing(self, current_only: bool = False) -> sql.Composed:
        """A query of the incoming rows that are new to the target or differ from its row
        of their key (with `current_only`, its open version); a row the target holds as it
        is, it leaves out."""
        return sql.SQL(
            "SELECT s.* FROM {} WHERE NOT EXISTS (SELECT 1 FROM {} AS t WHERE {} AND NOT {})"
        ).format(self.source, self.target.ident, self.match(current_only), self.changed())

    def insert(
        self,
        *,
        where: sql.Composable | None = None,
        missing_only: bool = False,
        history: bool = False,
        order_by: sql.Composable | None = None,
    ) -> sql.Composed:
        """INSERT the incoming rows; `missing_only`: those without a (current, with
        `history`) target row; `history`: as newly opened scd_type2 versions."""
        conditions = [where] if where is not None else []
        if missing_only:
            conditions.append(
                sql.SQL("NOT EXISTS (SELECT 1 FROM {} AS t WHERE {})").format(
                    self.target.ident, self.match(history)
                )
            )
        return sql.SQL("INSERT INTO {} ({}{}) SELECT {}{} FROM {}{}{}").format(
            self.target.ident,
            columns_sql(self.columns),
            sql.SQL(", {}").format(_HISTORY_COLUMNS) if history else sql.SQL(""),
            _prefixed(self.columns, "s."),
            sql.SQL(", {}").format(_OPEN_VERSION) if history else sql.SQL(""),
            self.source,
            _where(conditions),
            sql.SQL(" ORDER BY {}").format(order_by) if order_by is not None else sql.SQL(""),
        )

    def update_changed(self, *, where: sql.Composable | None = None) -> sql.Composed:
        """UPDATE the non-key columns of target rows whose incoming row differs (scd_type1)."""
        conditions = [c for c in (where, self.match(), self.changed()) if c is not None]
        return sql.SQL("UPDATE {} AS t SET ({}) = ROW({}) FROM {}{}").format(
            self.target.ident,
            columns_sql(self.tracked),
            self._incoming(),
            self.source,
            _where(conditions),
        )

    def close_current(
        self, *, where: sql.Composable | None = None, changed_only: bool = False
    ) -> sql.Composed:
        """Close the open scd_type2 version of each incoming key (`changed_only`: of keys
        whose values really changed)."""
        conditions = [where] if where is not None else []
        conditions.append(self.match(current_only=True))
        if changed_only:
            conditions.append(self.changed())
        return sql.SQL("UPDATE {} AS t SET {} FROM {}{}").format(
            self.target.ident, _CLOSE_VERSION, self.source, _where(conditions)
        )

    def reopen_changed(self) -> sql.Composed:
        """A query of how many keys it gave a new scd_type2 version: it closes the open
        version of each key whose values changed and opens the incoming one in the same
        statement, so the keys to open need no second look-up in the target."""
        return sql.SQL(
            "WITH closed AS ({} RETURNING {}), opened AS (INSERT INTO {} ({}, {}) SELECT {}, {} "
            "FROM closed RETURNING 1) SELECT count(*) FROM opened"
        ).format(
            self.close_current(changed_only=True),
            _prefixed(self.columns, "s."),
            self.target.ident,
            columns_sql(self.columns),
            _HISTORY_COLUMNS,
            columns_sql(self.columns),
            _OPEN_VERSION,
        )

    def fill_from_current(self) -> sql.Composed:
        """UPDATE the incoming rows (`source` must be a plain table) so that each column a
        row lacks (`present`) holds its key's current scd_type2 value: whole-row change
        tests and newly opened versions then keep it."""
        if self.present is None:
            raise ValueError("fill_from_current needs `present`")
        return sql.SQL(
            "UPDATE {} SET ({}) = ROW({}) FROM {} AS t WHERE {} AND NOT s.{} ?& {}"
        ).format(
            self.source,
            columns_sql(self.tracked),
            self._incoming(),
            self.target.ident,
            self.match(current_only=True),
            self.present,
            sql.Literal(self.tracked),
        )

    def delete_matched(self, *, where: sql.Composable | None = None) -> sql.Composed:
        """DELETE the target rows of the incoming keys."""
        conditions = [c for c in (where, self.match()) if c is not None]
        return sql.SQL("DELETE FROM {} AS t USING {}{}").format(
            self.target.ident, self.source, _where(conditions)
        )

    def delete_unmatched(self) -> sql.Composed:
        """DELETE the target rows whose key is not among the incoming rows (delta over a
        full snapshot)."""
        return sql.SQL("DELETE FROM {} AS t WHERE NOT EXISTS (SELECT 1 FROM {} WHERE {})").format(
            self.target.ident, self.source, self.match()
        )

    def _incoming(self) -> sql.Composable:
        return sql.SQL(", ").join(self._incoming_each())

    def _incoming_each(self) -> list[sql.Composable]:
        """Each tracked column's incoming value (what the target keeps when it is absent)."""
        if self.present is None:
            return [sql.SQL("s.{}").format(sql.Identifier(c)) for c in self.tracked]
        return [
            sql.SQL("CASE WHEN s.{present} ? {name} THEN s.{col} ELSE t.{col} END").format(
                present=self.present, name=sql.Literal(c), col=sql.Identifier(c)
            )
            for c in self.tracked
        ]


def _prefixed(names: list[str], prefix: str) -> sql.Composable:
    return sql.SQL(", ").join(sql.SQL(prefix + "{}").format(sql.Identifier(n)) for n in names)


def _where(conditions: list[sql.Composable]) -> sql.Composable:
    if not conditions:
        return sql.SQL("")
    return sql.SQL(" WHERE {}").format(sql.SQL(" AND ").join(conditions))
