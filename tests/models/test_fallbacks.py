"""Model fallbacks: ``fallbacks: [other, ...]`` in a model declaration names models to try,
in order, when the model still fails after its retries with a transport error; the
checker's rules; the trace says which model answered, and usage goes to it."""

from __future__ import annotations

from pathlib import Path

import pytest

import promptflow_dsl as pf
from promptflow_dsl.diagnostics import CompileError
from promptflow_dsl.runtime import RunConfig, RunFailed
from promptflow_dsl.runtime.cache import CacheMode
from promptflow_dsl.runtime.trace import render_trace_tree

PROGRAM = '''
model default = "openai/fake" {{ api_base: "{base}", num_retries: 1, timeout: 2, client: "{client}",
                                 fallbacks: ["backup"] }}
model backup = "echo"
type V {{ n: int }}
prompt say(x: str) -> str = "say {{{{ x }}}}"
prompt judge(x: str) -> V = "judge {{{{ x }}}}"
'''

CLIENTS = ["http", "litellm"]


def load(tmp_path: Path, base: str, client: str) -> pf.Program:
    path = tmp_path / "p.pflow"
    path.write_text(PROGRAM.format(base=base, client=client))
    return pf.load(path)


def cfg(tmp_path: Path) -> RunConfig:
    return RunConfig(trace_dir=tmp_path / "traces", cache=CacheMode.OFF)


def model_step(result_or_trace):
    trace = result_or_trace.trace if hasattr(result_or_trace, "trace") else result_or_trace
    return next(s for s in trace.steps if s.kind == "prompt")


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("fault", ["503", "429", "timeout"])
def test_a_transport_failure_falls_back(tmp_path, fake_openai, client, fault):
    if fault == "timeout":
        fake_openai.hang(times=2, seconds=4)
    else:
        fake_openai.fail(int(fault), times=2, retry_after=0)
    r = load(tmp_path, fake_openai.base_url, client).run("say", config=cfg(tmp_path), x="hi")
    assert r.value == "say hi"  # the echo model answered
    assert fake_openai.count == 2  # the model's own attempts first (num_retries 1)
    step = model_step(r)
    assert step.model == "echo" and step.answered_by == "backup"
    event = next(e for e in step.events if e["type"] == "fallback")
    assert event["answered_by"] == "backup" and event["failed"][0]["model"] == "default"
    # usage is the answering model's (echo counts words: "say hi" -> 2 + 2)
    assert (step.usage.prompt_tokens, step.usage.completion_tokens) == (2, 2)
    assert "answered by fallback 'backup'" in render_trace_tree(r.trace)
    assert r.trace.models == {"default": "openai/fake", "backup": "echo"}


@pytest.mark.parametrize("client", CLIENTS)
def test_a_refused_connection_falls_back(tmp_path, client):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = load(tmp_path, f"http://127.0.0.1:{port}/v1", client).run("say", config=cfg(tmp_path),
                                                                  x="hi")
    assert r.value == "say hi" and model_step(r).answered_by == "backup"


@pytest.mark.parametrize("client", CLIENTS)
def test_a_refused_request_does_not_fall_back(tmp_path, fake_openai, client):
    fake_openai.fail(400, times=1)
    with pytest.raises(RunFailed) as info:
        load(tmp_path, fake_openai.base_url, client).run("say", config=cfg(tmp_path), x="hi")
    assert "HTTP 400" in str(info.value)
    assert model_step(info.value.trace).answered_by is None
    assert fake_openai.count == 1


def test_a_validation_failure_does_not_fall_back(tmp_path, fake_openai):
    fake_openai.set_reply(lambda body: "not json")
    with pytest.raises(RunFailed) as info:
        load(tmp_path, fake_openai.base_url, "http").run("judge", config=cfg(tmp_path), x="q")
    step = model_step(info.value.trace)
    assert step.answered_by is None and step.model == "openai/fake"
    assert all(r["path"].endswith("/chat/completions") for r in fake_openai.requests)


def test_every_model_failing_names_them_all(tmp_path, fake_openai):
    text = PROGRAM.replace('model backup = "echo"',
                           'model backup = "openai/other" {{ api_base: "{base}", num_retries: 0 }}')
    path = tmp_path / "p.pflow"
    path.write_text(text.format(base=fake_openai.base_url, client="http"))
    fake_openai.fail(503, times=3)
    with pytest.raises(RunFailed) as info:
        pf.load(path).run("say", config=cfg(tmp_path), x="hi")
    message = str(info.value)
    assert "model 'openai/other' failed for prompt 'say': HTTP 503" in message
    assert "before it, fallback from model 'openai/fake' after: HTTP 503" in message
    assert fake_openai.count == 3


CHECKS = '''
model default = "echo" {{ fallbacks: {fallbacks} }}
model backup = "echo" {{ fallbacks: ["third"] }}
model third = "local/smollm2" {{ fallbacks: [] }}
model emb = "openai/bge-m3" embed {{ api_base: "http://127.0.0.1:9/v1" }}
prompt p(x: str) -> str = "{{{{ x }}}}"
'''


def diagnostics(tmp_path: Path, fallbacks: str) -> list[str]:
    path = tmp_path / "c.pflow"
    path.write_text(CHECKS.format(fallbacks=fallbacks))
    try:
        program = pf.load(path)
    except CompileError as exc:
        return [f"{d.severity}: {d.message}" for d in exc.diagnostics]
    return [f"warning: {d.message}" for d in program.warnings]


def test_the_checker_knows_the_fallbacks(tmp_path):
    assert diagnostics(tmp_path, '["backup"]') == []
    assert diagnostics(tmp_path, '["bakup"]') == [
        "error: unknown model 'bakup' in the fallbacks of model 'default' (a fallback names a "
        "model declared in this module); did you mean 'backup'?"]
    assert diagnostics(tmp_path, '["default"]') == [
        "error: model 'default' cannot fall back to itself"]
    assert diagnostics(tmp_path, '["emb"]') == [
        "error: model 'default' is a generating model and cannot fall back to model 'emb', "
        "which is not"]
    assert diagnostics(tmp_path, '[1]') == [
        "error: model parameter 'fallbacks' must be list[str], got list[int]"]


def test_a_cycle_of_fallbacks_is_an_error(tmp_path):
    path = tmp_path / "c.pflow"
    path.write_text('model default = "echo" { fallbacks: ["a"] }\n'
                    'model a = "echo" { fallbacks: ["b"] }\n'
                    'model b = "echo" { fallbacks: ["a"] }\n')
    with pytest.raises(CompileError) as info:
        pf.load(path)
    assert [d.message for d in info.value.diagnostics] == [
        "the fallbacks of models form a cycle: a -> b -> a"]
    assert info.value.diagnostics[0].span.line == 3


def test_a_weaker_fallback_warns(tmp_path):
    path = tmp_path / "c.pflow"
    path.write_text('model default = "local/smollm2" { fallbacks: ["e"] }\n'
                    'model e = "echo"\n')
    warnings = [d.message for d in pf.load(path).warnings]
    assert warnings == ["fallback 'e' (echo) lacks prefill, logprobs, grammar, json_schema, "
                        "which model 'default' has: a handler that needs them gets a weaker "
                        "method, or fails, when 'e' answers"]
