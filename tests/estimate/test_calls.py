"""Model calls per handler kind, exactly: ``promptflow_dsl.estimate`` on small programs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import promptflow_dsl as pf
from promptflow_dsl.estimate import Estimate, EstimateError, estimate

ECHO = 'model default = "echo"\n'


def load(tmp_path: Path, text: str) -> pf.Program:
    return pf.loads(text, name="p.pflow", base_dir=tmp_path)


def calls(e: Estimate, handler: str | None = None) -> tuple[int, int | None]:
    t = e.usage.total if handler is None else next(
        t for (h, _), t in e.usage.tallies.items() if h == handler)
    return t.calls_min, t.calls_max


def rows(tmp_path: Path, *items: dict) -> Path:
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in items), encoding="utf-8")
    return path


# ------------------------------------------------------------------ prompt, tool, flow

def test_a_text_prompt_is_one_call_never_re_asked(tmp_path):
    p = load(tmp_path, ECHO + 'prompt p(x: str) -> str = "Say {{ x }}"\n')
    assert calls(estimate(p, "p")) == (1, 1)


def test_a_typed_prompt_may_be_re_asked_up_to_its_retries(tmp_path):
    p = load(tmp_path, ECHO + """
type V { label: str }
prompt typed(x: str) -> V {
  user "Label {{ x }}"
  retries 3
}
prompt yes(x: str) -> "yes" | "no" = "{{ x }}?"
""")
    assert calls(estimate(p, "typed")) == (1, 4)
    assert calls(estimate(p, "yes")) == (1, 3)  # the default: 2 re-asks


def test_a_tool_makes_no_model_call(tmp_path):
    (tmp_path / "t.py").write_text("def up(x):\n    return x.upper()\n", encoding="utf-8")
    p = load(tmp_path, 'tool up(x: str) -> str = python "t:up"\n')
    e = estimate(p, "up")
    assert calls(e) == (0, 0)
    assert [(ln.handler, ln.model) for ln in e.lines()] == [("up", "")]
    assert e.usage.cost is not None and e.usage.cost.high == 0


FLOW = ECHO + """
type V { label: str }
prompt a(x: str) -> str = "A {{ x }}"
prompt b(x: str) -> V {
  user "B {{ x }}"
  retries 1
}
flow seq(x: str) -> str {
  first = a(x=x)
  second = b(x=first)
  return second.label
}
flow pick(x: str, loud: bool) -> str {
  r = a(x=x) if loud else b(x=x).label
  return r
}
flow fallback(x: str) -> str {
  r = try b(x=x).label else a(x=x)
  return r
}
flow each(items: list[str]) -> list[str] {
  out = [a(x=i) for i in items if len(i) > 1]
  return out
}
"""


def test_a_flow_adds_its_steps(tmp_path):
    e = estimate(load(tmp_path, FLOW), "seq")
    assert calls(e, "a") == (1, 1) and calls(e, "b") == (1, 2)
    assert calls(e) == (2, 3)


def test_a_branch_with_an_unknown_condition_is_the_cheaper_or_the_costlier_side(tmp_path):
    e = estimate(load(tmp_path, FLOW), "pick")
    assert calls(e, "a") == (0, 1) and calls(e, "b") == (0, 2)
    assert calls(e) == (1, 2)  # one side runs


def test_a_branch_with_a_known_condition_counts_the_taken_side(tmp_path):
    data = rows(tmp_path, {"x": "hi", "loud": True}, {"x": "hi", "loud": False},
                {"x": "yo", "loud": True})
    e = estimate(load(tmp_path, FLOW), "pick", data)
    assert calls(e, "a") == (2, 2) and calls(e, "b") == (1, 2)
    assert e.rows == 3
    csv = tmp_path / "rows.csv"  # CSV cells are text, read as JSON for other types
    csv.write_text("x,loud\nhi,true\nyo,false\n", encoding="utf-8")
    e = estimate(load(tmp_path, FLOW), "pick", csv)
    assert calls(e, "a") == (1, 1) and calls(e, "b") == (1, 2)


def test_try_adds_the_fallback_as_possible(tmp_path):
    e = estimate(load(tmp_path, FLOW), "fallback")
    assert calls(e, "b") == (1, 2) and calls(e, "a") == (0, 1)
    assert calls(e) == (1, 3)


def test_a_fan_out_over_data_has_the_data_s_size(tmp_path):
    data = rows(tmp_path, {"items": ["ab", "c", "de", "fgh"]}, {"items": []})
    e = estimate(load(tmp_path, FLOW), "each", data)
    assert calls(e) == (3, 3)  # the filter drops "c"; the empty list calls nothing


def test_a_fan_out_of_unknown_size_says_so_with_the_numbers_per_item(tmp_path):
    e = estimate(load(tmp_path, FLOW), "each")
    assert calls(e) == (0, None)
    note = next(n for n in e.all_notes() if "once per item" in n)
    assert "p.pflow:" in note and "per item kept by its filter: 1 model call," in note


# ------------------------------------------------------------------ decompose

DECOMPOSE = ECHO + """
prompt helper(q: str) -> str = "{{ q }}"
decompose solve(question: str) -> str {
  handlers [helper]
  prompt \"\"\"
    QC: What is 1 + 1?
    QS: [helper] 1 + 1
    A: "2"
    QS: [EOQ]
  \"\"\"
  max_steps 4
}
decompose nested(question: str) -> str {
  handlers { again: nested }
  prompt \"\"\"
    QC: x
    QS: [again] x
  \"\"\"
  max_steps 2
  max_depth 2
}
"""


def test_decompose_is_two_to_max_steps_plus_one_lines_and_up_to_max_steps_steps(tmp_path):
    e = estimate(load(tmp_path, DECOMPOSE), "solve")
    assert calls(e, "solve") == (2, 5)  # a step and [EOQ] at the least
    assert calls(e, "helper") == (1, 4)
    assert calls(e) == (3, 9)
    assert any("max_steps 4" in n for n in e.all_notes())


def test_decompose_stops_at_max_depth(tmp_path):
    e = estimate(load(tmp_path, DECOMPOSE), "nested")
    # depth 1: 2..3 lines and 1..2 calls of itself; depth 2: 2..3 lines, its own call fails
    assert calls(e) == (4, 9)
    assert any("past max_depth 2" in n for n in e.all_notes())


# ------------------------------------------------------------------ hooks

HOOKS = ECHO + """
prompt fix(t: str) -> str = "Fix {{ t }}"
prompt judge(s: str) -> bool = "Is {{ s }} wrong?"
hook calc {
  when r"(?P<expr>\\d+ \\+ \\d+) =$"
  run fix(t=expr)
  max_fires 3
}
hook check {
  when judge(s=segment)
  run fix(t=segment)
  max_fires 2
}
prompt solve(p: str) -> str {
  user "Solve {{ p }}"
  hooks [calc]
}
prompt careful(p: str) -> str {
  user "Solve {{ p }}"
  hooks [calc, check]
}
"""


def test_a_hooked_prompt_generates_once_more_per_firing_and_runs_the_programs(tmp_path):
    e = estimate(load(tmp_path, HOOKS), "solve")
    assert calls(e, "solve") == (1, 4)  # max_fires 3
    assert calls(e, "fix") == (0, 3)
    assert calls(e) == (1, 7)


def test_a_call_trigger_is_asked_at_every_sentence_end_without_a_bound(tmp_path):
    e = estimate(load(tmp_path, HOOKS), "careful")
    assert calls(e, "careful") == (1, 6)  # 3 + 2 firings
    assert calls(e, "judge") == (0, None)
    assert any("sentence end" in n for n in e.all_notes())


# ------------------------------------------------------------------ route

ROUTES = ECHO + """
prompt general(q: str) -> str = "{{ q }}"
route support(ticket: str) -> str {
  by llm
  expert billing { instruction "You handle invoices." }
  expert technical { instruction "You fix things." }
}
route desk(message: str) -> str {
  by rule
  expert refund when lower(message) contains "refund" { instruction "Refunds." }
  expert anything -> general
}
"""


def test_an_llm_route_is_its_router_plus_one_expert(tmp_path):
    e = estimate(load(tmp_path, ROUTES), "support")
    assert calls(e, "support (router)") == (1, 3)  # up to 2 re-asks
    assert calls(e, "support[billing]") == (0, 1)
    assert calls(e, "support[technical]") == (0, 1)
    assert calls(e) == (2, 4)


def test_a_rule_route_with_known_input_counts_the_expert_it_chooses(tmp_path):
    data = rows(tmp_path, {"message": "A refund please"}, {"message": "hello"},
                {"message": "REFUND"})
    e = estimate(load(tmp_path, ROUTES), "desk", data)
    assert calls(e, "desk[refund]") == (2, 2)
    assert calls(e, "general") == (1, 1)
    without = estimate(load(tmp_path, ROUTES), "desk")
    assert calls(without) == (1, 1)  # one of the two, whichever it is


# ------------------------------------------------------------------ sketch

JUDGE_TEMPLATE = """
  template \"\"\"
    Claim: {{ claim }}
    Because [why stop="\\n" max_tokens=40]
    Verdict: [verdict in {"true", "false"}]
  \"\"\"
