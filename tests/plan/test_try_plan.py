"""Stage plan: `try EXPR else FALLBACK` in a flow's plan."""

from __future__ import annotations

from pathlib import Path

import pytest

import promptflow_dsl as pf
from promptflow_dsl.plan.render import render
from promptflow_dsl.syntax import ast

HEADER = '''
model default = "local/smollm2"
type Verdict {
  label: "positive" | "negative" | "mixed"
  reason: str
}
prompt classify(review: str) -> Verdict = "Label this review as JSON: {{ review }}"
prompt guess(review: str) -> Verdict = "Guess a label as JSON: {{ review }}"
prompt reply_to(review: str, label: str) -> str = "Reply to this {{ label }} review: {{ review }}"
'''


@pytest.fixture
def load(tmp_path: Path):
    def _load(text: str) -> pf.CheckedProgram:
        return pf.loads(HEADER + text, name="main.pflow", base_dir=tmp_path)

    return _load


def kinds(plan) -> dict[str, str]:
    return {sid: s.kind for sid, s in plan.steps.items() if s.kind != "handler"}


def data(plan) -> set[tuple[str, str]]:
    return set(plan.data_edges())


def test_a_constant_fallback_is_part_of_the_try_step(load) -> None:
    plan = load('''
flow triage(review: str) -> str {
  v = try classify(review=review) else {label: "mixed", reason: "unclassified"}
  return v.label
}
''').plan("triage")
    assert kinds(plan) == {"in:review": "input", "v#1": "call", "v": "value",
                           "return": "return"}
    assert data(plan) == {("in:review", "v#1"), ("v#1", "v"), ("v", "return")}
    v = plan.steps["v"]
    assert isinstance(v.expr, ast.Try)
    assert v.label == 'v = try classify(review=review) else {label: "mixed", reaso…'
    assert plan.steps["v#1"].label == "classify(review=review)"
    assert not any(s.guard for s in plan.steps.values())


def test_a_fallback_that_calls_a_handler_is_a_guarded_step(load) -> None:
    prog = load('''
flow triage(review: str, hint: str) -> str {
  v = try classify(review=review) else guess(review=hint)
  return v.label
}
''')
    plan = prog.plan("triage")
    assert kinds(plan) == {"in:review": "input", "in:hint": "input", "v#1": "call",
                           "v": "value", "v?else": "call", "return": "return"}
    assert data(plan) == {("in:review", "v#1"), ("v#1", "v"), ("v", "v?else"),
                          ("in:hint", "v?else"), ("v", "return"), ("v?else", "return")}
    side = plan.steps["v?else"]
    assert side.guard == ("v", "else") and side.handler == prog.handler("guess").key
    assert [s.id for s in plan.steps.values() if s.guard] == ["v?else"]
    assert plan.order() == ["in:review", "in:hint", "v#1", "v", "v?else", "return"]
    assert "v -->|else| v_else" in render(plan, "mermaid")


def test_try_inside_a_comprehension_is_one_map_step(load) -> None:
    plan = load('''
flow many(reviews: list[str]) -> list[Verdict?] {
  return [try classify(review=r) else none for r in reviews]
}
''').plan("many")
    assert kinds(plan) == {"in:reviews": "input", "return#1": "map", "return": "return"}
    assert plan.steps["return#1"].label.startswith("map classify over reviews")


def test_a_nested_try_with_a_calling_fallback_becomes_its_own_step(load) -> None:
    plan = load('''
flow triage(review: str) -> str {
  return reply_to(review=review, label=(try classify(review=review) else guess(review=review)).label)
}
''').plan("triage")
    assert kinds(plan) == {"in:review": "input", "return#1": "call", "return#2": "value",
                           "return#2?else": "call", "return#3": "call", "return": "return"}
    assert plan.steps["return#2?else"].guard == ("return#2", "else")
    assert plan.steps["return#3"].label.startswith("reply_to(review=review, label=(try ")
    # the call reading the try's value waits for the try and for its fallback
    assert {("return#2", "return#3"), ("return#2?else", "return#3")} <= data(plan)
