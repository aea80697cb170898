"""Tests for the plan stage (promptflow_dsl.plan.build_plan / Plan): exact graphs."""

from __future__ import annotations

from pathlib import Path

import pytest

import promptflow_dsl as pf
from promptflow_dsl.plan import Plan, PlanError, PlannedStep
from promptflow_dsl.syntax import ast

TOOLS = '''
def up(text: str) -> str:
    return text.upper()

def words(text: str) -> list[str]:
    return text.split()

def kth(word: str, k: int) -> str:
    return word[k - 1]

def is_long(text: str) -> bool:
    return len(text) > 20
'''

HEADER = '''
model default = "local/smollm2"
tool up(text: str) -> str = python "tools:up"
tool words(text: str) -> list[str] = python "tools:words"
tool kth(word: str, k: int) -> str = python "tools:kth"
tool is_long(text: str) -> bool = python "tools:is_long"
prompt shout(text: str) -> str = "Repeat in capitals: {{ text }}"
'''


@pytest.fixture
def load(tmp_path: Path):
    (tmp_path / "tools.py").write_text(TOOLS)

    def _load(text: str) -> pf.CheckedProgram:
        return pf.loads(HEADER + text, name="main.pflow", base_dir=tmp_path)

    return _load


def kinds(plan: Plan) -> dict[str, str]:
    return {sid: s.kind for sid, s in plan.steps.items()}


def edges(plan: Plan, kind: str) -> set[tuple[str, str]]:
    return {(u, v) for u, v, k in plan.graph.edges(data="kind") if k == kind}


def key(program: pf.CheckedProgram, name: str) -> str:
    return program.handler(name).key


# --------------------------------------------------------------------------- flows

TRIAGE = '''
type Verdict {
  label: "positive" | "negative" | "mixed"
  reason: str
}
prompt classify(review: str) -> Verdict = "Label this review as JSON: {{ review }}"
prompt reply_to(review: str, label: str) -> str = "Reply to this {{ label }} review: {{ review }}"
flow triage(review: str) -> {label: str, reply: str?} {
  v = classify(review)
  reply = reply_to(review=review, label=v.label) if v.label != "positive" else none
  return {label: v.label, reply: reply}
}
'''


def test_call_branch_and_return(load) -> None:
    prog = load(TRIAGE)
    plan = prog.plan("triage")
    assert plan.entry == key(prog, "triage")
    assert kinds(plan) == {
        "in:review": "input", "v": "call", "reply": "branch", "reply?then": "call",
        "return": "return", "handler:classify": "handler", "handler:reply_to": "handler",
    }
    assert edges(plan, "data") == {
        ("in:review", "v"), ("v", "reply"), ("reply", "reply?then"),
        ("in:review", "reply?then"), ("v", "reply?then"),
        ("v", "return"), ("reply", "return"), ("reply?then", "return"),
    }
    assert edges(plan, "call") == {("v", "handler:classify"), ("reply?then", "handler:reply_to")}
    assert edges(plan, "may_call") == edges(plan, "hook") == set()
    v, reply, side = plan.steps["v"], plan.steps["reply"], plan.steps["reply?then"]
    assert (v.label, v.binds, v.handler, v.guard) == (
        "v = classify(review)", "v", key(prog, "classify"), None)
    assert isinstance(v.expr, ast.Call) and v.span is not None and v.span.line == 16
    assert (reply.label, reply.binds, reply.guard) == ('if v.label != "positive"', "reply", None)
    assert isinstance(reply.expr, ast.Conditional)
    assert (side.guard, side.binds, side.handler) == (("reply", "then"), None, key(prog, "reply_to"))
    assert side.label == "reply_to(review=review, label=v.label)"
    assert [sid for sid, s in plan.steps.items() if s.guard and s.guard[0] == "reply"] == ["reply?then"]
    assert plan.steps["return"].label == "return {label: v.label, reply: reply}"
    assert plan.order() == ["in:review", "v", "reply", "reply?then", "return"]
    assert plan.reachable_handlers() == {key(prog, "classify"), key(prog, "reply_to")}
    assert all(plan.graph.nodes[n]["step"] is s for n, s in plan.steps.items())