"""
SKETCH = f"""
model default = "local/smollm2"
model chat = "openai/gpt-4o-mini"
sketch judge(claim: str) -> {{why: str, verdict: "true" | "false"}} {{
{JUDGE_TEMPLATE}}}
sketch beam_judge(claim: str) -> {{why: str, verdict: "true" | "false"}} {{
  decoder beam(2)
{JUDGE_TEMPLATE}}}
sketch chat_judge(claim: str) -> {{why: str, verdict: "true" | "false"}} {{
  model chat
{JUDGE_TEMPLATE}}}
"""


def test_a_sequential_sketch_asks_per_hole_and_scores_choices_where_it_can(tmp_path):
    p = load(tmp_path, SKETCH)
    # local: the free hole is a chat request (re-asked up to 2 times), the choice one score
    assert calls(estimate(p, "judge")) == (2, 4)
    # a chat model cannot score: the choice is asked and validated as well
    assert calls(estimate(p, "chat_judge")) == (2, 6)


def test_a_beam_sketch_expands_each_partial_sketch(tmp_path):
    e = estimate(load(tmp_path, SKETCH), "beam_judge")
    # why: 2 completions + 1 score (one partial sketch yet); verdict: 1..2 score requests
    assert calls(e) == (4, 5)


LOOP_SKETCH = """
model default = "local/smollm2"
sketch notes(topics: list[str], more: bool) -> {fact: list[str], extra: str} {
  template \"\"\"
    {% for t in topics %}
    {{ t }}: [fact stop="\\n"]
    {% endfor %}
    {% if more %}Also: [extra stop="\\n"]{% endif %}
  \"\"\"
}
"""


def test_a_sketch_hole_in_a_loop_is_counted_per_iteration_of_known_values(tmp_path):
    data = rows(tmp_path, {"topics": ["a", "b", "c"], "more": False})
    # three facts, each a chat request re-asked up to 2 times; `extra` is in a false if
    assert calls(estimate(load(tmp_path, LOOP_SKETCH), "notes", data)) == (3, 9)
    data = rows(tmp_path, {"topics": [], "more": True})
    assert calls(estimate(load(tmp_path, LOOP_SKETCH), "notes", data)) == (1, 3)


def test_a_sketch_hole_in_a_loop_over_unknown_values_has_no_upper_bound(tmp_path):
    e = estimate(load(tmp_path, LOOP_SKETCH), "notes")
    assert calls(e) == (1, None)  # `extra` at least once; `fact` any number of times
    assert any("hole 'fact' is filled once per iteration" in n for n in e.usage.notes)


# ------------------------------------------------------------------ evals

EVAL = ECHO + """
type Row { text: str, gold: str }
prompt label(text: str) -> str = "Label: {{ text }}"
prompt agree(a: str, b: str) -> bool = "Same? {{ a }} / {{ b }}"
eval quality {
  data "rows.jsonl" as Row
  run label(text=row.text)
  metric exact = out == row.gold
  metric judged = agree(a=out, b=row.gold)
}
"""


def eval_program(tmp_path: Path, n: int) -> pf.Program:
    rows(tmp_path, *({"text": f"item {i}", "gold": "x"} for i in range(n)))
    try:
        return load(tmp_path, EVAL)
    except pf.CompileError as exc:  # pragma: no cover - before the eval declaration lands
        pytest.skip(f"eval declarations do not check here: {exc}")


def test_an_eval_is_its_run_and_metrics_per_row_times_the_rows(tmp_path):
    p = eval_program(tmp_path, 5)
    e = estimate(p, "quality")
    assert e.kind == "eval" and e.rows == 5
    assert calls(e, "label") == (5, 5)
    assert calls(e, "agree") == (5, 15)  # bool: up to 2 re-asks
    assert calls(estimate(p, "quality", limit=2)) == (4, 8)
    assert estimate(p, "quality", sample=3, seed=1).rows == 3


def test_max_rows_estimates_a_sample_and_scales_it(tmp_path):
    p = eval_program(tmp_path, 10)
    e = estimate(p, "quality", max_rows=4)
    assert (e.rows, e.estimated_rows) == (10, 4)
    assert calls(e) == (20, 40)
    assert "estimated from 4 sampled rows" in e.render()


def test_estimate_eval_gives_the_json_a_run_summary_takes(tmp_path):
    from promptflow_dsl.estimate import estimate_eval

    p = eval_program(tmp_path, 3)
    got = estimate_eval(p, "quality")
    assert got["format"] == "pflow-estimate/1"
    assert got["target"] == {"kind": "eval", "name": "quality"}
    assert got["total"]["calls"] == {"min": 6, "max": 12}
    assert got["total"]["cost"] == {"low": 0.0, "high": 0.0, "currency": "USD"}
    json.dumps(got)
    with pytest.raises(EstimateError, match="no eval 'label'"):
        estimate_eval(p, "label")


def test_estimate_works_where_an_event_loop_runs(tmp_path):
    import asyncio

    from promptflow_dsl.estimate import estimate_eval

    p = eval_program(tmp_path, 2)

    async def inside() -> dict:
        return estimate_eval(p, "quality")

    assert asyncio.run(inside())["total"]["calls"] == {"min": 4, "max": 8}


def test_files_the_program_reads_are_known(tmp_path):
    (tmp_path / "instructions.txt").write_text("Be brief and kind. " * 20, encoding="utf-8")
    p = load(tmp_path, ECHO + """
