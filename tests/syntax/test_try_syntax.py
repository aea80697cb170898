"""Stage parse/build: `try EXPR else FALLBACK`, its precedence and its syntax errors."""

from __future__ import annotations

import pytest

from promptflow_dsl.plan.model import show_expr
from promptflow_dsl.syntax import ast, parse_module
from promptflow_dsl.syntax.dump import dump
from promptflow_dsl.syntax.source import SourceFile, normalize


def build(text: str) -> tuple[ast.Module | None, list]:
    return parse_module(SourceFile("t.pflow", normalize(text)))


def value(expr: str) -> ast.Expr:
    m, diags = build(f"flow f(x: str) -> any {{\n  v = {expr}\n  return v\n}}")
    assert m is not None and not [d for d in diags if d.is_error], [d.headline() for d in diags]
    return m.decls[0].body[0].value  # type: ignore[attr-defined]


def errors(text: str) -> list[str]:
    _, diags = build(text)
    return [d.headline() for d in diags if d.is_error]


def test_try_with_a_record_fallback():
    e = value('try classify(review=x) else {label: "mixed", reason: "unclassified"}')
    assert isinstance(e, ast.Try)
    assert isinstance(e.expr, ast.Call) and isinstance(e.fallback, ast.RecordExpr)
    assert (e.span.line, e.span.col) == (2, 7)
    assert dump(e).splitlines()[0] == "Try@2:7"


def test_try_as_the_element_of_a_comprehension():
    e = value("[try f(x=y) else none for y in ys]")
    assert isinstance(e, ast.Comprehension) and isinstance(e.elt, ast.Try)
    assert isinstance(e.elt.fallback, ast.NoneLit) and e.var == "y"


def test_the_fallback_reaches_as_far_right_as_it_can():
    e = value("try a() else b if c else d")
    assert isinstance(e, ast.Try) and isinstance(e.fallback, ast.Conditional)
    e = value("try a() else b or c")
    assert isinstance(e, ast.Try) and isinstance(e.fallback, ast.BoolOp)
    e = value("try a() else try b() else c")
    assert isinstance(e, ast.Try) and isinstance(e.fallback, ast.Try)


def test_what_try_tries_is_an_or_test():
    e = value("try a() or b() else c")
    assert isinstance(e, ast.Try) and isinstance(e.expr, ast.BoolOp)
    e = value("try (a() if c else b()) else d")
    assert isinstance(e, ast.Try) and isinstance(e.expr, ast.Conditional)


def test_try_on_the_else_side_of_a_conditional():
    e = value("x if c else try a() else b")
    assert isinstance(e, ast.Conditional) and isinstance(e.orelse, ast.Try)


def test_parenthesised_try_is_an_operand():
    e = value('(try a() else "") + "!"')
    assert isinstance(e, ast.BinOp) and isinstance(e.left, ast.Try)
    e = value("f(y=try a() else none)")
    assert isinstance(e, ast.Call) and isinstance(e.kwargs[0].value, ast.Try)


def test_show_expr_round_trips_the_precedence():
    for text in ("try a() else b if c else d", "try (a if c else b) else d",
                 "(try a() else b) + 1", "x if c else try a() else b"):
        e = value(text)
        assert show_expr(e) == text
        assert dump(value(show_expr(e))) == dump(e)


@pytest.mark.parametrize("text,message", [
    ("v = try a if c else b else d",
     "t.pflow:2:13: error: what `try` tries cannot be a conditional without parentheses: write "
     "`try (A if C else B) else FALLBACK` (found 'if')"),
    ("v = 1 + try a else b",
     "t.pflow:2:11: error: `try ... else ...` cannot be an operand here: put it in parentheses, "
     "`(try EXPR else FALLBACK)` (found 'try')"),
    ("v = a if try b else c else d",
     "t.pflow:2:12: error: `try ... else ...` cannot be an operand here: put it in parentheses, "
     "`(try EXPR else FALLBACK)` (found 'try')"),
    ("v = [y for y in try a else b]",
     "t.pflow:2:19: error: `try ... else ...` cannot be an operand here: put it in parentheses, "
     "`(try EXPR else FALLBACK)` (found 'try')"),
    ("v = not try a else b",
     "t.pflow:2:11: error: `try ... else ...` cannot be an operand here: put it in parentheses, "
     "`(try EXPR else FALLBACK)` (found 'try')"),
    ("v = try a", "t.pflow:3:3: error: unexpected 'return'; expected 'else' or 'or'"),
])
def test_syntax_errors(text: str, message: str):
    assert errors(f"flow f(x: str) -> any {{\n  {text}\n  return v\n}}") == [message]


def test_try_is_a_reserved_word():
    assert errors("flow f(x: str) -> any {\n  try = 1\n  return 1\n}")[0] == (
        "t.pflow:2:3: error: 'try' is a reserved word and cannot name a variable")
    assert errors("flow f(try: str) -> any { return 1 }") == [
        "t.pflow:1:8: error: 'try' is a reserved word and cannot name a parameter"]


def test_try_is_still_a_field_name_and_a_record_key():
    e = value("{try: x.try}")
    assert isinstance(e, ast.RecordExpr) and e.entries[0].key == "try"
    assert isinstance(e.entries[0].value, ast.Attr) and e.entries[0].value.name == "try"
