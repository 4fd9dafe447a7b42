"""The expression language of `filter` and `derive`, compiled to pyarrow.compute calls.

Expressions come from pipeline configurations, so they are never handed to `eval`. A
small lexer accepts SQL spellings and rewrites the text into Python syntax, in which
every identifier becomes an opaque placeholder; Python's `ast` parses that, and only a
whitelist of node types is compiled. Whatever else the parser accepts (attributes,
subscripts, lambdas, comprehensions, unknown functions, `__dunder__` names) is rejected
by naming it.

Grammar, loosest binding first:
    or · and · not · comparisons (= == != <> < <= > >=, chained; IS [NOT] NULL;
    [NOT] IN (literal, ...)) · + - · * / % · unary - · function calls, column names,
    literals ('text' or "text", 42, 4.2, TRUE, FALSE, NULL) and parentheses.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

import pyarrow as pa
import pyarrow.compute as pc

from summit_etl.transform import functions as fn
from summit_etl.transform.base import column
from summit_etl.transform.errors import TransformError

Evaluator: TypeAlias = Callable[[pa.Table], fn.Value]

# Longer text is no sensible condition, and deep nesting could exhaust the parser.
_MAX_LENGTH = 10_000
# `**`, `//`, `.`, brackets, `:` and the like are lexed only so that the parser can name
# them when it refuses them; any other character is refused by the lexer itself.
_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*")
  | (?P<number>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<op><>|!=|<=|>=|==|\*\*|//|[=<>+\-*/%(),.\[\]{}:~&|^@])
    """,
    re.VERBOSE,
)
# Keywords and literals in SQL (or Python) spelling, any case, as Python spells them.
_KEYWORDS = {
    "and": "and",
    "or": "or",
    "not": "not",
    "is": "is",
    "in": "in",
    "null": "None",
    "none": "None",
    "true": "True",
    "false": "False",
}
_OPERATORS = {"=": "==", "<>": "!="}
_PLACEHOLDER = re.compile(r"\b_n(\d+)\b")

_BINARY: dict[type[ast.operator], Callable[[fn.Value, fn.Value], fn.Value]] = {
    ast.Add: fn.add,
    ast.Sub: fn.subtract,
    ast.Mult: fn.multiply,
    ast.Div: fn.divide,
    ast.Mod: fn.remainder,
}
_COMPARE: dict[type[ast.cmpop], Callable[[fn.Value, fn.Value], fn.Value]] = {
    ast.Eq: pc.equal,
    ast.NotEq: pc.not_equal,
    ast.Lt: pc.less,
    ast.LtE: pc.less_equal,
    ast.Gt: pc.greater,
    ast.GtE: pc.greater_equal,
}


@dataclass(frozen=True)
class _Lexed:
    source: str  # Python syntax
    names: list[str]  # identifier i of the original text is `_n{i}` in `source`
    starts: list[tuple[int, str]]  # (offset in source, original token), for error messages


def _lex(text: str) -> _Lexed:
    if len(text) > _MAX_LENGTH:
        raise TransformError(f"the expression is longer than {_MAX_LENGTH} characters")
    out: list[str] = []
    names: list[str] = []
    starts: list[tuple[int, str]] = []
    position = length = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise TransformError(
                f"unexpected character {text[position]!r} at position {position} "
                f"in {_shorten(text)}"
            )
        token, kind = match.group(), match.lastgroup
        position = match.end()
        if kind == "space":
            # Kept (as one blank) so that messages quote the expression as it was written.
            out.append(" ")
            length += 1
            continue
        if kind == "string":
            quote = token[0]
            python = repr(token[1:-1].replace(quote * 2, quote))  # SQL doubles its quotes
        elif kind == "name" and token.lower() in _KEYWORDS:
            python = _KEYWORDS[token.lower()]
        elif kind == "name":
            python = f"_n{len(names)}"
            names.append(token)
        else:
            python = _OPERATORS.get(token, token)
        starts.append((length, token))
        out.append(python)
        length += len(python)
    return _Lexed("".join(out), names, starts)


