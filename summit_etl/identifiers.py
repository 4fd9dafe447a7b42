"""Validation and quoting of SQL identifiers taken from pipeline configurations.

Every table or column name that reaches SQL passes through here: names are checked
against a strict pattern first (so a config cannot smuggle SQL in), then quoted with
psycopg.sql so that case and reserved words survive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from psycopg import sql

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")


class InvalidIdentifierError(ValueError):
    """A configured table or column name is not a plain SQL identifier."""


def check_name(name: str, what: str = "identifier") -> str:
    """Return `name` if it is a plain SQL identifier, else raise with a clear reason."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidIdentifierError(
            f"{what} {name!r} is not a valid SQL identifier: use letters, digits, '_' or '$', "
            "starting with a letter or '_', at most 63 characters"
        )
    return name


@dataclass(frozen=True)
class TableName:
    """A possibly schema-qualified table name, validated part by part."""

    schema: str | None
    name: str

    @classmethod
    def parse(cls, qualified: str, what: str = "table") -> TableName:
        parts = qualified.split(".") if isinstance(qualified, str) else [qualified]
        if len(parts) > 2:
            raise InvalidIdentifierError(
                f"{what} {qualified!r} has too many parts: use 'table' or 'schema.table'"
            )
        for part in parts:
            check_name(part, what)
        return cls(parts[0], parts[1]) if len(parts) == 2 else cls(None, parts[0])

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name) if self.schema else sql.Identifier(self.name)

    def with_suffix(self, suffix: str) -> TableName:
        """The sibling table `<name><suffix>` in the same schema (e.g. `_changes`)."""
        return TableName(self.schema, check_name(self.name + suffix, "table"))

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


def columns_sql(names: list[str] | tuple[str, ...]) -> sql.Composed:
    """`"a", "b", "c"` for a list of validated column names."""
    return sql.SQL(", ").join(sql.Identifier(check_name(n, "column")) for n in names)
