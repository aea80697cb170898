"""Streamed usage a server does not report is unknown, never 0: a server that ignores
``stream_options.include_usage`` (llama-cpp-python's does) gives a hooked prompt's
stream no token counts, on both clients; the step says so (``usage`` None,
``usage_unknown``), the run's totals count such calls, and the trace text says
"unknown" instead of a number."""

from __future__ import annotations

from pathlib import Path

import pytest

import promptflow_dsl as pf
from promptflow_dsl.runtime import RunConfig
from promptflow_dsl.runtime.cache import CacheMode
from promptflow_dsl.runtime.trace import Step, Trace, compute_totals, render_trace_tree

PROGRAM = '''
model default = "openai/fake" {{ api_base: "{base}", api_key: "sk-fake", num_retries: 0{client} }}
tool noop(x: str) -> str = python "tools:noop"
hook never {{
  when r"never-seen(?=\\s)"
  run noop(x=text)
}}
prompt tell(x: str) -> str {{
  user "{{{{ x }}}}"
  hooks [never]
}}
prompt plain(x: str) -> str {{
  user "{{{{ x }}}}"
}}
flow both(x: str) -> str {{
  return tell(x=x) + plain(x=x)
}}
'''

CLIENTS = {"http": "", "litellm": ', client: "litellm"'}


def _run(tmp_path: Path, fake, client: str, entry: str):
    (tmp_path / "tools.py").write_text("def noop(x):\n    return x\n")
    (tmp_path / "p.pflow").write_text(PROGRAM.format(base=fake.base_url, client=CLIENTS[client]))
    program = pf.load(tmp_path / "p.pflow")
    config = RunConfig(cache=CacheMode.OFF, trace_dir=tmp_path / "traces")
    return program.run(entry, config=config, x="hello there")


def _step(trace: Trace, handler: str) -> Step:
    return next(s for s in trace.steps if s.handler == handler)


@pytest.mark.parametrize("client", CLIENTS)
def test_a_stream_without_usage_is_unknown_on_both_clients(tmp_path, fake_openai, client):
    fake_openai.stream_usage = False  # the server ignores stream_options.include_usage
    result = _run(tmp_path, fake_openai, client, "tell")
    assert result.value == "hello there"
    step = _step(result.trace, "tell")
    assert step.usage is None  # not 0+N: the server said nothing about the prompt
    assert step.usage_unknown == 1 and step.calls == 1
    totals = result.trace.totals
    assert (totals.calls, totals.usage_unknown) == (1, 1)
    assert (totals.prompt_tokens, totals.completion_tokens) == (0, 0)
    assert totals.cost is None
    text = render_trace_tree(result.trace)
    assert "tokens unknown" in text
    assert "usage unknown for 1 call" in text
    # the trace on disk says the same
    written = Trace.model_validate_json(result.trace_path.read_text())
    assert _step(written, "tell").usage is None and written.totals.usage_unknown == 1


@pytest.mark.parametrize("client", CLIENTS)
def test_a_stream_with_usage_is_counted(tmp_path, fake_openai, client):
    result = _run(tmp_path, fake_openai, client, "tell")
    step = _step(result.trace, "tell")
    assert step.usage is not None and step.usage.prompt_tokens > 0
    assert step.usage.completion_tokens == 2  # "hello there": the fake server's tokens
    assert step.usage_unknown is None and result.trace.totals.usage_unknown == 0
    assert "unknown" not in render_trace_tree(result.trace)


@pytest.mark.parametrize("client", CLIENTS)
def test_known_and_unknown_calls_in_one_run(tmp_path, fake_openai, client):
    fake_openai.stream_usage = False  # the plain prompt is not streamed: its usage is known
    result = _run(tmp_path, fake_openai, client, "both")
    plain = _step(result.trace, "plain")
    assert plain.usage is not None and plain.usage.prompt_tokens > 0
    totals = result.trace.totals
    assert totals.calls == 2 and totals.usage_unknown == 1
    assert totals.prompt_tokens == plain.usage.prompt_tokens  # a lower bound, and says so
    text = render_trace_tree(result.trace)
    assert f"{totals.prompt_tokens}+{totals.completion_tokens} tokens (usage unknown for 1 call" in text


def test_totals_of_steps_with_unknown_usage():
    steps = [Step(id="s1", handler="a", kind="prompt", model="m", calls=3, cache_hits=0,
                  usage_unknown=2, status="ok"),
             Step(id="s2", handler="b", kind="prompt", model="m", calls=1, cache_hits=1,
                  cache_hit=True, status="ok")]
    steps[0].usage = None
    totals = compute_totals(steps)
    assert (totals.calls, totals.cache_hits, totals.usage_unknown) == (4, 1, 2)


def test_a_trace_written_before_usage_unknown_still_loads():
    old = {"run_id": "20250101T000000.000Z-abcdef", "program": "p.pflow", "entry": "main",
           "started_at": "2025-01-01T00:00:00Z", "finished_at": "2025-01-01T00:00:01Z",
           "steps": [{"id": "s1", "handler": "a", "kind": "prompt", "model": "m",
                      "usage": {"prompt_tokens": 3, "completion_tokens": 4}, "status": "ok"}],
           "totals": {"calls": 1, "cache_hits": 0, "prompt_tokens": 3, "completion_tokens": 4}}
    trace = Trace.model_validate(old)
    assert trace.steps[0].usage_unknown is None and trace.totals.usage_unknown == 0
    assert "unknown" not in render_trace_tree(trace)

