"""The checker's side of field constraints (``str(max_length=200)``, ``int(min=1)``...).

* :func:`constrained` resolves a constrained type expression: the base must be ``str``,
  ``int``, ``float`` or ``list[T]``; each constraint must be one the base takes (with a
  did-you-mean), given once, with a literal value of the right type (a length or an
  item count a whole number of at least 0, a bound a number, ``int``'s bounds whole
  numbers, a pattern a string that compiles); ``min`` may not exceed ``max``.
* :func:`literal_problems` finds the literals of an expression that break the
  constraints of the type they go to (a record literal's fields, list items, both
  sides of a conditional, a ``try`` fallback), each located at the literal;
  :func:`fits` reports them, the checker's sites call it before their own type check.

Both report on the module environment and never raise.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, NamedTuple

from ..diagnostics import Span
from ..lang.constraints import NAMES, Constraints
from ..lang.trigger_patterns import size_problem
from ..lang.types import (
    AnyType,
    DictType,
    FloatType,
    IntType,
    ListType,
    OptionalType,
    RecordType,
    StrType,
    Type,
    constraints_of,
    has_constraints,
)
from ..syntax import ast
from ..syntax.builder import suggest

if TYPE_CHECKING:  # pragma: no cover
    from .env import ModuleEnv

__all__ = ["constrained", "fits", "literal_problems"]

_ALL = sorted({n for names in NAMES.values() for n in names})
_LENGTHS = ("min_length", "max_length", "min_items", "max_items")


def _base_name(base: Type) -> str | None:
    if isinstance(base, ListType) and base.constraints is None:
        return "list"
    if isinstance(base, (StrType, IntType, FloatType)) and base.constraints is None:
        return type(base).__name__.removesuffix("Type").lower()
    return None


def constrained(env: ModuleEnv, t: ast.ConstrainedType, base: Type) -> Type:
    """The type ``base`` with the constraints of ``t``; problems are reported and the
    offending constraint dropped (``base`` alone when the base takes none)."""
    kind = _base_name(base)
    if kind is None:
        shown = base.show() if not isinstance(t.base, ast.NamedType) else t.base.name
        env.err(t.base.span, f"{shown} takes no constraints; they go on str, int, float and "
                             f"list[T] (e.g. str(max_length=200), int(min=1, max=5))")
        return base
    allowed = NAMES[kind]
    values: dict[str, Any] = {}
    spans: dict[str, Span] = {}
    for a in t.args:
        name_span = Span.point(a.span.file, a.span.line, a.span.col, len(a.name))
        if a.name not in allowed:
            if a.name in _ALL:
                env.err(name_span, f"{kind} takes no constraint '{a.name}' ({kind} takes "
                                   f"{', '.join(allowed)})")
            else:
                env.err(name_span, f"unknown constraint '{a.name}' for {kind}"
                                   f"{suggest(a.name, list(allowed))} ({kind} takes "
                                   f"{', '.join(allowed)})")
            continue
        if a.name in values:
            env.err(name_span, f"constraint '{a.name}' given twice")
            continue
        value = _value(env, kind, a)
        if value is not None:
            values[a.name] = value
            spans[a.name] = a.value.span
    for lo, hi in (("min_length", "max_length"), ("min", "max"), ("min_items", "max_items")):
        if lo in values and hi in values and values[lo] > values[hi]:
            env.err(spans[lo], f"{lo}={values[lo]!r} is greater than {hi}={values[hi]!r}: no "
                               f"value can meet both")
            del values[lo]
    if not values:
        return base
    c = Constraints(**values)
    if isinstance(base, ListType):
        return ListType(base.item, c)
    assert isinstance(base, (StrType, IntType, FloatType))  # _base_name said so
    return type(base)(c)


class RegexError(NamedTuple):
    """Why ``re`` refuses a regular expression, and where: at the character it names
    when the string is on one line (``syntax``: a syntax error), else the string."""

    span: Span
    message: str
    syntax: bool


def regex_error(node: ast.Str) -> RegexError | None:
    """Why ``re`` refuses the regular expression in string ``node``, or None. Never
    raises."""
    try:
        re.compile(node.value)
    except re.error as exc:
        where = node.span
        if exc.pos is not None and node.span.line == node.span.end_line:
            line, col = node.origin(0, exc.pos)
            where = Span.point(node.span.file, line, col)
        return RegexError(where, exc.msg, True)
    except (OverflowError, RecursionError) as exc:  # x{4294967295}; nesting past the parser
        why = str(exc) if isinstance(exc, OverflowError) else "it is nested too deeply"
        return RegexError(node.span, why, False)
    return None


def _value(env: ModuleEnv, kind: str, a: ast.ConstraintArg) -> Any:
    """The value of one constraint, or ``None`` after reporting why it is refused."""
    e = a.value
    number: int | float | None = None
    if isinstance(e, (ast.Int, ast.Float)):
        number = e.value
    elif isinstance(e, ast.UnaryOp) and e.op == "-" and isinstance(e.operand, (ast.Int, ast.Float)):
        number = -e.operand.value
    if a.name == "pattern":
        if not isinstance(e, ast.Str):
            env.err(e.span, f"constraint 'pattern' must be a string (a regular expression, "
                            f"e.g. pattern=r\"[A-Z]+\"), got {_what(e)}")
            return None
        bad = regex_error(e)
        if bad is not None:
            env.err(bad.span, f"invalid regular expression in constraint 'pattern': {bad.message}")
            return None
        problem = size_problem(e.value)
        if problem is not None:
            env.err(e.span, f"constraint 'pattern' cannot be matched with a bound: {problem}")
            return None
        return e.value
    if a.name in _LENGTHS:
        if not isinstance(number, int):
            env.err(e.span, f"constraint '{a.name}' must be a whole number, got {_what(e)}")
            return None
        if number < 0:
            env.err(e.span, f"constraint '{a.name}' must be at least 0, got {number}")
            return None
        return number
    # min / max
    if number is None or (kind == "int" and not isinstance(number, int)):
        want = "a whole number" if kind == "int" else "a number"
        env.err(e.span, f"constraint '{a.name}' of {kind} must be {want}, got {_what(e)}")
        return None
    return number


def _what(e: ast.Expr) -> str:
    if isinstance(e, ast.Str):
        return "a string"
    if isinstance(e, ast.Float):
        return f"the float {e.value!r}"
    if isinstance(e, ast.Int):
        return f"the int {e.value}"
    if isinstance(e, ast.Bool):
        return "a bool"
    if isinstance(e, ast.NoneLit):
        return "none"
    return "an expression (constraints take literal values)"


# ------------------------------------------------------------------ literals


def literal_problems(e: ast.Expr, t: Type) -> list[tuple[Span, str]]:
    """(span, message) for each literal in ``e`` that breaks a constraint of where it goes
    in ``t`` (``field 'title': at most 20 characters, got 31 (str(max_length=20))``);
    ``[]`` when none does or nothing is known before run time.  Never raises."""
    if not has_constraints(t):
        return []
    out: list[tuple[Span, str]] = []
    stack: list[tuple[ast.Expr, Type, str]] = [(e, t, "")]
    while stack:
        node, want, path = stack.pop()
        if isinstance(want, OptionalType):
            want = want.inner
        if isinstance(want, AnyType):
            continue
        if isinstance(node, ast.Conditional):
            stack += [(node.orelse, want, path), (node.then, want, path)]
            continue
        if isinstance(node, ast.Try):
            stack.append((node.fallback, want, path))
            continue
        c = constraints_of(want)
        value: Any = _literal(node)
        if isinstance(node, ast.ListExpr) and isinstance(want, ListType):
            value = list(node.items)
        if c is not None and value is not None:
            problem = c.violation(value)
            if problem is not None:
                where = "" if not path else (f"item {path}: " if path[0] == "[" else f"field '{path}': ")
                out.append((node.span, f"{where}{problem} ({want.show()})"))
        if isinstance(node, ast.ListExpr) and isinstance(want, ListType):
            stack += [(item, want.item, f"{path}[{i}]")
                      for i, item in reversed(list(enumerate(node.items)))]
        elif isinstance(node, ast.RecordExpr):
            if isinstance(want, RecordType):
                for en in reversed(node.entries):
                    f = want.field(en.key)
                    if f is not None:
                        stack.append((en.value, f.type, f"{path}.{en.key}" if path else en.key))
            elif isinstance(want, DictType):
                stack += [(en.value, want.value, f"{path}.{en.key}" if path else en.key)
                          for en in reversed(node.entries)]
    return out


def _literal(e: ast.Expr) -> object | None:
    """The value of a scalar literal (``-3`` included), else ``None``."""
    if isinstance(e, (ast.Str, ast.Int, ast.Float)):
        return e.value
    if isinstance(e, ast.UnaryOp) and e.op == "-" and isinstance(e.operand, (ast.Int, ast.Float)):
        return -e.operand.value
    return None


def fits(env: ModuleEnv, e: ast.Expr, t: Type, what: str) -> bool:
    """Report the literals of ``e`` that break constraints of ``t`` (``what``: where the
    value goes, e.g. ``argument 'title' of f``); True when there were none."""
    problems = literal_problems(e, t)
    for span, message in problems:
        env.err(span, f"{what}: {message}")
    return not problems
