"""Stage parse/build: the grammar, lexing traps, spans and robustness."""

from __future__ import annotations

import pytest

from promptflow_dsl.syntax import ast, parse_module
from promptflow_dsl.syntax.parser import build_strict
from promptflow_dsl.syntax.source import SourceFile, normalize


def build(text: str) -> tuple[ast.Module | None, list]:
    return parse_module(SourceFile("t.pflow", normalize(text)))


def ok(text: str) -> ast.Module:
    m, diags = build(text)
    assert m is not None and not [d for d in diags if d.is_error], [d.headline() for d in diags]
    return m


def flow_return(text: str) -> ast.Expr:
    m = ok(f"flow f(x: str) -> str {{ return {text} }}")
    body = m.decls[0].body  # type: ignore[attr-defined]
    return body[-1].value


def test_grammar_has_no_conflicts_in_strict_mode():
    build_strict()  # raises on any shift/reduce or reduce/reduce conflict or terminal collision


def test_raw_string_is_one_token():
    e = flow_return(r'r"\d+\s"')
    assert isinstance(e, ast.Str) and e.style == "raw" and e.value == r"\d+\s"


def test_name_r_followed_by_string_is_not_raw():
    m, diags = build('flow f(r: str) -> str { return r }')
    assert m is not None


def test_plain_string_processes_escapes():
    e = flow_return(r'"a\n\"b\"\u00e9"')
    assert e.value == 'a\n"b"é'


def test_unknown_escape_warns_and_is_kept():
    m, diags = build(r'flow f(x: str) -> str { return "\d" }')
    assert m is not None
    assert [d.severity.value for d in diags] == ["warning"]
    assert "unknown escape sequence" in diags[0].message


def test_text_string_is_raw_and_dedented_with_origins():
    m = ok('prompt p(x: str) -> str {\n  user """\n    Line \\n {{ x }}\n      indented\n  """\n}')
    text = m.decls[0].messages[0].text  # type: ignore[attr-defined]
    assert text.value == "Line \\n {{ x }}\n  indented"
    assert text.origins == ((3, 5), (4, 5))


def test_comprehension_filter_does_not_start_a_conditional():
    e = flow_return("[f(y) for y in xs if y != none]")
    assert isinstance(e, ast.Comprehension) and isinstance(e.cond, ast.Compare)


def test_conditional_element_in_comprehension():
    e = flow_return('[a if c else b for y in xs]')
    assert isinstance(e, ast.Comprehension) and isinstance(e.elt, ast.Conditional)


def test_keywords_after_dot_as_record_keys_and_field_names():
    m = ok('type T { test: str, model: int }\n'
           'flow f(x: T) -> any { return {model: x.test, type: x.model, "if": 1} }')
    rec = m.decls[1].body[0].value  # type: ignore[attr-defined]
    assert [e.key for e in rec.entries] == ["model", "type", "if"]


def test_a_keyword_is_a_field_name_with_comments_before_its_colon():
    m = ok('type T {\n  model  # the model\n  # more\n    : str\n}\n'
           'flow f(x: T) -> any { return {type # a key\n : x.model} }')
    assert [f.name for f in m.decls[0].type.fields] == ["model"]  # type: ignore[attr-defined]
    rec = m.decls[1].body[0].value  # type: ignore[attr-defined]
    assert [e.key for e in rec.entries] == ["type"]


def test_the_look_ahead_for_a_colon_does_not_backtrack():
    from promptflow_dsl.syntax.parser import _COLON_AHEAD

    assert _COLON_AHEAD.match("#" * 5000 + "\n" + " " * 10000 + "x") is None


def test_record_entries_separated_by_newlines():
    e = flow_return('{a: 1\n b: 2\n "c d": 3}')
    assert [x.key for x in e.entries] == ["a", "b", "c d"]


def test_precedence_is_pythons():
    e = flow_return("not a == b or c and d + 1 * 2")
    assert isinstance(e, ast.BoolOp) and e.op == "or"
    assert isinstance(e.left, ast.UnaryOp) and isinstance(e.left.operand, ast.Compare)
    right = e.right
    assert isinstance(right, ast.BoolOp) and right.op == "and"
    assert isinstance(right.right, ast.BinOp) and right.right.op == "+"
    assert isinstance(right.right.right, ast.BinOp) and right.right.right.op == "*"


