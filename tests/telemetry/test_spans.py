"""OpenTelemetry export: spans, nesting and attributes (in memory), secrets kept out,
and no OpenTelemetry import while export is off."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import promptflow_dsl as pf
from promptflow_dsl.models.scripted import ScriptedBackend
from promptflow_dsl.runtime import RunConfig, RunFailed
from promptflow_dsl.runtime.cache import CacheMode

sdk = pytest.importorskip("opentelemetry.sdk.trace", reason="the otel extra is not installed")
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

from promptflow_dsl.telemetry import SpanExporter  # noqa: E402

SECRET = "sk-live-0123456789abcdef-very-secret"

PROGRAM = f'''
model default = "openai/gpt-test" {{ api_key: "{SECRET}", temperature: 0.3, max_tokens: 50 }}
prompt outline(topic: str) -> str = "Outline {{{{ topic }}}}"
prompt count(text: str) -> int = "How many words: {{{{ text }}}}"
flow essay(topic: str) -> int {{
  o = outline(topic=topic)
  return count(text=o)
}}
'''


@pytest.fixture
def memory():
    exporter = InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return SpanExporter(provider), exporter


def run(tmp_path: Path, observer, replies, **inputs):
    program = pf.loads(PROGRAM)
    model = ScriptedBackend("openai/gpt-test", replies)
    config = RunConfig(backends={"default": model}, cache=CacheMode.OFF,
                       trace_dir=tmp_path / "traces", observers=(observer,))
    return program.run("essay", config=config, **inputs)


def test_run_handler_and_model_spans_nest_with_genai_and_openinference_attributes(tmp_path, memory):
    observer, exporter = memory
    result = run(tmp_path, observer, ["one two three", "3"], topic="foxes")
    assert result.value == 3
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"pflow.run essay", "flow essay", "prompt outline", "prompt count",
                          "chat openai/gpt-test"} or len(exporter.get_finished_spans()) == 6
    by_id = {s.context.span_id: s for s in exporter.get_finished_spans()}
    root = spans["pflow.run essay"]
    assert root.parent is None
    flow = spans["flow essay"]
    assert flow.parent.span_id == root.context.span_id
    outline, count = spans["prompt outline"], spans["prompt count"]
    assert outline.parent.span_id == flow.context.span_id == count.parent.span_id
    chats = [s for s in exporter.get_finished_spans() if s.name == "chat openai/gpt-test"]
    assert len(chats) == 2
    assert {by_id[c.parent.span_id].name for c in chats} == {"prompt outline", "prompt count"}
    assert len({s.context.trace_id for s in exporter.get_finished_spans()}) == 1
    chat = next(c for c in chats if by_id[c.parent.span_id].name == "prompt outline")
    a = chat.attributes
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.system"] == a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "openai/gpt-test"
    assert a["gen_ai.request.temperature"] == 0.3 and a["gen_ai.request.max_tokens"] == 50
    assert a["gen_ai.usage.input_tokens"] > 0 and a["gen_ai.usage.output_tokens"] == 3
    assert tuple(a["gen_ai.response.finish_reasons"]) == ("stop",)
    assert a["openinference.span.kind"] == "LLM" and a["llm.model_name"] == "openai/gpt-test"
    assert a["llm.token_count.prompt"] == a["gen_ai.usage.input_tokens"]
    assert a["llm.token_count.completion"] == 3
    assert a["llm.input_messages.0.message.role"] == "user"
    assert a["llm.input_messages.0.message.content"] == "Outline foxes"
    assert a["llm.output_messages.0.message.content"] == "one two three"
    assert a["output.value"] == "one two three"
    assert json.loads(a["input.value"])[0]["content"] == "Outline foxes"
    assert json.loads(a["llm.invocation_parameters"])["temperature"] == 0.3
    assert outline.attributes["openinference.span.kind"] == "CHAIN"
    assert json.loads(outline.attributes["input.value"]) == {"topic": "foxes"}
    assert outline.attributes["output.value"] == "one two three"
    assert root.attributes["openinference.span.kind"] == "CHAIN"
    assert root.attributes["output.value"] == "3"
    assert root.attributes["pflow.run_id"] == result.trace.run_id
    assert root.status.status_code.name == "OK"
    # spans keep the times the trace recorded: a child inside its parent
    assert root.start_time <= flow.start_time <= outline.start_time <= chat.start_time
    assert chat.end_time <= outline.end_time <= flow.end_time <= root.end_time


def test_secrets_never_reach_attributes(tmp_path, memory, monkeypatch):
    observer, exporter = memory
    env_secret = "env-token-abcdefghijklmnop"
    monkeypatch.setenv("MY_SERVICE_TOKEN", env_secret)
    # the secrets even travel through inputs and replies: both come out masked
    run(tmp_path, observer, [f"the key is {SECRET} and {env_secret}", "1"],
        topic=f"say {SECRET} and {env_secret}")
    spans = exporter.get_finished_spans()
    assert spans
    for span in spans:
        for key, value in span.attributes.items():
            text = json.dumps(value) if not isinstance(value, str) else value
            assert SECRET not in text and env_secret not in text, (span.name, key)
            assert "api_key" not in key.lower() and "authorization" not in key.lower()
    chat = next(s for s in spans if s.name.startswith("chat") and "Outline" in
                s.attributes.get("llm.input_messages.0.message.content", ""))
    assert "***" in chat.attributes["llm.input_messages.0.message.content"]
    assert "***" in chat.attributes["output.value"]


def test_a_failed_run_marks_its_spans(tmp_path, memory):
    observer, exporter = memory
    with pytest.raises(RunFailed):
        run(tmp_path, observer, ["words", "not a number", "still not", "nope", "no"], topic="x")
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert spans["pflow.run essay"].status.status_code.name == "ERROR"
    assert spans["prompt count"].status.status_code.name == "ERROR"
    assert spans["prompt outline"].status.status_code.name == "OK"


def test_rows_of_a_dataset_are_traces_of_their_own(tmp_path, memory):
    import asyncio

    from promptflow_dsl.runtime.rows import RowRunner

    observer, exporter = memory
    program = pf.loads(PROGRAM)
    model = ScriptedBackend("openai/gpt-test", ["a b", "2", "c d e", "3"])
    config = RunConfig(backends={"default": model}, cache=CacheMode.OFF, write_trace=False,
                       observers=(observer,), concurrency=1)

    async def go():
        async with RowRunner(program, config) as runner:
            return [await runner.call("essay", {"topic": t}) for t in ("x", "y")]

    rows = asyncio.run(go())
    assert [r.value for r in rows] == [2, 3]
    roots = [s for s in exporter.get_finished_spans() if s.parent is None]
    assert len(roots) == 2 and len({s.context.trace_id for s in roots}) == 2


NO_IMPORT = r'''
import sys, os
os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
import promptflow_dsl as pf
from promptflow_dsl.runtime import RunConfig
p = pf.loads('model m = "echo"\nprompt hi(name: str) -> str {\n  model m\n  user "Hi {{ name }}"\n}\n')
r = p.run("hi", config=RunConfig(write_trace=False, cache=__import__("promptflow_dsl.runtime.cache", fromlist=["x"]).CacheMode.OFF), name="x")
assert r.value == "Hi x", r.value
bad = sorted(m for m in sys.modules if m.startswith("opentelemetry") or m.startswith("promptflow_dsl.telemetry"))
print("IMPORTED:" + ",".join(bad))
'''


def test_export_off_imports_no_opentelemetry(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run([sys.executable, "-c", NO_IMPORT], capture_output=True, text=True,
                         cwd=tmp_path, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "IMPORTED:"


def test_otel_flag_without_the_extra_is_a_usage_error(tmp_path, capsys, monkeypatch):
    import promptflow_dsl.telemetry as telemetry
    from promptflow_dsl import cli

    monkeypatch.setattr(telemetry, "_provider", None)
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    path = tmp_path / "p.pflow"
    path.write_text('model m = "echo"\nprompt hi(name: str) -> str {\n  model m\n  user "Hi"\n}\n')
    assert cli.main(["run", str(path), "-i", "name=x", "--otel", "--no-trace"]) == 2
    assert 'pip install "promptflow-dsl[otel]"' in capsys.readouterr().err
