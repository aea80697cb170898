"""LiteLLMBackend: real HTTP through litellm to the fake OpenAI server."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest
from fakeserver import fake_embedding, fake_logprob

from promptflow_dsl.models.base import (
    Backend,
    Capabilities,
    CapabilityError,
    GenParams,
    Message,
    ModelError,
)
from promptflow_dsl.models.emulate import CONTINUE_INSTRUCTION, JSON_INSTRUCTION
from promptflow_dsl.models.openai_http import OpenAIHTTPBackend
from promptflow_dsl.models.remote import LiteLLMBackend, capabilities_for, load_litellm

pytestmark = [  # litellm's own deprecation noise
    pytest.mark.filterwarnings("ignore::DeprecationWarning:litellm.*"),
    pytest.mark.filterwarnings("ignore:.*ReadOnly.*:UserWarning"),
]

USER = [Message("system", "You are terse."), Message("user", "hello there world")]
SCHEMA = {"title": "Verdict", "type": "object",
          "properties": {"label": {"type": "string"}}, "required": ["label"]}


@pytest.fixture(scope="module", autouse=True)
def litellm_once():
    return load_litellm()  # the slow import, once per session


class Sleeps:
    def __init__(self):
        self.delays: list[float] = []

    async def __call__(self, delay):
        self.delays.append(delay)


def backend(fake, params=None, **kw):
    kw.setdefault("sleep", Sleeps())
    return LiteLLMBackend("openai/fake", params or {}, api_base=fake.base_url, api_key="sk-test", **kw)


def run(coro):
    return asyncio.run(coro)


async def collect(agen):
    return [ev async for ev in agen]


def test_is_a_backend(fake_openai):
    b = backend(fake_openai)
    assert isinstance(b, Backend)
    assert "sk-test" not in repr(b) and "sk-test" not in repr(vars(b).get("capabilities"))


def test_chat_plain_with_usage(fake_openai):
    b = backend(fake_openai)
    reply = run(b.chat(USER, GenParams(temperature=0.2, max_tokens=50, stop=("\n\n",), seed=7,
                                       extra={"pflow_handler": "h", "presence_penalty": 0.5,
                                              "concurrency": 4, "api_key_env": "X"})))
    assert reply.text == "hello there world"
    assert reply.model == "openai/fake" and reply.finish_reason == "stop"
    assert reply.usage.prompt_tokens == 6 and reply.usage.completion_tokens == 3
    assert reply.usage.cost is None  # no price known for a fake model
    body = fake_openai.bodies[0]
    assert body["messages"] == [m.as_dict() for m in USER]
    assert body["model"] == "fake"
    assert (body["temperature"], body["max_tokens"], body["stop"], body["seed"]) == (0.2, 50, ["\n\n"], 7)
    assert body["presence_penalty"] == 0.5
    for internal in ("pflow_handler", "concurrency", "api_key_env", "api_key", "num_retries"):
        assert internal not in body
    assert fake_openai.requests[0]["headers"]["Authorization"] == "Bearer sk-test"


def test_stream_reassembles_with_usage(fake_openai):
    fake_openai.set_replies(["one two three four five"])
    events = run(collect(backend(fake_openai).stream(USER, None, GenParams())))
    assert "".join(e.text for e in events) == "one two three four five"
    assert len(events) >= 5
    assert events[-1].finish_reason == "stop"
    assert events[-1].usage.completion_tokens == 5
    body = fake_openai.bodies[0]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_stream_early_close_stops_the_server(fake_openai):
    fake_openai.set_replies([" ".join(f"w{i}" for i in range(100))])
    fake_openai.set_latency(0, chunk_delay=0.02)  # the whole stream would take 2 s

    async def main():
        agen = backend(fake_openai).stream(USER, None, GenParams())
        got = [await agen.__anext__(), await agen.__anext__()]
        await agen.aclose()
        return got

    t0 = time.monotonic()
    got = run(main())
    assert "".join(e.text for e in got) == "w0 w1"
    deadline = time.monotonic() + 1.5
    while fake_openai.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake_openai.in_flight == 0 and fake_openai.aborted == 1
    assert time.monotonic() - t0 < 1.8


def test_truncated_stream_is_a_model_error(fake_openai):
    fake_openai.set_replies(["one two three four"])
    fake_openai.truncate(1, after_chunks=2)
    with pytest.raises(ModelError, match="stream broke after 2 chunks"):
        run(collect(backend(fake_openai).stream(USER, None, GenParams())))


def test_json_schema_response_format_passed_through(fake_openai):
    fake_openai.set_replies(['{"label": "negative"}'])
    b = backend(fake_openai, {"json_schema": True})
    assert b.capabilities.json_schema
    reply = run(b.chat(USER, GenParams(json_schema=SCHEMA)))
    assert reply.text == '{"label": "negative"}'
    rf = fake_openai.bodies[0]["response_format"]
    assert rf == {"type": "json_schema", "json_schema": {"name": "Verdict", "schema": SCHEMA}}
    assert fake_openai.bodies[0]["messages"] == [m.as_dict() for m in USER]


def test_json_schema_by_instructions_without_capability(fake_openai):
    run(backend(fake_openai).chat(USER, GenParams(json_schema=SCHEMA)))
    body = fake_openai.bodies[0]
    assert "response_format" not in body
    assert body["messages"][0]["content"].startswith("You are terse.\n\n" + JSON_INSTRUCTION)


def test_429_with_retry_after_then_success(fake_openai):
    fake_openai.fail(429, 1, retry_after=2)
    sleeps = Sleeps()
    reply = run(backend(fake_openai, sleep=sleeps).chat(USER, GenParams()))
    assert reply.text == "hello there world"
    assert sleeps.delays == [2.0]
    assert fake_openai.count == 2


def test_500_twice_then_success(fake_openai):
    fake_openai.fail(500, 2)
    sleeps = Sleeps()
    reply = run(backend(fake_openai, sleep=sleeps, base_delay=0.5).chat(USER, GenParams()))
    assert reply.text == "hello there world"
    assert fake_openai.count == 3 and len(sleeps.delays) == 2
    assert 0 <= sleeps.delays[0] <= 0.5 and 0 <= sleeps.delays[1] <= 1.0


def test_500_until_give_up(fake_openai):
    fake_openai.fail(503, 5)
    with pytest.raises(ModelError) as err:
        run(backend(fake_openai, max_attempts=3).chat(USER, GenParams()))
    assert err.value.status == 503 and fake_openai.count == 3
    assert "HTTP 503 service unavailable" in str(err.value)
    assert "gave up after 3 attempts" in str(err.value)


def test_401_not_retried_and_key_not_shown(fake_openai):
    fake_openai.fail(401, 3)
    with pytest.raises(ModelError) as err:
        run(backend(fake_openai).chat(USER, GenParams()))
    assert err.value.status == 401 and fake_openai.count == 1
    assert "not retried" in str(err.value) and "sk-test" not in str(err.value)


def test_hang_times_out_after_max_attempts(fake_openai):
    fake_openai.hang(3)
    t0 = time.monotonic()
    with pytest.raises(ModelError) as err:
        run(backend(fake_openai, timeout=0.25, max_attempts=3).chat(USER, GenParams()))
    assert "timed out after 0.25s (gave up after 3 attempts)" in str(err.value)
    assert fake_openai.count == 3
    assert time.monotonic() - t0 < 3


def test_garbage_is_a_clear_model_error(fake_openai):
    fake_openai.garbage(2)
    with pytest.raises(ModelError) as err:
        run(backend(fake_openai, max_attempts=2).chat(USER, GenParams()))
    assert "the server's reply is not valid JSON" in str(err.value)
    assert "gave up after 2 attempts" in str(err.value)


def test_garbage_once_is_retried(fake_openai):
    fake_openai.garbage(1)
    assert run(backend(fake_openai).chat(USER, GenParams())).text == "hello there world"


def test_32_concurrent_chats_all_in_flight(fake_openai):
    fake_openai.set_latency(0.3)
    b = backend(fake_openai)

    async def main():
        return await asyncio.gather(*(b.chat([Message("user", f"q{i}")], GenParams())
                                      for i in range(32)))

    t0 = time.monotonic()
    replies = run(main())
    assert sorted(r.text for r in replies) == sorted(f"q{i}" for i in range(32))
    assert fake_openai.max_in_flight == 32
    assert time.monotonic() - t0 < 3


def test_text_completion_when_declared(fake_openai):
    fake_openai.set_replies([" upon a time"])
    b = backend(fake_openai, {"completion": True})
    reply = run(b.complete("Once", GenParams(max_tokens=5)))
    assert reply.text == " upon a time" and reply.usage.completion_tokens == 3
    assert fake_openai.requests[0]["path"] == "/v1/completions"
    assert fake_openai.bodies[0]["prompt"] == "Once"


def test_completion_emulated_through_chat(fake_openai):
    fake_openai.set_replies(["Once upon a time"])  # the model repeats the prefix
    reply = run(backend(fake_openai).complete("Once", GenParams()))
    assert reply.text == " upon a time"
    assert fake_openai.requests[0]["path"] == "/v1/chat/completions"
    assert fake_openai.bodies[0]["messages"] == [
        {"role": "system", "content": CONTINUE_INSTRUCTION}, {"role": "user", "content": "Once"}]


def test_stream_of_a_prefix_through_chat(fake_openai):
    fake_openai.set_replies(["Once upon a time"])
    events = run(collect(backend(fake_openai).stream(None, "Once", GenParams())))
    assert "".join(e.text for e in events) == " upon a time"


def test_score_with_logprobs(fake_openai):
    b = backend(fake_openai, {"completion": True})
    assert b.capabilities.logprobs
    scored = run(b.score("The cat sat", [" on the mat", " down"]))
    assert [s.text for s in scored] == [" on the mat", " down"]
    assert scored[0].tokens == 3 and scored[1].tokens == 1
    assert scored[0].logprob == pytest.approx(sum(fake_logprob(t) for t in (" on", " the", " mat")))
    assert scored[1].logprob == pytest.approx(fake_logprob(" down"))
    bodies = sorted(fake_openai.bodies, key=lambda body: body["prompt"])
    assert bodies[0]["prompt"] == "The cat sat down"
    assert bodies[0]["echo"] is True and bodies[0]["max_tokens"] == 1  # never 0
    assert bodies[0]["logprobs"] == 0


def test_score_without_logprobs_is_a_capability_error(fake_openai):
    with pytest.raises(CapabilityError, match="log-probabilities"):
        run(backend(fake_openai).score("a", ["b"]))
    assert fake_openai.count == 0


def test_embed(fake_openai):
    b = LiteLLMBackend("openai/text-embedding-fake", {}, api_base=fake_openai.base_url,
                       api_key="sk-test", sleep=Sleeps())
    assert b.capabilities.embeddings and not b.capabilities.chat
    vectors = run(b.embed(["alpha", "beta"]))
    assert vectors == [pytest.approx(fake_embedding("alpha")), pytest.approx(fake_embedding("beta"))]
    with pytest.raises(CapabilityError):
        run(backend(fake_openai).embed(["x"]))


def test_api_key_env(fake_openai, monkeypatch):
    monkeypatch.setenv("PFLOW_TEST_KEY", "sk-from-env")
    b = LiteLLMBackend("openai/fake", {"api_key_env": "PFLOW_TEST_KEY"}, api_base=fake_openai.base_url,
                       sleep=Sleeps())
    run(b.chat(USER, GenParams()))
    assert fake_openai.requests[0]["headers"]["Authorization"] == "Bearer sk-from-env"
    assert "sk-from-env" not in repr(vars(b))
    monkeypatch.delenv("PFLOW_TEST_KEY")
    with pytest.raises(ModelError, match="PFLOW_TEST_KEY"):
        run(b.chat(USER, GenParams()))


LITERAL_KEY = "literal-key-0123456789"  # no `sk-` prefix: only the backend knows it is a key


@pytest.mark.parametrize("cls", [LiteLLMBackend, OpenAIHTTPBackend])
def test_api_key_param_and_per_call_key_reach_the_server(fake_openai, cls):
    b = cls("openai/fake", {"api_base": fake_openai.base_url, "api_key": LITERAL_KEY}, sleep=Sleeps())
    run(b.chat(USER, GenParams()))
    run(b.chat(USER, GenParams(extra={"api_key": LITERAL_KEY + "-call"})))  # a handler's own key
    run(collect(b.stream(USER, None, GenParams())))
    auth = [{k.lower(): v for k, v in q["headers"].items()}.get("authorization")
            for q in fake_openai.requests]
    assert auth == [f"Bearer {LITERAL_KEY}", f"Bearer {LITERAL_KEY}-call", f"Bearer {LITERAL_KEY}"]
    for q in fake_openai.requests:
        assert "api_key" not in q["body"] and LITERAL_KEY not in str(q["body"])
    assert LITERAL_KEY not in repr(b)


@pytest.mark.parametrize("cls", [LiteLLMBackend, OpenAIHTTPBackend])
def test_a_literal_api_key_is_masked_in_errors(cls):
    class Refused(Exception):
        status_code = 401

    async def refuse(kw):
        raise Refused(f"Incorrect API key provided: {kw['api_key']}. Check it.")

    b = cls("openai/fake", {"api_base": "http://127.0.0.1:9/v1", "api_key": LITERAL_KEY},
            sleep=Sleeps())
    b._acompletion = refuse
    for params in (GenParams(), GenParams(extra={"api_key": LITERAL_KEY + "-call"})):
        with pytest.raises(ModelError) as info:
            run(b.chat(USER, params))
        assert "HTTP 401" in str(info.value) and LITERAL_KEY not in str(info.value)
        assert "Incorrect API key provided: ***. Check it." in str(info.value)
        with pytest.raises(ModelError) as info:
            run(collect(b.stream(USER, None, params)))
        assert LITERAL_KEY not in str(info.value)


def test_model_params_configure_transport(fake_openai):
    b = backend(fake_openai, {"num_retries": 1, "timeout": 5})
    assert b.max_attempts == 2 and b.timeout == 5.0
    fake_openai.fail(500, 2)
    with pytest.raises(ModelError, match="gave up after 2 attempts"):
        run(b.chat(USER, GenParams()))


@pytest.mark.parametrize("model_id,params,api_base,expected", [
    ("openai/gpt-4o-mini", {}, None, dict(json_schema=True, completion=False, logprobs=False)),
    ("gpt-4o", {}, None, dict(json_schema=True)),
    ("text-completion-openai/gpt-3.5-turbo-instruct", {}, None, dict(completion=True, logprobs=True)),
    ("openai/llama", {}, "http://127.0.0.1:1/v1", dict(completion=False, json_schema=False)),
    ("openai/llama", {"completion": True}, "http://127.0.0.1:1/v1", dict(completion=True, logprobs=True)),
    ("anthropic/claude-3-5-sonnet-latest", {}, None, dict(prefill=True, completion=False)),
    ("claude-3-haiku-20240307", {}, None, dict(prefill=True)),
    ("openai/text-embedding-3-small", {}, None, dict(embeddings=True, chat=False)),
    ("openai/gpt-4o", {"json_schema": False, "prefill": True}, None, dict(json_schema=False, prefill=True)),
])
def test_capability_table(model_id, params, api_base, expected):
    caps = capabilities_for(model_id, params, api_base)  # the static table, without litellm
    assert isinstance(caps, Capabilities)
    for name, value in expected.items():
        assert getattr(caps, name) is value, name


def test_capabilities_ask_litellm():
    assert capabilities_for("openai/gpt-4o-mini", ask_litellm=True).json_schema
    b = LiteLLMBackend("openai/gpt-4o-mini", {"prefill": True})
    assert b.capabilities.json_schema and b.capabilities.prefill
    assert b.capabilities is b.capabilities  # computed once


def test_stream_open_is_retried(fake_openai):
    fake_openai.fail(429, 1, retry_after=1)
    sleeps = Sleeps()
    events = run(collect(backend(fake_openai, sleep=sleeps).stream(USER, None, GenParams())))
    assert "".join(e.text for e in events) == "hello there world"
    assert sleeps.delays == [1.0] and fake_openai.count == 2


def test_import_is_lazy():
    code = ("import sys, promptflow_dsl.models.remote, promptflow_dsl.models.echo, "
            "promptflow_dsl.models.scripted; print('litellm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
