"""Stage check: field constraints — bad constraints, literals that break them, where
constrained types may go, and dataset rows that break them (check/constraints.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import promptflow_dsl as pf
from promptflow_dsl.lang.types import json_schema

HEADER = '''
type Review {
  title: str(min_length=1, max_length=20, pattern=r"[A-Z].*")
  stars: int(min=1, max=5)
  score: float(min=0.0, max=1.0) = 0.5
  tags: list[str(max_length=10)](min_items=1, max_items=3)?
}
prompt review(text: str(max_length=10)) -> Review = "Review {{ text }}"
prompt short(text: str) -> str(max_length=5) = "Say {{ text }} briefly"
'''


def errors(text: str, base: Path) -> list[str]:
    try:
        pf.loads(HEADER + text, name="main.pflow", base_dir=base)
    except pf.CompileError as exc:
        return [f"{d.span.line - HEADER.count(chr(10)) - 1}:{d.span.col}: {d.message}"
                for d in exc.diagnostics if d.is_error]
    return []


def test_the_header_checks_and_types_carry_their_constraints(tmp_path: Path):
    program = pf.loads(HEADER, name="main.pflow", base_dir=tmp_path)
    h = program.handler("review")
    assert h.signature.params[0].type.show() == "str(max_length=10)"
    rec = h.signature.returns
    assert [f"{f.name}: {f.type.show()}" for f in rec.fields] == [
        'title: str(min_length=1, max_length=20, pattern=r"[A-Z].*")',
        "stars: int(min=1, max=5)",
        "score: float(min=0.0, max=1.0)",
        "tags: list[str(max_length=10)](min_items=1, max_items=3)?",
    ]
    assert json_schema(rec)["properties"]["tags"]["anyOf"][0] == {
        "type": "array", "items": {"type": "string", "maxLength": 10}, "minItems": 1, "maxItems": 3}
    assert program.handler("short").signature.returns.show() == "str(max_length=5)"


@pytest.mark.parametrize("decl, message", [
    ("type T { a: int(max_length=3) }", "1:17: int takes no constraint 'max_length' (int takes min, max)"),
    ("type T { a: str(max_len=3) }", "1:17: unknown constraint 'max_len' for str; did you mean "
                                     "'max_length'? (str takes min_length, max_length, pattern)"),
    ('type T { a: int(min="a") }', "1:21: constraint 'min' of int must be a whole number, got a string"),
    ("type T { a: int(min=1.5) }", "1:21: constraint 'min' of int must be a whole number, got the float 1.5"),
    ("type T { a: float(min=true) }", "1:23: constraint 'min' of float must be a number, got a bool"),
    ("type T { a: int(min=5, max=1) }", "1:21: min=5 is greater than max=1: no value can meet both"),
    ('type T { a: str(pattern=r"(") }', "1:27: invalid regular expression in constraint 'pattern': "
                                        "missing ), unterminated subpattern"),
    ("type T { a: str(pattern=3) }", "1:25: constraint 'pattern' must be a string (a regular "
                                     "expression, e.g. pattern=r\"[A-Z]+\"), got the int 3"),
    ("type T { a: str(min_length=-1) }", "1:28: constraint 'min_length' must be at least 0, got -1"),
    ("type T { a: list[int](max_items=2.0) }", "1:33: constraint 'max_items' must be a whole number, "
                                               "got the float 2.0"),
    ("type T { a: str(max_length=2, max_length=3) }", "1:31: constraint 'max_length' given twice"),
    ("type T { a: bool(min=1) }", "1:13: bool takes no constraints; they go on str, int, float and "
                                  "list[T] (e.g. str(max_length=200), int(min=1, max=5))"),
    ("type T { a: Review(min=1) }", "1:13: Review takes no constraints; they go on str, int, float "
                                    "and list[T] (e.g. str(max_length=200), int(min=1, max=5))"),
    ("type T { a: dict[str, int](min_items=1) }", "1:13: dict[str, int] takes no constraints; they go "
                                                  "on str, int, float and list[T] (e.g. "
                                                  "str(max_length=200), int(min=1, max=5))"),
    ("type T { a: str(1) }", "1:17: a constraint is written NAME=VALUE, e.g. str(max_length=200) "
                             "or int(min=1, max=5)"),
    ("type T { a: str() }", "1:16: empty constraints: write them, e.g. str(max_length=200), or "
                            "drop the parentheses"),
    ("type T { a: int(min=n) }", "1:21: constraint 'min' of int must be a number, got an expression "
                                 "(constraints take literal values)".replace("a number", "a whole number")),
])
def test_bad_constraints_are_located_errors(tmp_path: Path, decl: str, message: str):
    assert errors("\n" + decl + "\n", tmp_path) == [message]


@pytest.mark.parametrize("body, found", [
    # a default
    ("type T { n: int(max=5) = 7 }",
     ["1:26: default of field 'n': at most 5, got 7 (int(max=5))"]),
    ('type T { s: str(max_length=2) = "abc" }',
     ["1:33: default of field 's': at most 2 characters, got 3 (str(max_length=2))"]),
    ("prompt p(n: int(min=0) = -1) -> str = \"{{ n }}\"",
     ["1:26: default of parameter 'n': at least 0, got -1 (int(min=0))"]),
    # an argument
    ('flow f() -> Review {\n  return review(text="far too long, really")\n}',
     ["2:22: argument 'text' of review: at most 10 characters, got 20 (str(max_length=10))"]),
    # a flow's return value, field by field
    ('flow f() -> Review {\n  return {title: "lower", stars: 0, tags: []}\n}',
     ['2:18: flow \'f\' returns: field \'title\': "lower" does not match the pattern r"[A-Z].*" '
      '(str(min_length=1, max_length=20, pattern=r"[A-Z].*"))',
      "2:34: flow 'f' returns: field 'stars': at least 1, got 0 (int(min=1, max=5))",
      "2:43: flow 'f' returns: field 'tags': at least 1 item, got 0 "
      "(list[str(max_length=10)](min_items=1, max_items=3))"]),
    # both sides of a conditional, a try fallback
    ('flow f(x: str) -> str(max_length=3) {\n  return "abcd" if x == "" else try short(text=x) else "abcde"\n}',
     ["2:10: flow 'f' returns: at most 3 characters, got 4 (str(max_length=3))",
      "2:56: flow 'f' returns: at most 3 characters, got 5 (str(max_length=3))"]),
    # a mock's value in a test
    ('test "t" {\n  mock review returns {title: "Fine", stars: 9, tags: ["a", "far too long"]}\n'
     '  expect review(text="x").stars == 9\n}',
     ["2:46: mock value for 'review': field 'stars': at most 5, got 9 (int(min=1, max=5))",
      "2:61: mock value for 'review': field 'tags[1]': at most 10 characters, got 12 "
      "(str(max_length=10))"]),
    ('test "t" {\n  mock short returns "too long"\n  expect short(text="x") == "x"\n}',
     ["2:22: mock value for 'short': at most 5 characters, got 8 (str(max_length=5))"]),
])
def test_literals_that_break_a_constraint_are_errors_at_the_literal(tmp_path: Path, body: str,
                                                                     found: list[str]):
    assert errors("\n" + body + "\n", tmp_path) == found


def test_string_literal_types_are_checked_through_variables(tmp_path: Path):
    found = errors('\nflow f() -> Review {\n  t = "way too long for ten"\n  return review(text=t)\n}\n',
                   tmp_path)
    assert found == ["3:22: argument 'text' of review expects str(max_length=10), got str "
                     "(\"way too long for ten\") (\"way too long for ten\": at most 10 characters, got 20)"]


@pytest.mark.parametrize("body", [
    # a base type goes where a constrained one is wanted: checked when the value arrives
    'flow f(x: str) -> Review {\n  return review(text=x)\n}',
    'flow f(x: str) -> str(max_length=3) {\n  return x\n}',
    'flow f(n: int) -> int(min=1, max=5) {\n  return n\n}',
    # a constrained type goes where its base is wanted
    'flow f(x: str) -> str {\n  return review(text=x).title + "!"\n}',
    'flow f(x: str) -> float {\n  return review(text=x).stars\n}',
    'flow f(x: str) -> list[str]? {\n  return review(text=x).tags\n}',
    # literals that meet the constraints
    'flow f() -> Review {\n  return {title: "Fine", stars: 5, score: 1, tags: ["a"]}\n}',
])
def test_what_is_allowed(tmp_path: Path, body: str):
    assert errors("\n" + body + "\n", tmp_path) == []


def test_ranges_that_cannot_meet_are_errors(tmp_path: Path):
    found = errors('\nprompt big(x: str) -> int(min=10) = "{{ x }}"\n'
                   'flow f(x: str) -> int(max=5) {\n  return big(x=x)\n}\n', tmp_path)
    assert found == ["3:10: flow 'f' returns int(max=5), but this is int(min=10) (int(min=10) is "
                     "never int(max=5): its value is at least 10, above the max=5 wanted)"]


def test_rows_that_break_a_constraint_are_errors_in_the_data_file(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "pflow.toml").write_text("", encoding="utf-8")
    rows = [{"text": "fine", "stars": 3}, {"text": "x" * 12, "stars": 3}, {"text": "ok", "stars": 6}]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (tmp_path / "main.pflow").write_text(HEADER + '''
type Row { text: str(max_length=10), stars: int(min=1, max=5) }
eval e {
  data "rows.jsonl" as Row
  run review(text=row.text)
  metric same = out.stars == row.stars
}
''', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(pf.CompileError) as info:
        pf.load(tmp_path / "main.pflow")
    assert [f"{d.span}: {d.message}" for d in info.value.diagnostics if d.is_error] == [
        "rows.jsonl:2:10: the row does not fit Row: field 'text': at most 10 characters, got 12",
        "rows.jsonl:3:25: the row does not fit Row: field 'stars': at most 5, got 6",
    ]
