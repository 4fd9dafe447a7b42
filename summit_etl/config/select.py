"""Queries in configurations (source.query, join.query, custom_sql rules): one plain SELECT.

They are parsed by PostgreSQL's own parser (libpg_query, through pglast), so what is
refused is what the server would run, not what a pattern guesses: a second statement,
a data-modifying CTE, SELECT INTO, or a locking clause (FOR UPDATE/SHARE) anywhere.
"""

from __future__ import annotations

from pglast import ast, parse_sql
from pglast.parser import ParseError
from pglast.visitors import Visitor

_MODIFYING = (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt)
# Longer text is no sensible query, and walking its tree would take seconds.
_MAX_LENGTH = 100_000


class _Refusals(Visitor):
    """Collects why a parsed SELECT is not a plain read, anywhere in its tree."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def visit(self, ancestors: object, node: object) -> None:
        if isinstance(node, _MODIFYING):
            kind = type(node).__name__.removesuffix("Stmt").upper()
            self.found.append(f"a data-modifying {kind} in a WITH clause")
        elif isinstance(node, ast.SelectStmt):
            if node.intoClause:
                self.found.append("SELECT INTO (it creates a table)")
            if node.lockingClause:
                self.found.append("a locking clause (FOR UPDATE/SHARE)")


def check_select(query: str, what: str) -> str:
    """`query` if PostgreSQL parses it as exactly one plain SELECT, else a ValueError
    that names `what` (the setting or rule)."""
    if len(query) > _MAX_LENGTH:
        raise ValueError(f"{what} is longer than {_MAX_LENGTH} characters")
    try:
        statements = parse_sql(query)
    except ParseError as exc:
        raise ValueError(f"{what} is not valid SQL: {exc}") from None
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply") from None
    if len(statements) != 1:
        count = f"{len(statements)} statements" if statements else "no statement"
        raise ValueError(f"{what} must be a single SELECT, but it holds {count}")
    statement = statements[0].stmt
    if not isinstance(statement, ast.SelectStmt):
        kind = type(statement).__name__.removesuffix("Stmt").upper()
        raise ValueError(f"{what} must be a single SELECT, not a {kind} statement")
    refusals = _Refusals()
    try:
        refusals(statement)
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply") from None
    if refusals.found:
        reasons = ", ".join(dict.fromkeys(refusals.found))
        raise ValueError(f"{what} must be a single plain SELECT: it holds {reasons}")
    return query