def test_comprehension_is_one_map_node(load) -> None:
    prog = load('''
flow letters(question: str, k: int = 2) -> str {
  ws = words(text=question)
  picked = [kth(word=w, k=k) for w in ws if len(w) > k]
  n = len(picked)
  return join(picked, " ") + str(n)
}
''')
    plan = prog.plan("letters")
    assert kinds(plan) == {"in:question": "input", "in:k": "input", "ws": "call", "picked": "map",
                           "n": "value", "return": "return", "handler:words": "handler",
                           "handler:kth": "handler"}
    assert edges(plan, "data") == {("in:question", "ws"), ("ws", "picked"), ("in:k", "picked"),
                                   ("picked", "n"), ("picked", "return"), ("n", "return")}
    assert edges(plan, "call") == {("ws", "handler:words"), ("picked", "handler:kth")}
    picked = plan.steps["picked"]
    assert picked.label == "picked = map kth over ws"
    assert picked.handler == key(prog, "kth") and isinstance(picked.expr, ast.Comprehension)
    assert plan.steps["in:k"].label == "k: int" and isinstance(plan.steps["in:k"].expr, ast.Int)
    assert plan.order() == ["in:question", "in:k", "ws", "picked", "n", "return"]


def test_calls_in_a_maps_list_and_in_a_returned_branch_are_sub_steps(load) -> None:
    prog = load('''
flow each(q: str, k: int) -> list[str] {
  xs = [kth(word=w, k=k) for w in words(text=up(text=q))]
  return xs if k > 0 else [shout(text=q)]
}
''')
    plan = prog.plan("each")
    assert kinds(plan) == {"in:q": "input", "in:k": "input", "xs#1": "call", "xs#2": "call",
                           "xs": "map", "return#1": "branch", "return#1?else": "value",
                           "return#1?else#1": "call", "return": "return",
                           "handler:up": "handler", "handler:words": "handler",
                           "handler:kth": "handler", "handler:shout": "handler"}
    assert plan.steps["xs#1"].label == "up(text=q)"
    assert plan.steps["xs#2"].label == "words(text=up(text=q))"
    assert plan.steps["return#1?else#1"].guard == ("return#1", "else")
    assert plan.steps["return#1?else"].label == "[shout(text=q)]"
    assert edges(plan, "data") == {
        ("in:q", "xs#1"), ("xs#1", "xs#2"), ("xs#2", "xs"), ("in:k", "xs"),
        ("in:k", "return#1"), ("xs", "return#1"), ("return#1", "return#1?else"),
        ("return#1", "return#1?else#1"), ("in:q", "return#1?else#1"),
        ("return#1?else#1", "return#1?else"),
        ("return#1", "return"), ("return#1?else", "return"),
    }
    assert plan.order() == ["in:q", "in:k", "xs#1", "xs#2", "xs", "return#1",
                            "return#1?else#1", "return#1?else", "return"]


def test_nested_calls_become_numbered_sub_steps(load) -> None:
    prog = load('''
flow nest(q: str) -> str {
  x = up(text=shout(text=q))
  r = [up(text=q), shout(text=x)]
  return up(text=r[0] + r[1])
}
''')
    plan = prog.plan("nest")
    assert kinds(plan) == {"in:q": "input", "x#1": "call", "x": "call", "r#1": "call",
                           "r#2": "call", "r": "value", "return#1": "call", "return": "return",
                           "handler:shout": "handler", "handler:up": "handler"}
    assert edges(plan, "data") == {
        ("in:q", "x#1"), ("x#1", "x"), ("in:q", "r#1"), ("x", "r#2"), ("r#1", "r"),
        ("r#2", "r"), ("r", "return#1"), ("return#1", "return"),
    }
    assert edges(plan, "call") == {("x#1", "handler:shout"), ("x", "handler:up"),
                                   ("r#1", "handler:up"), ("r#2", "handler:shout"),
                                   ("return#1", "handler:up")}
    assert plan.steps["x#1"].label == "shout(text=q)" and plan.steps["x#1"].binds is None
    assert plan.steps["x"].label == "x = up(text=shout(text=q))"
    assert plan.steps["r"].label == "r = [up(text=q), shout(text=x)]"
    x = plan.steps["x"]
    assert isinstance(x.expr, ast.Call)
    assert plan.steps["x#1"].expr is x.expr.kwargs[0].value
    assert sorted(u for u, v in plan.data_edges() if v == "r") == ["r#1", "r#2"]
    assert [u for u, v in plan.data_edges() if v == "return"] == ["return#1"]
    assert plan.order() == ["in:q", "x#1", "x", "r#1", "r#2", "r", "return#1", "return"]


