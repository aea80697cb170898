"""Stage parse/build: `eval` declarations, their items, and the words they add."""

from __future__ import annotations

import pytest

from promptflow_dsl.syntax import ast, parse_module
from promptflow_dsl.syntax.dump import dump
from promptflow_dsl.syntax.source import SourceFile, normalize

FULL = """\
# a comment before
eval quality {
  threshold ok >= 0.8          # thresholds may come first
  metric ok = out.label == row.gold
  data "data/rows.jsonl" as Row   # JSONL or CSV
  run classify(review=row.text)
  metric judged = judge(reply=out.reply) if out.reply != none else none
  threshold ok < 1
  threshold judged > -1
}
"""


def build(text: str) -> tuple[ast.Module | None, list]:
    return parse_module(SourceFile("t.pflow", normalize(text)))


def errors(text: str) -> list[str]:
    m, diags = build(text)
    return [f"{d.span.line}:{d.span.col}: {d.message}" for d in diags if d.is_error]


def the_eval(text: str) -> ast.EvalDecl:
    m, diags = build(text)
    assert m is not None and not [d for d in diags if d.is_error], [d.headline() for d in diags]
    (decl,) = [d for d in m.decls if isinstance(d, ast.EvalDecl)]
    return decl


def test_items_in_any_order_with_comments():
    e = the_eval(FULL)
    assert e.name == "quality"
    assert e.data is not None and e.data.path.value == "data/rows.jsonl"
    assert isinstance(e.data.row_type, ast.NamedType) and e.data.row_type.name == "Row"
    assert isinstance(e.run, ast.Call)
    assert [m.name for m in e.metrics] == ["ok", "judged"]
    assert isinstance(e.metrics[1].value, ast.Conditional)
    assert isinstance(e.metrics[1].value.orelse, ast.NoneLit)
    assert [(t.metric, t.op) for t in e.thresholds] == [("ok", ">="), ("ok", "<"), ("judged", ">")]
    assert [t.value.value for t in e.thresholds if t.value] == [0.8, 1, -1]
    assert (e.thresholds[0].metric_span.line, e.thresholds[0].metric_span.col) == (3, 13)


def test_dump_is_stable():
    text = dump(the_eval('eval e { data "d.csv" as {a: int} run f(x=row.a) metric m = out threshold m == 1 }'))
    assert text.splitlines()[:4] == [
        "EvalDecl@1:1 name='e'",
        "  data: EvalData@1:10",
        "    path: Str@1:15 value='d.csv' style='plain'",
        "    row_type: RecordType@1:26",
    ]
    assert "    - EvalThreshold@1:65 metric='m' op='=='" in text.splitlines()


def test_run_and_metric_take_whole_expressions():
    e = the_eval('eval e { data "d.jsonl" as R  run f(x=row) if row.ok else "none"  '
                 'metric m = 1 if out == "a" else 0  metric n = [x for x in row.items if x] }')
    assert isinstance(e.run, ast.Conditional)
    assert isinstance(e.metrics[0].value, ast.Conditional)
    assert isinstance(e.metrics[1].value, ast.Comprehension)


def test_run_may_fall_back():
    e = the_eval('eval e { data "d.jsonl" as R  run try f(x=row) else none  metric m = out != none }')
    assert isinstance(e.run, ast.Try) and isinstance(e.run.fallback, ast.NoneLit)


@pytest.mark.parametrize("text", [
    # a hook's `run` clause after a value that is a string
    'hook h {\n  when "x"\n  run f(eval="a", data="b", run=1, metric=2, threshold=3)\n}\n',
    # flow variables named like the eval words, after a string and after a record
    'flow f() -> str {\n  x = "a"\n  data = x\n  run = {metric: 1}\n  eval = [data]\n'
    '  threshold = run.metric\n  return data\n}\n',
    # parameters, fields and record keys
    'type T { eval: str, data: int, run: bool }\n'
    'flow g(data: str, run: int) -> {eval: str} { return {eval: data} }\n',
    # a test statement after an expression
    'test "t" {\n  r = "a"\n  metric = r\n  expect metric == "a"\n}\n',
])
def test_eval_words_are_names_elsewhere(text: str):
    m, diags = build(text)
    assert m is not None and not [d for d in diags if d.is_error], [d.headline() for d in diags]