class _Compiler:
    def __init__(self, lexed: _Lexed) -> None:
        self._lexed = lexed
        self.columns: dict[str, None] = {}  # the column names read, in order of appearance

    def _original(self, node: ast.AST) -> str:
        """The text of `node` in the user's spelling, for messages."""
        segment = ast.get_source_segment(self._lexed.source, node) or ""
        text = _PLACEHOLDER.sub(lambda m: self._lexed.names[int(m.group(1))], segment)
        return text if len(text) <= 80 else text[:77] + "..."

    def _name(self, placeholder: str) -> str:
        return self._lexed.names[int(placeholder[2:])]

    def compile(self, node: ast.AST) -> Evaluator:
        if isinstance(node, ast.Constant):
            return self._constant(node)
        if isinstance(node, ast.Name):
            name = self._name(node.id)
            if name.startswith("__"):
                raise TransformError(f"the name {name!r} is not allowed")
            self.columns[name] = None
            return lambda batch: column(batch, name, "column")
        if isinstance(node, ast.BoolOp):
            combine = pc.and_kleene if isinstance(node.op, ast.And) else pc.or_kleene
            return self._fold(combine, [self.compile(v) for v in node.values])
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.USub):
            operand = self.compile(node.operand)
            apply = pc.invert if isinstance(node.op, ast.Not) else fn.negate
            return lambda batch: apply(operand(batch))
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            op, left, right = (
                _BINARY[type(node.op)],
                self.compile(node.left),
                self.compile(node.right),
            )
            return lambda batch: op(left(batch), right(batch))
        if isinstance(node, ast.Compare):
            return self._compare(node)
        if isinstance(node, ast.Call):
            return self._call(node)
        raise TransformError(self._refusal(node))

    def _refusal(self, node: ast.AST) -> str:
        text = self._original(node)
        if isinstance(node, ast.Attribute):
            return f"attribute access {'.' + self._name(node.attr)!r} in {text!r} is not allowed"
        if isinstance(node, ast.Subscript):
            return f"subscripts such as {text!r} are not allowed"
        if isinstance(node, ast.BinOp | ast.UnaryOp):
            return f"the operator in {text!r} is not allowed (use + - * / % and NOT)"
        if isinstance(node, ast.List | ast.Tuple):
            return f"a list such as {text!r} is only allowed after IN"
        return f"{text!r} is not allowed in an expression"

    @staticmethod
    def _fold(combine: Callable[..., fn.Value], parts: Sequence[Evaluator]) -> Evaluator:
        def evaluate(batch: pa.Table) -> fn.Value:
            result = parts[0](batch)
            for part in parts[1:]:
                result = combine(result, part(batch))
            return result

        return evaluate

    def _constant(self, node: ast.Constant) -> Evaluator:
        if not isinstance(node.value, str | int | float | bool | type(None)):
            raise TransformError(f"the literal {self._original(node)!r} is not allowed")
        try:
            scalar = pa.scalar(node.value)
        except (pa.ArrowException, OverflowError) as exc:
            raise TransformError(f"the literal {self._original(node)!r} is out of range") from exc
        return lambda batch: scalar

    def _literals(self, node: ast.expr) -> pa.Array:
        """The right-hand side of IN: literals in parentheses (one literal is a list of one)."""
        items = node.elts if isinstance(node, ast.Tuple | ast.List) else [node]
        values: list[object] = []
        for item in items:
            negated = item.operand if isinstance(item, ast.UnaryOp) else None
            if isinstance(item, ast.Constant):
                values.append(item.value)
            elif (
                isinstance(item, ast.UnaryOp)
                and isinstance(item.op, ast.USub)
                and isinstance(negated, ast.Constant)
                and isinstance(negated.value, int | float)
                and not isinstance(negated.value, bool)
            ):
                values.append(-negated.value)
            else:
                raise TransformError(f"IN takes a list of literals, not {self._original(item)!r}")
        try:
            return pa.array(values)
        except (pa.ArrowException, OverflowError) as exc:
            raise TransformError(
                f"the IN list {self._original(node)!r} mixes types or is out of range"
            ) from exc

    def _compare(self, node: ast.Compare) -> Evaluator:
        """`a < b <= c` is `a < b AND b <= c`, as in Python."""
        parts: list[Evaluator] = []
        left_node = node.left
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            parts.append(self._comparison(op, self.compile(left_node), right_node))
            left_node = right_node
        return self._fold(pc.and_kleene, parts)

    def _comparison(self, op: ast.cmpop, left: Evaluator, right_node: ast.expr) -> Evaluator:
        if isinstance(op, ast.In | ast.NotIn):
            options = self._literals(right_node)
            if isinstance(op, ast.In):
                return lambda batch: fn.is_in(left(batch), options)
            return lambda batch: pc.invert(fn.is_in(left(batch), options))
        if isinstance(op, ast.Is | ast.IsNot):
            if not (isinstance(right_node, ast.Constant) and right_node.value is None):
                raise TransformError(f"IS takes only NULL, not {self._original(right_node)!r}")
            test = pc.is_null if isinstance(op, ast.Is) else pc.is_valid
            return lambda batch: test(left(batch))
        compare, right = _COMPARE[type(op)], self.compile(right_node)
        return lambda batch: compare(*fn.align(left(batch), right(batch)))

    def _call(self, node: ast.Call) -> Evaluator:
        if not isinstance(node.func, ast.Name):
            raise TransformError(f"calling {self._original(node.func)!r} is not allowed")
        name = self._name(node.func.id)
        entry = fn.FUNCTIONS.get(name.lower())
        if entry is None:
            raise TransformError(
                f"unknown function {name!r} (available: {', '.join(sorted(fn.FUNCTIONS))})"
            )
        fewest, most, implementation = entry
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            raise TransformError(f"{name}() takes plain arguments only")
        if not fewest <= len(node.args) <= most:
            raise TransformError(
                f"{name}() takes {fewest}{'' if fewest == most else f' to {most}'} "
                f"argument(s), not {len(node.args)}"
            )
        arguments = [self.compile(a) for a in node.args]
        return lambda batch: implementation(*(a(batch) for a in arguments))


