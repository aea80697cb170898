"""The offline backends: echo and scripted (mock) replies, and the emulations."""

from __future__ import annotations

import asyncio

import pytest

from promptflow_dsl.models.base import (
    Backend,
    CapabilityError,
    GenParams,
    Message,
    ModelError,
    Reply,
    Usage,
)
from promptflow_dsl.models.echo import EchoBackend
from promptflow_dsl.models.emulate import (
    CONTINUE_INSTRUCTION,
    JSON_INSTRUCTION,
    continue_via_chat,
    json_via_instructions,
    provider_extra,
    stream_via_chat,
    whitespace_chunks,
)
from promptflow_dsl.models.scripted import ScriptedBackend

P = GenParams()
MSGS = [Message("system", "be nice"), Message("user", "first"), Message("assistant", "ok"),
        Message("user", "hello big world")]


def run(coro):
    return asyncio.run(coro)


async def collect(agen):
    return [ev async for ev in agen]


def for_handler(h):
    return GenParams(extra={"pflow_handler": h})


def test_protocol():
    assert isinstance(EchoBackend(), Backend)
    assert isinstance(ScriptedBackend("m", []), Backend)


def test_echo_chat_complete_usage():
    b = EchoBackend()
    r = run(b.chat(MSGS, P))
    assert r.text == "hello big world" and r.model == "echo" and r.finish_reason == "stop"
    assert r.usage.prompt_tokens == 7 and r.usage.completion_tokens == 3
    assert run(b.chat([Message("system", "x")], P)).text == ""
    assert run(b.complete("some text", P)).text == ""
    assert not b.capabilities.logprobs


def test_echo_stream_chunks():
    events = run(collect(EchoBackend().stream(MSGS, None, P)))
    assert [e.text for e in events] == ["hello ", "big ", "world", ""]
    assert events[-1].finish_reason == "stop" and events[-1].usage.completion_tokens == 3


def test_echo_score_and_embed():
    b = EchoBackend()
    with pytest.raises(CapabilityError, match="log-probabilities"):
        run(b.score("a", ["b"]))
    v1, v2, v3 = run(b.embed(["the red cat", "the red cat", "quantum physics"]))
    assert v1 == v2 and v1 != v3 and len(v1) == 64


def test_whitespace_chunks():
    assert whitespace_chunks("  a bc\n\nd ") == ["  a ", "bc\n\n", "d "]
    assert "".join(whitespace_chunks("x  y\tz")) == "x  y\tz"
    assert whitespace_chunks("") == []


def test_scripted_shared_queue_all_operations():
    b = ScriptedBackend("default", ["one", "two words", "three"])
    assert run(b.chat(MSGS, P)).text == "one"
    events = run(collect(b.stream(MSGS, None, P)))
    assert [e.text for e in events] == ["two ", "words", ""]
    assert events[-1].usage.completion_tokens == 2 and events[-1].finish_reason == "stop"
    assert run(b.complete("prefix", P)).text == "three"
    assert [c.kind for c in b.calls] == ["chat", "stream", "complete"]
    assert b.calls[2].prefix == "prefix" and b.calls[0].messages == tuple(MSGS)


def test_scripted_per_handler_first_then_shared():
    b = ScriptedBackend("m", {None: ["shared1", "shared2"], "classify": ["c1"]})
    assert run(b.chat(MSGS, for_handler("classify"))).text == "c1"
    assert run(b.chat(MSGS, for_handler("classify"))).text == "shared1"
    assert run(b.chat(MSGS, for_handler("other"))).text == "shared2"
    assert [c.handler for c in b.calls] == ["classify", "classify", "other"]


def test_scripted_runs_out():
    b = ScriptedBackend("m", {"h": ["x"]})
    run(b.chat(MSGS, for_handler("h")))
    with pytest.raises(ModelError) as err:
        run(b.chat(MSGS, for_handler("h")))
    assert "no scripted replies left for model m (handler h)" in str(err.value)
    assert err.value.model == "m"
    with pytest.raises(ModelError, match=r"\(handler -\)"):
        run(b.complete("p", P))


def test_scripted_capabilities():
    caps = ScriptedBackend("m").capabilities
    assert caps.chat and caps.completion and caps.streaming and not caps.logprobs
    with pytest.raises(CapabilityError):
        run(ScriptedBackend("m").score("a", ["b"]))


class ChatOnly:
    """A chat-only backend that records what it was sent."""

    def __init__(self, reply: str, prefill: bool = False) -> None:
        from promptflow_dsl.models.base import Capabilities

        self.model_id = "chat-only"
        self.capabilities = Capabilities(prefill=prefill)
        self.reply = reply
        self.sent: list[list[Message]] = []

    async def chat(self, messages, params):
        self.sent.append(messages)
        return Reply(self.reply, self.model_id, Usage(3, 2), "stop")


def test_continue_via_prompt():
    b = ChatOnly("The cat sat on the mat")
    r = run(continue_via_chat(b, "The cat sat", P))
    assert r.text == " on the mat"  # the echoed prefix is cut
    assert b.sent[0] == [Message("system", CONTINUE_INSTRUCTION), Message("user", "The cat sat")]


def test_continue_via_prefill():
    b = ChatOnly(" on the mat", prefill=True)
    assert run(continue_via_chat(b, "The cat sat", P)).text == " on the mat"
    assert b.sent[0][-1] == Message("assistant", "The cat sat")
    b2 = ChatOnly(" on the mat", prefill=True)
    assert run(continue_via_chat(b2, "The cat sat ", P)).text == "on the mat"
    assert b2.sent[0][-1] == Message("assistant", "The cat sat")


def test_stream_via_chat_one_chunk():
    b = ChatOnly("whole reply")
    events = run(collect(stream_via_chat(b, MSGS, None, P)))
    assert len(events) == 1
    assert events[0].text == "whole reply" and events[0].finish_reason == "stop"
    assert events[0].usage.prompt_tokens == 3


def test_json_via_instructions():
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    out = json_via_instructions(MSGS, schema)
    assert out[0].content.startswith("be nice\n\n" + JSON_INSTRUCTION)
    assert '"properties"' in out[0].content and out[1:] == MSGS[1:]
    assert MSGS[0].content == "be nice"  # not changed in place
    bare = json_via_instructions([Message("user", "hi")], schema)
    assert bare[0].role == "system" and bare[0].content.startswith(JSON_INSTRUCTION)
    assert bare[1] == Message("user", "hi")


def test_provider_extra_drops_internal_keys():
    p = GenParams(extra={"pflow_handler": "h", "presence_penalty": 0.5})
    assert provider_extra(p) == {"presence_penalty": 0.5}


@pytest.mark.parametrize("prefill,prefix,chunks,expected", [
    (False, "The cat", ["The ", "cat", " sat"], " sat"),
    (False, "The cat", ["The ", "dog"], "The dog"),
    (False, "The cat", [" sat", " down"], " sat down"),
    (False, "The cat", ["The ", "ca"], "The ca"),
    (False, "The cat", ["The cat"], ""),
    (True, "The cat ", [" ", " sat", " down"], "sat down"),
    (True, "The cat", [" sat"], " sat"),
])
def test_continuation_filter(prefill, prefix, chunks, expected):
    from promptflow_dsl.models.emulate import ContinuationFilter, continuation_messages

    _, held = continuation_messages(prefix, prefill=prefill)
    f = ContinuationFilter(prefix, held, prefill=prefill)
    out = "".join(f.feed(c) for c in chunks) + f.flush()
    assert out == expected
