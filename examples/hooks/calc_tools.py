"""Tools for calculator.pflow: safe arithmetic (parsed with `ast`, never `eval`) and two helpers."""

from __future__ import annotations

import ast
import math
import operator
import re

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_MAX_EXPONENT = 100
_MAX_BASE = 10**12  # with the exponent bound, keeps powers to ~1200 digits
_MAX_LENGTH = 200


def _evaluate(node: ast.AST, expr: str) -> int | float:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand, expr))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left = _evaluate(node.left, expr)
        right = _evaluate(node.right, expr)
        if isinstance(node.op, ast.Pow) and (
                abs(right) > _MAX_EXPONENT or abs(left) > _MAX_BASE):
            raise ValueError(f"power too large in {expr!r}")
        try:
            value = _BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            raise ValueError(f"division by zero in {expr!r}") from None
        except OverflowError:
            raise ValueError(f"the result of {expr!r} is too large") from None
        if isinstance(value, complex):
            raise ValueError(f"the result of {expr!r} is not a real number")
        return value
    raise ValueError(f"not plain arithmetic: {expr!r} (only numbers, + - * / // % ** and parentheses)")


def _format(value: int | float) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("the result is not a finite number")
        if value.is_integer():
            return str(int(value))
        return f"{value:.10g}"
    return str(value)


def calculate(expr: str) -> str:
    """Evaluate an arithmetic expression; the result is prefixed by a space for insertion.

    ``"7 * 12 "`` -> ``" 84"``; ``"10 / 4"`` -> ``" 2.5"``. Raises ``ValueError`` for anything
    that is not numbers, ``+ - * / // % **`` and parentheses.
    """
    text = expr.strip()
    if not text:
        raise ValueError("empty expression")
    if len(text) > _MAX_LENGTH:
        raise ValueError(f"expression longer than {_MAX_LENGTH} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise ValueError(f"not plain arithmetic: {expr!r}") from None
    return " " + _format(_evaluate(tree.body, expr))


def try_calculate(expr: str) -> str:
    """:func:`calculate` for a hook: ``""`` (insert nothing) when the text the model wrote
    before ``=`` is not arithmetic, so that a hook never fails the generation."""
    try:
        return calculate(expr)
    except ValueError:
        return ""


_ESTIMATE = re.compile(r"\b(?:about|roughly|approximately|around|nearly)\s+\d", re.IGNORECASE)


def is_estimate(sentence: str) -> bool:
    """Whether a sentence estimates a number ("about 80 eggs") instead of computing it."""
    return _ESTIMATE.search(sentence) is not None


def final_line(value: str) -> str:
    """The machine-readable last line of a solution, GSM8K style: ``"84"`` -> ``"\\n#### 84"``."""
    return "\n#### " + value.replace(",", "").strip()
