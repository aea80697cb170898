"""Stage run: `try EXPR else FALLBACK` — what falls back, what does not, and the trace."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from run_config import cfg

import promptflow_dsl as pf
from promptflow_dsl.models.base import GenParams, Message, ModelError, Reply, Usage
from promptflow_dsl.models.scripted import ScriptedBackend
from promptflow_dsl.runtime import RunFailed
from promptflow_dsl.runtime.trace import render_trace_tree
from promptflow_dsl.testing import run_test

TOOLS = '''
import time

def up(s):
    return s.upper()

def boom(s):
    raise ValueError(f"cannot handle {s!r}")

def slow_up(s):
    time.sleep(0.3)
    return s.upper()

def pair(a, b):
    return a + b
'''

PROGRAM = '''
model default = "echo"

type Verdict {
  label: "positive" | "negative" | "mixed"
  reason: str
}

prompt classify(review: str) -> Verdict {
  user "Label this review as JSON: {{ review }}"
  retries 1
}
prompt reply_to(review: str, label: str) -> str = "Reply to this {{ label }} review: {{ review }}"
tool up(s: str) -> str = python "tools:up"
tool boom(s: str) -> str = python "tools:boom"
tool slow_up(s: str) -> str = python "tools:slow_up"
tool pair(a: str, b: str) -> str = python "tools:pair"

flow triage(review: str) -> {label: str, reply: str?} {
  v = try classify(review=review) else {label: "mixed", reason: "unclassified"}
  reply = reply_to(review=review, label=v.label) if v.label != "positive" else none
  return {label: v.label, reply: reply}
}

flow labels(reviews: list[str]) -> list[str?] {
  verdicts = [try classify(review=r) else none for r in reviews]
  return [v.label if v != none else none for v in verdicts]
}

flow shout_all(words: list[str]) -> list[str] {
  return [(try boom(s=w) else "?") if len(w) > 3 else up(s=w) for w in words]
}

flow guarded(s: str) -> str {
  return try boom(s=s) else up(s=s + "!")
}

flow fine(s: str) -> str {
  return try up(s=s) else boom(s=s)
}

flow fallback_fails(s: str) -> str {
  return try boom(s=s) else boom(s=s + "?")
}

flow nested(s: str) -> str {
  return try boom(s=s) else try boom(s=s + "?") else "last"
}

flow parsed(text: str) -> any {
  return try parse_json(text) else {error: "not JSON"}
}

flow both(s: str) -> str {
  return try pair(a=slow_up(s=s), b=boom(s=s)) else "fallback"
}

test "a classification that never validates falls back instead of failing" {
  mock model default for classify replies ["not json", "still not json"]
  mock reply_to returns "Thanks for the feedback."
  out = triage(review="It works, mostly.")
  expect out.label == "mixed"
  expect out.reply == "Thanks for the feedback."
}

test "the other items go on" {
  mock model default for classify replies [
    """{"label": "positive", "reason": "ok"}""", "no", "no",
    """{"label": "negative", "reason": "bad"}""",
  ]
  expect labels(reviews=["a", "b", "c"]) == ["positive", none, "negative"]
  expect calls(classify) == 3
}

test "scripted replies that run out are the test's mistake, not a fallback" {
  mock model default for classify replies ["not json"]
  expect error triage(review="x") contains "no scripted replies left"
}
'''


@pytest.fixture
def program(tmp_path: Path) -> pf.CheckedProgram:
    (tmp_path / "tools.py").write_text(TOOLS)
    (tmp_path / "p.pflow").write_text(PROGRAM)
    return pf.load(tmp_path / "p.pflow")


def test_a_reply_that_never_validates_falls_back_and_stays_in_the_trace(program, tmp_path):
    model = ScriptedBackend("echo", ["not json", "still not json", "Thanks!"])
    r = program.run("triage", config=cfg(tmp_path, backends={"echo": model}), review="meh")
    assert r.value == {"label": "mixed", "reply": "Thanks!"}
    assert r.trace.status == "ok" and r.trace.error is None
    steps = {s.handler: s for s in r.trace.steps}
    failed = steps["classify"]
    assert failed.status == "failed" and failed.attempts == 2
    assert "the reply did not match Verdict after 2 attempts" in failed.error
    flow = steps["triage"]
    assert flow.status == "ok"
    [event] = flow.events
    assert event["type"] == "try" and event["handler"] == "classify"
    assert event["summary"].startswith("fell back: prompt 'classify': the reply did not match")
    assert event["line"] == PROGRAM.splitlines().index(
        '  v = try classify(review=review) else {label: "mixed", reason: "unclassified"}') + 1
    tree = render_trace_tree(r.trace)
    assert "• try: fell back: prompt 'classify'" in tree and "✗ classify" in tree
    assert r.trace_path is not None and '"fell back: ' in r.trace_path.read_text()


def test_when_the_tried_expression_succeeds_the_fallback_is_not_evaluated(program, tmp_path):
    r = program.run("fine", config=cfg(tmp_path), s="ok")
    assert r.value == "OK"
    assert [s.handler for s in r.trace.steps] == ["fine", "up"]
    assert all(not s.events for s in r.trace.steps)


def test_a_tool_exception_falls_back_to_a_call(program, tmp_path):
    r = program.run("guarded", config=cfg(tmp_path), s="x")
    assert r.value == "X!"
    assert [(s.handler, s.status) for s in r.trace.steps] == [
        ("guarded", "ok"), ("boom", "failed"), ("up", "ok")]
    assert "tool 'boom' raised ValueError: cannot handle 'x'" in r.trace.steps[0].events[0]["summary"]


def test_a_failing_fallback_fails_the_run_with_its_own_error(program, tmp_path):
    with pytest.raises(RunFailed) as info:
        program.run("fallback_fails", config=cfg(tmp_path), s="x")
    assert "cannot handle 'x?'" in info.value.message
    assert info.value.trace.status == "failed"


def test_nested_try(program, tmp_path):
    r = program.run("nested", config=cfg(tmp_path), s="x")
    assert r.value == "last"
    assert len(r.trace.steps[0].events) == 2


def test_an_evaluation_error_inside_the_tried_expression_falls_back(program, tmp_path):
    assert program.run("parsed", config=cfg(tmp_path), text="[1, 2]").value == [1, 2]
    r = program.run("parsed", config=cfg(tmp_path), text="{oops")
    assert r.value == {"error": "not JSON"}
    assert r.trace.steps[0].events[0]["summary"].startswith("fell back: parse_json() failed: ")


@pytest.mark.parametrize("sequential", [False, True])
def test_one_failing_item_lets_the_others_go_on(program, tmp_path, sequential):
    r = program.run("shout_all", config=cfg(tmp_path, sequential=sequential),
                    words=["ab", "long one", "cd", "longer"])
    assert r.value == ["AB", "?", "CD", "?"]
    assert r.trace.status == "ok"
    assert sorted(s.status for s in r.trace.steps if s.handler == "boom") == ["failed", "failed"]
    assert len(r.trace.steps[0].events) == 2


class FailsOn:
    """A model that fails for good (as after its retries) on reviews holding ``bad``."""

    def __init__(self, bad: str) -> None:
        self.bad = bad
        self.inner = ScriptedBackend("echo")
        self.capabilities = self.inner.capabilities
        self.model_id = "echo"

    async def chat(self, messages: list[Message], params: GenParams) -> Reply:
        text = messages[-1].content
        await asyncio.sleep(0.01)
        if self.bad in text:
            raise ModelError("echo", "HTTP 503: overloaded (4 attempts)", status=503)
        return Reply('{"label": "positive", "reason": "fine"}', "echo", Usage(5, 5))

    async def aclose(self) -> None:
        pass


def test_a_model_failure_in_a_fan_out_fails_only_its_item(program, tmp_path):
    r = program.run("labels", config=cfg(tmp_path, backends={"echo": FailsOn("bad")}),
                    reviews=["good", "bad", "fine"])
    assert r.value == ["positive", None, "positive"]
    assert r.trace.status == "ok"
    failed = [s for s in r.trace.steps if s.status == "failed"]
    assert [s.inputs for s in failed] == [{"review": "bad"}]
    assert "model 'echo' failed for prompt 'classify': HTTP 503" in failed[0].error
    [event] = next(s for s in r.trace.steps if s.handler == "labels").events
    assert event["summary"].startswith("fell back: model 'echo' failed")


def test_parts_running_beside_the_failure_finish_before_the_fallback(program, tmp_path):
    r = program.run("both", config=cfg(tmp_path), s="x")
    assert r.value == "fallback"
    assert {s.handler: s.status for s in r.trace.steps} == {
        "both": "ok", "slow_up": "ok", "boom": "failed"}


def test_a_bug_of_pflow_is_not_caught(program, tmp_path, monkeypatch):
    from promptflow_dsl.runtime import evaluate

    def broken(text: str) -> object:
        raise RuntimeError("a bug")

    monkeypatch.setitem(evaluate.BUILTIN_IMPLS, "parse_json", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        program.run("parsed", config=cfg(tmp_path), text="[]")


def test_cancellation_is_not_caught(program, tmp_path):
    async def main() -> None:
        task = asyncio.ensure_future(program.arun("both", config=cfg(tmp_path), s="x"))
        await asyncio.sleep(0.1)  # slow_up is running
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_the_test_blocks(program):
    outcomes = {t.name: run_test(program, t) for t in program.tests}
    assert {name: o.status for name, o in outcomes.items()} == {
        "a classification that never validates falls back instead of failing": "passed",
        "the other items go on": "passed",
        "scripted replies that run out are the test's mistake, not a fallback": "passed",
    }