@dataclass(frozen=True)
class Expression:
    """A parsed expression, ready to evaluate against batches."""

    text: str
    _evaluate: Evaluator
    columns: tuple[str, ...]  # the columns it reads, so they can be checked before a run

    def evaluate(self, batch: pa.Table) -> pa.Array | pa.ChunkedArray:
        """One value per row of `batch` (a literal result is repeated)."""
        result = self._evaluate(batch)
        if isinstance(result, pa.Scalar):
            return pa.repeat(result, batch.num_rows)
        return result


def parse_expression(text: str) -> Expression:
    """Parse and compile `text`, or raise TransformError naming what is wrong."""
    lexed = _lex(text)
    try:
        tree = ast.parse(lexed.source, mode="eval")
        compiler = _Compiler(lexed)
        evaluate = compiler.compile(tree.body)
        return Expression(text, evaluate, tuple(compiler.columns))
    except SyntaxError as exc:
        offset = (exc.offset or 0) - 1
        before = [token for start, token in lexed.starts if start <= offset]
        if offset < 0 or not before:
            raise TransformError(f"the expression {_shorten(text)} ends unexpectedly") from None
        raise TransformError(
            f"the expression {_shorten(text)} cannot be parsed near {before[-1]!r}"
        ) from None
    except RecursionError:
        raise TransformError(f"the expression {_shorten(text)} is nested too deeply") from None


def _shorten(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")