def test_branches_guard_every_step_of_a_side(load) -> None:
    prog = load('''
flow pick(q: str, k: int) -> str {
  y = up(text=shout(text=q)) if k > 1 else shout(text=q)
  z = up(text=q if k > 3 else shout(text=q))
  w = q if is_long(text=q) else "short"
  return y + z + w
}
''')
    plan = prog.plan("pick")
    assert kinds(plan) == {
        "in:q": "input", "in:k": "input",
        "y": "branch", "y?then#1": "call", "y?then": "call", "y?else": "call",
        "z#1": "branch", "z#1?else": "call", "z": "call",
        "w#1": "call", "w": "branch", "return": "return",
        "handler:shout": "handler", "handler:up": "handler", "handler:is_long": "handler",
    }
    guards = {sid: s.guard for sid, s in plan.steps.items() if s.guard}
    assert guards == {"y?then#1": ("y", "then"), "y?then": ("y", "then"),
                      "y?else": ("y", "else"), "z#1?else": ("z#1", "else")}
    assert edges(plan, "data") == {
        ("in:k", "y"), ("y", "y?then#1"), ("y", "y?then"), ("y", "y?else"),
        ("in:q", "y?then#1"), ("y?then#1", "y?then"), ("in:q", "y?else"),
        ("in:q", "z#1"), ("in:k", "z#1"), ("z#1", "z#1?else"), ("in:q", "z#1?else"),
        ("z#1", "z"), ("z#1?else", "z"),
        ("in:q", "w#1"), ("w#1", "w"), ("in:q", "w"),
        # a reader of a branch variable waits for the branch and each side's value
        ("y", "return"), ("y?then", "return"), ("y?else", "return"),
        ("z", "return"), ("w", "return"),
    }
    sides = {g: sid for sid, s in plan.steps.items() if (g := s.guard) and "#" not in sid[len(g[0]):]}
    assert sides == {("y", "then"): "y?then", ("y", "else"): "y?else", ("z#1", "else"): "z#1?else"}
    assert plan.steps["y"].label == "if k > 1"
    assert plan.steps["z"].label == "z = up(text=q if k > 3 else shout(text=q))"
    assert plan.steps["w"].label == "if is_long(text=q)"
    order = plan.order()
    assert order.index("y") < order.index("y?then#1") < order.index("y?then")
    assert order[-1] == "return"


def test_builtins_and_values_are_not_calls(load) -> None:
    prog = load('''
flow count(items: list[str]) -> {n: int, first: str} {
  n = len(unique(items))
  first = items[0]
  return {n: n, first: first}
}
''')
    plan = prog.plan("count")
    assert kinds(plan) == {"in:items": "input", "n": "value", "first": "value",
                           "return": "return"}
    assert edges(plan, "call") == set() and plan.reachable_handlers() == frozenset()
    assert plan.steps["n"].label == "n = len(unique(items))"
    assert plan.steps["first"].label == "first = items[0]"


def test_order_breaks_ties_by_source_position(load) -> None:
    prog = load('''
flow free(a: str, b: str) -> str {
  d = up(text=c)
  c = up(text=b)
  e = up(text=a)
  return d + e
}
''')
    assert prog.plan("free").order() == ["in:a", "in:b", "c", "d", "e", "return"]


# --------------------------------------------------------------------------- call graph


def test_decompose_may_call_its_handlers_and_itself(load) -> None:
    prog = load('''
decompose solve(question: str) -> str {
  handlers { up: up, again: solve, sub: inner }
  prompt """
    QC: x
    QS: [EOQ]
  """
}
decompose inner(question: str) -> str {
  handlers { up: up }
  prompt """QS: [EOQ]"""
}
''')
    plan = prog.plan("solve")
    assert kinds(plan) == {"in:question": "input", "solve": "call", "return": "return",
                           "handler:solve": "handler", "handler:up": "handler",
                           "handler:inner": "handler"}
    assert edges(plan, "data") == {("in:question", "solve"), ("solve", "return")}
    assert edges(plan, "call") == {("solve", "handler:solve")}
    assert edges(plan, "may_call") == {("handler:solve", "handler:up"),
                                       ("handler:solve", "handler:solve"),
                                       ("handler:solve", "handler:inner"),
                                       ("handler:inner", "handler:up")}
    assert plan.steps["handler:solve"].label == "decompose solve"
    assert plan.reachable_handlers() == {key(prog, n) for n in ("solve", "up", "inner")}
    assert plan.order() == ["in:question", "solve", "return"]


def test_route_may_call_its_delegates(load) -> None:
    prog = load('''
route pick(question: str) -> str {
  by rule
  expert long when is_long(text=question) -> shout
  expert other -> up
}
''')
    plan = prog.plan("pick")
    assert edges(plan, "may_call") == {("handler:pick", "handler:shout"),
                                       ("handler:pick", "handler:up")}
    assert edges(plan, "call") == {("pick", "handler:pick"),
                                   ("handler:pick", "handler:is_long")}
    assert plan.steps["handler:pick"].label == "route pick"