prompt a(x: str) -> str = "{{ x }}"
flow f(items: list[str] = ["one", "two"]) -> list[str] {
  t = read_text("instructions.txt")
  out = [a(x=t + i) for i in items]
  return out
}
""")
    t = estimate(p, "f").usage.total
    assert (t.calls_min, t.calls_max) == (2, 2)
    assert t.input_min == t.input_max > 2 * 100  # 380 characters, each call


# ------------------------------------------------------------------ bad input

def test_an_unknown_name_says_what_there_is(tmp_path):
    p = load(tmp_path, FLOW)
    with pytest.raises(EstimateError, match=r"no handler or eval 'seqq'; did you mean 'seq'\? "
                                            r"\(handlers: a, b, each, fallback, pick, seq\)"):
        estimate(p, "seqq")


def test_rows_that_do_not_bind_are_located(tmp_path):
    p = load(tmp_path, FLOW)
    data = rows(tmp_path, {"x": "a", "loud": True}, {"x": "b"})
    with pytest.raises(EstimateError, match=r"rows.jsonl:2: no column 'loud' for parameter "
                                            r"'loud' of pick\(x: str, loud: bool\)"):
        estimate(p, "pick", data)
    data = rows(tmp_path, {"x": "a", "loud": "true"})  # JSONL values are taken as they are
    with pytest.raises(EstimateError, match=r"rows.jsonl:1: input 'loud' must be bool"):
        estimate(p, "pick", data)


def test_unreadable_data_is_an_estimate_error(tmp_path):
    p = load(tmp_path, FLOW)
    with pytest.raises(EstimateError, match="no such file"):
        estimate(p, "seq", tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"x": "a"}\n{"x": \n', encoding="utf-8")
    with pytest.raises(EstimateError, match=r"bad.jsonl:2"):
        estimate(p, "seq", bad)
    with pytest.raises(EstimateError, match=r"--map expects|no column 'y'"):
        estimate(p, "seq", bad, mapping={"x": "y"})
