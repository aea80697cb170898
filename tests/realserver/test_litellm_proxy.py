"""The HTTP model paths against a real LiteLLM proxy (``litellm --config``) in front of
llama-cpp-python's server (conftest.py), through both clients: the fast path and
``client: "litellm"``.

What the proxy does that a plain server does not, and these tests pin: it wants its key
(none: HTTP 401; a key that is not its master key, without a database: HTTP 400 "No
connected db."), neither retried; it answers a stream's ``stream_options.include_usage``
with usage of its own even when the server behind it sends none (the server itself sends
none: pflow says "unknown" there); ``/v1/models`` carries no ``x-litellm`` headers, so
the probe knows it by its OpenAPI title.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from clients import CLIENTS, PROMPTS, backend, posts, run, stream, write_marks
from litellm_proxy import MASTER_KEY
from llama_server import Server

import promptflow_dsl as pf
from promptflow_dsl.models import profiles
from promptflow_dsl.models.base import GenParams, Message, ModelError
from promptflow_dsl.runtime import RunFailed

KEY_ENV = "PFLOW_TEST_PROXY_KEY"

PROGRAM = '''
model default = "openai/smollm2" {{ api_base: "{base}", api_key_env: "{key_env}", temperature: 0,
                                   seed: 7, max_tokens: 12, num_retries: 2, timeout: 60{client} }}
''' + PROMPTS


def load(tmp_path: Path, client: str, base: str) -> Any:
    write_marks(tmp_path)
    path = tmp_path / "p.pflow"
    path.write_text(PROGRAM.format(base=base, key_env=KEY_ENV, client=CLIENTS[client]))
    return pf.load(path)


def test_the_proxy_is_recognised(litellm_proxy: Server):
    probed = profiles.server_profile(litellm_proxy.base_url, {}, api_key=MASTER_KEY)
    assert probed is not None and probed.kind == "litellm-proxy", probed
    # /v1/models has no x-litellm headers: known by /health/liveliness or the OpenAPI title
    assert probed.detail == "/health/liveliness" or "LiteLLM" in probed.detail, probed.detail
    declared = profiles.server_profile(litellm_proxy.base_url, {"server": "litellm-proxy"})
    assert declared is not None and declared.kind == "litellm-proxy"
    caps = backend("fast", litellm_proxy.base_url, attempts=3, server="litellm-proxy").capabilities
    assert caps.json_schema and caps.json_schema_object_only and not caps.completion


def test_chat_with_params_stop_and_seed(litellm_proxy: Server, real_server: Server,
                                        client: str, tmp_path: Path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, MASTER_KEY)
    program = load(tmp_path, client, litellm_proxy.base_url)
    mark, upstream = litellm_proxy.mark(), real_server.mark()
    first = run(program, "say", tmp_path, x="the sea")
    second = run(program, "say", tmp_path, x="the sea")
    for r in (first, second):  # the same request twice; the text may differ (the server's
        # prompt cache changes float rounding enough to flip greedy near-ties)
        assert isinstance(r.value, str) and r.value and "\n" not in r.value
    assert posts(litellm_proxy, mark) == [("POST", "/v1/chat/completions", 200)] * 2
    assert ("POST", "/v1/chat/completions", 200) in posts(real_server, upstream)
    step = next(s for s in first.trace.steps if s.handler == "say")
    assert step.usage is not None and step.usage.prompt_tokens > 0  # the server's count


def test_structured_output(litellm_proxy: Server, client: str, tmp_path: Path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, MASTER_KEY)
    # by its profile the proxy takes response_format json_schema, but the server behind it
    # (llama-cpp-python) refuses it with a 500: not retried, and the error says what to do
    program = load(tmp_path, client, litellm_proxy.base_url)
    mark = litellm_proxy.mark()
    with pytest.raises(RunFailed) as info:
        run(program, "pair", tmp_path, x="a cat")
    assert "json_schema: false" in str(info.value) and "not retried" in str(info.value)
    assert posts(litellm_proxy, mark) == [("POST", "/v1/chat/completions", 500)]
    # declared off: JSON asked for by instructions, validated and re-asked by pflow
    path = tmp_path / "p.pflow"
    path.write_text(path.read_text().replace("timeout: 60", "timeout: 60, json_schema: false"))
    program = pf.load(path)
    mark = litellm_proxy.mark()
    try:
        value = run(program, "pair", tmp_path, x="a cat").value
    except RunFailed as exc:  # a 135M model may not write valid JSON within 3 asks
        assert "Pair" in str(exc) or "JSON" in str(exc), exc
    else:
        assert isinstance(value["name"], str) and isinstance(value["n"], int)
    sent = posts(litellm_proxy, mark)
    assert sent and all(p == ("POST", "/v1/chat/completions", 200) for p in sent), sent


def test_streams_with_usage_from_the_proxy(litellm_proxy: Server, client: str):
    b = backend(client, litellm_proxy.base_url, attempts=3, api_key=MASTER_KEY)
    events = stream(b, "Tell me about the sea.", max_tokens=8)
    assert "".join(e.text for e in events).strip()
    last = events[-1]
    assert last.finish_reason in ("stop", "length")
    # the proxy answers stream_options.include_usage itself
    assert last.usage is not None and last.usage.completion_tokens > 0


def test_streams_without_usage_from_the_server_itself(real_server: Server, client: str):
    # llama-cpp-python's server ignores stream_options.include_usage: usage is unknown
    b = backend(client, real_server.base_url, attempts=3)
    events = stream(b, "Tell me about the sea.", max_tokens=8)
    assert "".join(e.text for e in events).strip()
    assert events[-1].finish_reason in ("stop", "length") and events[-1].usage is None


def test_a_hooked_stream_through_the_proxy(litellm_proxy: Server, client: str, tmp_path: Path,
                                           monkeypatch):
    monkeypatch.setenv(KEY_ENV, MASTER_KEY)
    program = load(tmp_path, client, litellm_proxy.base_url)
    r = run(program, "story", tmp_path, x="a fox")
    assert isinstance(r.value, str) and r.value
    step = next(s for s in r.trace.steps if s.handler == "story")
    fired = [e for e in step.events if e.get("type") == "hook"]
    assert len(fired) <= 1
    if fired:
        assert "[seen " in r.value
        # the stream closed by the firing reported no usage: counted as unknown, never as 0
        assert step.usage_unknown and step.usage_unknown >= 1


def test_a_wrong_key_is_not_retried(litellm_proxy: Server, client: str, tmp_path: Path,
                                    monkeypatch):
    key = "sk-not-the-master-key-0002"
    monkeypatch.setenv(KEY_ENV, key)
    program = load(tmp_path, client, litellm_proxy.base_url)
    mark = litellm_proxy.mark()
    with pytest.raises(RunFailed) as info:
        run(program, "say", tmp_path, x="the sea")
    message = str(info.value)
    # without a database the proxy knows only its master key, and says so with a 400
    assert posts(litellm_proxy, mark) == [("POST", "/v1/chat/completions", 400)]  # not retried
    assert "No connected db" in message and "master key" in message and "not retried" in message
    assert key not in message


def test_no_key_is_not_retried(litellm_proxy: Server, client: str):
    b = backend(client, litellm_proxy.base_url, attempts=3)  # no key given
    mark = litellm_proxy.mark()
    with pytest.raises(ModelError) as info:
        asyncio.run(b.chat([Message("user", "hi")], GenParams(max_tokens=2)))
    assert not info.value.retryable
    sent = posts(litellm_proxy, mark)
    assert len(sent) == 1, sent
    if client == "fast":  # no Authorization header at all: 401
        assert sent[0][2] == 401 and info.value.status == 401
        assert "no API key was sent" in str(info.value)
    else:  # the OpenAI library always sends a key ("no-key"): the proxy does not know it
        assert sent[0][2] in (400, 401) and info.value.status == sent[0][2]
