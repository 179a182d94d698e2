"""`--where`: a small query language over a run's keys, parsed with Python's `ast` and
evaluated node by node, never with eval(), so a query cannot call, import or reach anything.

A query is comparisons (``== != < <= > >=``, ``in`` / ``not in`` a list or tuple, chains such as
``0.9 < test_acc < 0.99``) joined by ``and``, ``or``, ``not`` and parentheses. Operands are keys
(summary.json's, ``test_acc``; the config's, dotted: ``optimizer.name``) and constants: numbers,
quoted strings, ``true``/``false``/``null`` (or Python's True/False/None).

A comparison with a key that a run lacks, or of values that have no order (``null > 0.9``, a
string with a number), is *unknown*: ``not`` keeps it unknown, ``and``/``or`` follow Kleene's
three-valued logic, and a run is listed only when the whole query is true. So a run lacking a key
never matches a condition on it, also under ``not``.
"""

from __future__ import annotations

import ast
import difflib
import operator
from collections.abc import Callable, Collection, Mapping
from typing import Any

from mnistlab.errors import MnistlabError

Values = Mapping[str, Any]  # a run's keys -> values (see mnistlab.runs.index)
Condition = Callable[[Values], bool | None]  # None: unknown
Operand = Callable[[Values], Any]

MISSING = object()  # what a run lacking a key gives for it
NAMED_CONSTANTS = {"true": True, "false": False, "null": None}
COMPARISONS: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}  # fmt: skip
ALLOWED = ("allowed: keys, numbers, quoted strings, true/false/null, comparisons (== != < <= > >=, "
           "in / not in a [list]), and, or, not, parentheses")
# what the nodes a query may not hold are called in its error
FORBIDDEN = {
    ast.Call: "a function call", ast.Subscript: "a subscript", ast.Attribute: "attribute access",
    ast.BinOp: "arithmetic", ast.Lambda: "a lambda", ast.IfExp: "an if-expression",
    ast.NamedExpr: "an assignment", ast.JoinedStr: "an f-string", ast.Dict: "a dict",
    ast.Set: "a set", ast.ListComp: "a comprehension", ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension", ast.GeneratorExp: "a comprehension", ast.Starred: "a *",
    ast.Is: "`is` (write ==)", ast.IsNot: "`is not` (write !=)",
}  # fmt: skip


def unknown_name(option: str, name: str, known: Collection[str]) -> MnistlabError:
    """The one wording for a key no run has: up to 3 close matches, a dotted key's last part
    counting as close (``lr`` -> ``optimizer.lr``)."""
    tails = sorted(k for k in known if k.endswith(f".{name}"))
    close = list(dict.fromkeys([*tails, *difflib.get_close_matches(name, sorted(known), n=3)]))[:3]
    hint = (f"did you mean {', '.join(close)}?" if close else
            "keys are summary.json's (test_acc, status, ...) and the config's, dotted "
            "(optimizer.name)")
    return MnistlabError(f"{option}: unknown key '{name}'; {hint}")


def compile_where(expr: str, known: Collection[str]) -> Callable[[Values], bool]:
    """The query as a test of one run's values; MnistlabError (one line) for a query that does
    not parse, holds anything but the allowed nodes, or names a key no run has."""
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError as e:
        where = f"at character {e.offset}" if e.offset else "at its end"
        raise MnistlabError(f"--where {expr!r}: {e.msg} ({where})") from None
    condition = _Compiler(expr, known).condition(tree.body)
    return lambda values: condition(values) is True


class _Compiler:
    """Turns the checked tree into closures, one per node, raising on the first node that is
    not allowed, so a query is checked whole before any run is tested."""

    def __init__(self, expr: str, known: Collection[str]) -> None:
        self.expr, self.known = expr, known

    def fail(self, node: ast.AST, what: str | None = None) -> MnistlabError:
        """One line: what is not allowed, the part of the query it is, what is allowed."""
        what = what or FORBIDDEN.get(type(node), type(node).__name__)
        shown = f" ({ast.unparse(node)})" if isinstance(node, ast.expr) else ""
        return MnistlabError(f"--where {self.expr!r}: {what}{shown} is not allowed; {ALLOWED}")

    def condition(self, node: ast.expr) -> Condition:
        if isinstance(node, ast.BoolOp):
            parts = [self.condition(v) for v in node.values]
            return _all(parts) if isinstance(node.op, ast.And) else _any(parts)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            inner = self.condition(node.operand)
            return lambda values: None if (c := inner(values)) is None else not c
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.Name | ast.Attribute | ast.Constant):
            raise self.fail(node, "a value not compared to anything")
        raise self.fail(node)

    def compare(self, node: ast.Compare) -> Condition:
        operands = [self.operand(node.left)]
        tests = []
        for op, right in zip(node.ops, node.comparators, strict=True):
            if type(op) not in COMPARISONS:
                raise self.fail(op)
            listed = isinstance(op, ast.In | ast.NotIn)
            operands.append(self.listed(right) if listed else self.operand(right))
            tests.append(COMPARISONS[type(op)])
        pairs = [
            _pair(test, operands[i], operands[i + 1]) for i, test in enumerate(tests)
        ]  # a < b < c is a < b and b < c
        return _all(pairs)

    def listed(self, node: ast.expr) -> Operand:
        """What `in` tests against: a list or tuple of constants."""
        if not isinstance(node, ast.List | ast.Tuple):
            raise self.fail(node, "`in` with anything but a [list] or (tuple) of constants")
        items = tuple(self.constant(item) for item in node.elts)
        return lambda values: items

    def operand(self, node: ast.expr) -> Operand:
        key = _dotted(node)
        if key is not None and key not in NAMED_CONSTANTS:
            if key not in self.known:
                raise unknown_name("--where", key, self.known)
            return lambda values: values.get(key, MISSING)
        if isinstance(node, ast.List | ast.Tuple):
            raise self.fail(node, "a list outside `in`")
        value = self.constant(node)
        return lambda values: value

    def constant(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Name) and node.id in NAMED_CONSTANTS:
            return NAMED_CONSTANTS[node.id]
        if isinstance(node, ast.Constant) and isinstance(node.value, str | int | float | None):
            return node.value
        if (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd)
                and isinstance(node.operand, ast.Constant)
                and isinstance(node.operand.value, int | float)
                and not isinstance(node.operand.value, bool)):
            value = node.operand.value
            return -value if isinstance(node.op, ast.USub) else value
        raise self.fail(node, None if type(node) in FORBIDDEN else
                        f"{ast.unparse(node)!r} as a constant")


def _dotted(node: ast.expr) -> str | None:
    """``optimizer.name`` as the key it spells, or None for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        parent = _dotted(node.value)
        return None if parent is None else f"{parent}.{node.attr}"
    return None


def _pair(test: Callable[[Any, Any], Any], left: Operand, right: Operand) -> Condition:
    def compare(values: Values) -> bool | None:
        a, b = left(values), right(values)
        if a is MISSING or b is MISSING:
            return None
        try:
            return bool(test(a, b))
        except TypeError:  # no order between these values: unknown, like a missing key
            return None

    return compare


def _all(parts: list[Condition]) -> Condition:
    """Kleene's and: false if any part is false, else unknown if any is unknown."""
    def every(values: Values) -> bool | None:
        results = [p(values) for p in parts]
        return False if False in results else None if None in results else True

    return every


def _any(parts: list[Condition]) -> Condition:
    """Kleene's or: true if any part is true, else unknown if any is unknown."""
    def some(values: Values) -> bool | None:
        results = [p(values) for p in parts]
        return True if True in results else None if None in results else False

    return some
