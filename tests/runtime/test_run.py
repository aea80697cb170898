"""Stage run: flows, prompts and tools executed end to end on offline backends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from run_config import cfg

import promptflow_dsl as pf
from promptflow_dsl.models.scripted import ScriptedBackend
from promptflow_dsl.runtime import InputError, RunFailed
from promptflow_dsl.runtime.cache import CacheMode

TOOLS = '''
import time

def up(s):
    return s.upper()

def slow_up(s):
    time.sleep(0.2)
    return s.upper()

def boom(s):
    raise ValueError(f"cannot handle {s!r}")

async def aup(s):
    return s.upper() + "!"

def bad_type(s):
    return 42
'''

PROGRAM = '''
model default = "echo"
type V { label: "a" | "b", n: int }

prompt hello(name: str) -> str = "Hello {{ name }}!"
prompt fresh(name: str) -> str {
  user "Hi {{ name }}"
  cache false
}
prompt verdict(x: str) -> V = "judge {{ x }}"
tool up(s: str) -> str = python "tools:up"
tool slow_up(s: str) -> str = python "tools:slow_up"
tool aup(s: str) -> str = python "tools:aup"
tool boom(s: str) -> str = python "tools:boom"
tool bad_type(s: str) -> str = python "tools:bad_type"

flow fan(names: list[str]) -> list[str] {
  return [hello(name=up(s=n)) for n in names if len(n) > 1]
}
flow branch(k: int) -> str {
  r = hello(name="big") if k > 5 else hello(name="small")
  return r
}
flow parallel(a: str) -> list[str] {
  x = slow_up(s=a)
  y = slow_up(s=a + "2")
  z = slow_up(s=a + "3")
  return [x, y, z]
}
flow failing(a: str) -> {ok: str, bad: str} {
  ok = up(s=a)
  bad = boom(s=a)
  after = up(s=bad)
  return {ok: ok, bad: after}
}
flow asyncs(a: str) -> str { return aup(s=a) }
flow wrong(a: str) -> str { return bad_type(s=a) }
flow judged(x: str) -> str {
  v = verdict(x=x)
  return v.label
}
'''


@pytest.fixture
def program(tmp_path: Path):
    (tmp_path / "tools.py").write_text(TOOLS)
    (tmp_path / "p.pflow").write_text(PROGRAM)
    return pf.load(tmp_path / "p.pflow")


def test_fan_out_with_filter(program, tmp_path):
    r = program.run("fan", config=cfg(tmp_path), names=["ab", "c", "de"])
    assert r.value == ["Hello AB!", "Hello DE!"]
    kinds = [s.kind for s in r.trace.steps]
    assert kinds.count("prompt") == 2 and kinds.count("tool") == 2
    assert r.trace_path is not None and r.trace_path.exists()


def test_only_the_taken_branch_runs(program, tmp_path):
    r = program.run("branch", config=cfg(tmp_path), k=9)
    assert r.value == "Hello big!"
    assert [s.inputs for s in r.trace.steps if s.handler == "hello"] == [{"name": "big"}]


def test_independent_statements_run_concurrently(program, tmp_path):
    r = program.run("parallel", config=cfg(tmp_path), a="q")
    assert r.value == ["Q", "Q2", "Q3"]
    assert r.trace.wall_ms < 550  # three 0.2 s tools side by side, not 0.6 s in a row


def test_sequential_mode_runs_one_at_a_time(program, tmp_path):
    r = program.run("parallel", config=cfg(tmp_path, sequential=True), a="q")
    assert r.value == ["Q", "Q2", "Q3"]
    assert r.trace.wall_ms >= 600


def test_async_tool(program, tmp_path):
    assert program.run("asyncs", config=cfg(tmp_path), a="x").value == "X!"


def test_failure_skips_dependents_and_names_handler_and_line(program, tmp_path):
    with pytest.raises(RunFailed) as info:
        program.run("failing", config=cfg(tmp_path), a="x")
    exc = info.value
    assert "tool 'boom' raised ValueError: cannot handle 'x'" in exc.message
    lines = PROGRAM.splitlines()
    decl_line = next(i for i, ln in enumerate(lines) if ln.startswith("tool boom")) + 1
    call_line = next(i for i, ln in enumerate(lines) if "bad = boom" in ln) + 1
    assert exc.span is not None and exc.span.line == decl_line  # the tool's declaration
    assert [(h, sp.line) for h, sp in exc.chain] == [("boom", call_line)]
    assert exc.diagnostic().notes[0][1] == "in this call of 'boom'"
    assert "tools.py" in exc.detail and "promptflow_dsl" not in exc.detail
    steps = {s.handler: s for s in exc.trace.steps}
    assert steps["boom"].status == "failed"
    assert exc.trace.status == "failed"
    flow = next(s for s in exc.trace.steps if s.handler == "failing")
    assert any("'after' skipped" in e["summary"] for e in flow.events)
    assert [s.inputs for s in exc.trace.steps if s.handler == "up"] == [{"s": "x"}]


def test_tool_result_is_validated(program, tmp_path):
    with pytest.raises(RunFailed) as info:
        program.run("wrong", config=cfg(tmp_path), a="x")
    assert "returned a value that is not str" in info.value.message


def test_structured_output_retry_then_success(program, tmp_path):
    model = ScriptedBackend("echo", ["not json", '{"label": "b", "n": 3}'])
    r = program.run("judged", config=cfg(tmp_path, backends={"echo": model}), x="y")
    assert r.value == "b"
    step = next(s for s in r.trace.steps if s.handler == "verdict")
    assert step.attempts == 2
    assert "not valid" in model.calls[1].messages[-1].content
    assert "JSON Schema" in model.calls[0].messages[0].content  # schema instructions


def test_structured_output_gives_up_after_retries(program, tmp_path):
    model = ScriptedBackend("echo", ["nope", "still no", '{"label": "c", "n": 1}'])
    with pytest.raises(RunFailed) as info:
        program.run("judged", config=cfg(tmp_path, backends={"echo": model}), x="y")
    msg = info.value.message
    assert "prompt 'verdict': the reply did not match V after 3 attempts" in msg
    assert msg.endswith('$.label: expected "a" | "b", got str "c"')


def test_input_errors(program, tmp_path):
    with pytest.raises(InputError, match="missing input 'names'"):
        program.run("fan", config=cfg(tmp_path))
    with pytest.raises(InputError, match="has no parameter 'nope'"):
        program.run("fan", config=cfg(tmp_path), names=[], nope=1)
    with pytest.raises(InputError, match="input 'k' must be int"):
        program.run("branch", config=cfg(tmp_path), k="many")


def test_cache_hit_on_second_run_makes_no_call(program, tmp_path):
    model = ScriptedBackend("echo", ['{"label": "a", "n": 1}'])
    config = cfg(tmp_path, backends={"echo": model}, cache=CacheMode.DEFAULT)
    first = program.run("judged", config=config, x="same")
    second = program.run("judged", config=config, x="same")
    assert first.value == second.value == "a"
    assert len(model.calls) == 1
    step = next(s for s in second.trace.steps if s.handler == "verdict")
    assert step.cache_hit is True
    refresh = cfg(tmp_path, backends={"echo": ScriptedBackend("echo", ['{"label": "b", "n": 1}'])},
                  cache=CacheMode.REFRESH)
    assert program.run("judged", config=refresh, x="same").value == "b"
    assert program.run("judged", config=config, x="same").value == "b"


def test_per_handler_cache_opt_out(program, tmp_path):
    model = ScriptedBackend("echo", ["one", "two"])
    config = cfg(tmp_path, backends={"echo": model}, cache=CacheMode.DEFAULT)
    assert program.run("fresh", config=config, name="x").value == "one"
    assert program.run("fresh", config=config, name="x").value == "two"


def test_secrets_never_reach_trace_or_cache(program, tmp_path, monkeypatch):
    secret = "sk-test-very-secret-value-123"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    r = program.run("fan", config=cfg(tmp_path, cache=CacheMode.DEFAULT), names=[secret])
    assert secret not in r.trace_path.read_text()
    for f in (tmp_path / "cache").rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes()


def test_trace_is_written_even_when_the_run_fails(program, tmp_path):
    with pytest.raises(RunFailed) as info:
        program.run("failing", config=cfg(tmp_path), a="x")
    data = json.loads(info.value.trace_path.read_text())
    assert data["schema_version"] == "pflow-trace/1" and data["status"] == "failed"