def test_not_in_and_contains():
    assert flow_return("a not in b").op == "not in"
    assert flow_return('a contains "x"').op == "contains"


def test_negative_literal_folds():
    e = flow_return("-3")
    assert isinstance(e, ast.Int) and e.value == -3


def test_clause_words_are_contextual():
    m = ok('hook h { when r"x" if len(text) > 2 run f(a=text) action insert max_fires 2 }')
    h = m.decls[0]
    assert isinstance(h.condition, ast.Compare) and h.action.name == "insert"


def test_expert_header_forms():
    m = ok('route r(q: str) -> str { by rule\n'
           ' expert a when q contains "x" -> h\n'
           ' expert b { instruction "B" demos "d.jsonl" } }')
    a, b = m.decls[0].experts  # type: ignore[attr-defined]
    assert a.delegate.parts == ("h",) and isinstance(a.when, ast.Compare)
    assert b.instruction.value == "B"


def test_spans_point_at_names():
    m = ok("\n\nflow  go(x: str) -> str { return x }")
    d = m.decls[0]
    assert (d.name_span.line, d.name_span.col, d.name_span.end_col) == (3, 7, 9)


def test_bom_and_crlf_are_normalised():
    text = "\ufeffflow f(x: str) -> str {\r\n  return x\r\n}\r\n"
    m = ok(text)
    assert m.decls[0].body[0].span.line == 2  # type: ignore[attr-defined]


@pytest.mark.parametrize("text,fragment", [
    ("prompt p(x: str) { }", "return type"),
    ("flow f(x: str) -> str { g(x) }", "a flow statement is `name = expression`"),
    ('flow f(x: str) -> str { "x" }', "a flow statement is"),
    ("flow f(x: str) -> str { return g(x }", "missing ')' to close the '(' at line 1, column 33"),
    ("flow f(x: str) -> str { return x } }", "unmatched '}'"),
    ('test "t" { expect x = 1 }', "use `==`"),
    ("flow f(x: int) -> bool { return 1 < x < 3 }", "chained comparisons"),
    ("flow f(x: str) -> str { return 'a' }", "double quotes"),
    ('flow f(x: str) -> str { return "abc }', "unterminated string"),
    ('prompt p(x: str) -> str = """abc', 'unterminated """'),
    ("foo bar", "expected a declaration"),
    ("flow f(x: str) -> str { return g(x y) }", "missing `,` between arguments"),
    ("flow f(x) -> str { return x }", "needs a type"),
    ("flow f(x: str) -> str {", "'{' is never closed"),
    ("flow f(x: str) -> str { return [g(x y)] }", "missing `,` between arguments"),
    ("flow f(x: str) -> str { return [x y] }", "missing `,` between list items"),
])
def test_syntax_errors_say_what_was_expected(text: str, fragment: str):
    m, diags = build(text)
    assert m is None and len(diags) == 1
    assert fragment in diags[0].message, diags[0].message


def test_structural_errors_are_collected():
    m, diags = build('prompt p(x: str) -> str { usr "a" retries "two" }\n'
                     'flow f(x: str) -> str { return g(a=1, 2) }')
    msgs = [d.message for d in diags]
    assert any("unknown clause 'usr'" in m and "did you mean 'user'" in m for m in msgs)
    assert any("`retries` expected an integer" in m for m in msgs)
    assert any("positional argument after a keyword argument" in m for m in msgs)
    assert any("has no message" in m for m in msgs)


@pytest.mark.parametrize("make", [
    lambda n: "[" * n + "]" * n,
    lambda n: "(" * n + "x" + ")" * n,
    lambda n: "-" * n + "x",
    lambda n: "not " * n + "x",
    lambda n: " + ".join(["x"] * n),
    lambda n: "x" + ".a" * n,
])
def test_deep_nesting_is_a_clean_error(make):
    m, diags = build("flow f(x: str) -> any { return " + make(5000) + " }")
    if m is None:
        assert "nested more than 100 levels" in diags[0].message
    else:  # parentheses alone add no depth
        assert not diags


def test_multi_megabyte_file_parses():
    filler = "lorem ipsum dolor sit amet " * 8
    decl = 'prompt p{i}(x: str) -> str = "say {{{{ x }}}} {filler} {i}"\n'
    text = "".join(decl.format(i=i, filler=filler) for i in range(8000))
    assert len(text) > 2_000_000
    m, diags = build(text)
    assert m is not None and len(m.decls) == 8000 and not diags