def test_hook_edges_lead_to_the_hook_programs(load) -> None:
    prog = load('''
hook loud {
  when is_long(text=segment)
  run up(text=segment)
  action insert
}
prompt talk(topic: str) -> str {
  user "Talk about {{ topic }}"
  hooks [loud]
}
''')
    plan = prog.plan("talk")
    assert edges(plan, "hook") == {("handler:talk", "handler:up"),
                                   ("handler:talk", "handler:is_long")}
    assert kinds(plan)["talk"] == "call"


def test_reachable_handlers_through_a_sub_flow_and_an_import(load) -> None:
    prog = load('''
import std.text
decompose solve(question: str) -> str {
  handlers { split: text.split_words_q }
  prompt """QS: [EOQ]"""
}
flow sub(q: str) -> str {
  a = solve(q)
  return shout(text=a)
}
flow main(q: str) -> str {
  s = sub(q=q)
  return text.join(items=text.split_words(text=s))
}
''')
    plan = prog.plan("main")
    assert kinds(plan) == {"in:q": "input", "s": "call", "return#1": "call", "return#2": "call",
                           "return": "return", "handler:sub": "handler",
                           "handler:solve": "handler", "handler:shout": "handler",
                           "handler:text.split_words_q": "handler",
                           "handler:text.split_words": "handler", "handler:text.join": "handler"}
    assert edges(plan, "call") == {("s", "handler:sub"), ("handler:sub", "handler:solve"),
                                   ("handler:sub", "handler:shout"),
                                   ("return#1", "handler:text.split_words"),
                                   ("return#2", "handler:text.join")}
    assert edges(plan, "may_call") == {("handler:solve", "handler:text.split_words_q")}
    assert edges(plan, "data") == {("in:q", "s"), ("s", "return#1"), ("return#1", "return#2"),
                                   ("return#2", "return")}
    assert plan.reachable_handlers() == {
        key(prog, n) for n in ("sub", "solve", "shout", "text.split_words_q",
                               "text.split_words", "text.join")}
    assert plan.steps["handler:text.join"].handler == key(prog, "text.join")
    assert [s.id for s in plan.steps.values()
            if s.kind == "handler" and s.handler == key(prog, "text.join")] == ["handler:text.join"]
    assert plan.name_of(key(prog, "text.join")) == "text.join"


def test_a_plain_handler_is_inputs_call_return(load) -> None:
    plan = load("").plan("kth")
    assert kinds(plan) == {"in:word": "input", "in:k": "input", "kth": "call",
                           "return": "return", "handler:kth": "handler"}
    assert edges(plan, "data") == {("in:word", "kth"), ("in:k", "kth"), ("kth", "return")}
    assert plan.steps["kth"].label == "kth(word, k)"
    assert plan.order() == ["in:word", "in:k", "kth", "return"]


# --------------------------------------------------------------------------- errors


def step(sid: str, line: int) -> PlannedStep:
    return PlannedStep(sid, "value", sid, pf.Span("cyc.pflow", line, 3, line, 9))


def test_a_cycle_of_data_edges_is_a_plan_error() -> None:
    steps = [step("a", 1), step("b", 2), step("c", 3), PlannedStep("return", "return", "return")]
    with pytest.raises(PlanError) as info:
        Plan.from_steps("m::f", steps, [("a", "b", "data"), ("b", "c", "data"),
                                        ("c", "a", "data"), ("c", "return", "data")])
    assert info.value.message == "cycle among the data steps: a -> b -> c -> a"
    assert {str(s) for s in info.value.spans} == {"cyc.pflow:1:3", "cyc.pflow:2:3", "cyc.pflow:3:3"}


def test_call_cycles_between_handler_nodes_are_allowed() -> None:
    h = PlannedStep("handler:d", "handler", "decompose d", handler="m::d")
    plan = Plan.from_steps("m::d", [step("a", 1), h], [("a", "handler:d", "call"),
                                                        ("handler:d", "handler:d", "may_call")])
    assert plan.order() == ["a"] and plan.reachable_handlers() == {"m::d"}


@pytest.mark.parametrize("bad", [
    ([step("a", 1), step("a", 2)], []),
    ([step("a", 1)], [("a", "b", "data")]),
    ([step("a", 1), step("b", 2)], [("a", "b", "flows")]),
    ([step("a", 1), PlannedStep("h", "handler", "h")], [("a", "h", "data")]),
    ([PlannedStep("a", "loop", "a")], []),
])
def test_malformed_plans_are_value_errors(bad) -> None:
    with pytest.raises(ValueError):
        Plan.from_steps("m::f", *bad)