def test_eval_after_other_declarations():
    m, diags = build('prompt p(x: str) -> str = "hi"\neval e { data "d.jsonl" as R run p(x=row.x) '
                     'metric m = true }\nmodel m = "echo" { temperature: 0 }\n'
                     'eval f { data "d.jsonl" as R run p(x=row.x) metric m = true }\n')
    assert m is not None and not diags
    assert [type(d).__name__ for d in m.decls] == ["PromptDecl", "EvalDecl", "ModelDecl", "EvalDecl"]


def test_missing_clauses():
    assert errors("eval e {\n}\n") == [
        "1:6: eval 'e' needs a `data` clause: data \"rows.jsonl\" as RowType",
        "1:6: eval 'e' needs a `run` clause: run handler(param=row.field)",
        "1:6: eval 'e' needs at least one `metric`: metric NAME = EXPRESSION",
    ]


def test_duplicates():
    text = ('eval e {\n  data "a.jsonl" as R\n  run f()\n  data "b.jsonl" as R\n  run g()\n'
            '  metric ok = true\n  metric ok = false\n  threshold ok >= 1\n  threshold ok >= 0.5\n'
            '  threshold ok <= 1\n}\n')
    assert errors(text) == [
        "4:3: duplicate `data` clause in eval 'e'",
        "5:3: duplicate `run` clause in eval 'e'",
        "7:10: duplicate metric 'ok' in eval 'e'",
        "9:3: duplicate threshold `ok >=` in eval 'e'",
    ]
    m, diags = build(text)
    assert [(n[0].line, n[1]) for d in diags for n in d.notes] == [
        (2, "first given here"), (3, "first given here"), (6, "first declared here"),
        (8, "first given here")]


def test_threshold_operator_and_bound():
    base = 'eval e { data "a.jsonl" as R run f() metric ok = true '
    assert errors(base + "threshold ok != 1 }") == [
        "1:55: a threshold compares with >=, >, <=, < or ==, not '!='"]
    assert errors(base + "threshold ok in 1 }") == [
        "1:55: a threshold compares with >=, >, <=, < or ==, not 'in'"]
    assert errors(base + "threshold ok >= x }") == [
        "1:71: a threshold's bound is a number literal, as in `threshold ok >= 0.8`"]
    assert errors(base + "threshold ok >= 0.5 + 0.1 }") == [
        "1:71: a threshold's bound is a number literal, as in `threshold ok >= 0.8`"]


def test_reserved_word_cannot_name_an_eval():
    assert "1:6: 'flow' is a reserved word and cannot name a eval" in errors(
        'eval flow { data "a.jsonl" as R run f() metric m = true }')


@pytest.mark.parametrize(("text", "message"), [
    ('eval e {\n  data "a.jsonl" as R\n  metrc ok = true\n}\n',
     "3:3: unknown clause 'metrc' in an eval; did you mean 'metric'? (expected one of: data, "
     "run, metric, threshold)"),
    ('eval e {\n  run f()\n  treshold ok >= 1\n}\n',
     "3:3: unknown clause 'treshold' in an eval; did you mean 'threshold'? (expected one of: "
     "data, run, metric, threshold)"),
    ('eval e {\n  metric ok true\n}\n',
     "2:10: a metric is `metric NAME = EXPRESSION` (found 'true')"),
    ('evals e {\n}\n',  # a keyword ends at a word boundary: `evals` is one word
     "1:1: expected a declaration (model, type, import, prompt, tool, flow, decompose, route, "
     "sketch, hook, test or eval), found 'evals'"),
    ('function f() {\n}\n',
     "1:1: expected a declaration (model, type, import, prompt, tool, flow, decompose, route, "
     "sketch, hook, test or eval), found 'function'"),
])
def test_syntax_errors(text: str, message: str):
    assert errors(text) == [message]
