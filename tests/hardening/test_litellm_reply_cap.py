"""Replies read by litellm's own HTTP clients are size-bounded as the built-in client's are:
litellm gets clients over ``models/bounded_httpx.py`` (through the OpenAI library, and per
call for the providers litellm sends through its own HTTP handler), so a gzip bomb — a
small body that inflates past ``PFLOW_MAX_REPLY_BYTES`` — fails at the bound, streamed or
not, with a located, non-retried error."""

from __future__ import annotations

import asyncio
import json
import zlib
from pathlib import Path

import pytest

from promptflow_dsl import cli
from promptflow_dsl.models.base import GenParams, Message, ModelError
from promptflow_dsl.models.remote import LiteLLMBackend, bounded_client

LIMIT = 1 << 20
KEY = "sk-live-0123456789abcdef"


def gzipped(data: bytes, times: int = 1) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    return b"".join(packer.compress(data) for _ in range(times)) + packer.flush()


# 32 MiB of JSON once inflated, ~32 KB on the wire
BOMB = gzipped(b'{"choices": [{"index": 0, "message": {"role": "assistant", "content": "'
               + b"a" * (32 << 20) + b'"}}]}')
_EVENT = ('data: ' + json.dumps({"id": "x", "object": "chat.completion.chunk", "created": 0,
                                  "model": "fake", "choices": [{"index": 0, "delta": {
                                      "content": "b" * 4000}, "finish_reason": None}]})
          + "\n\n").encode()
STREAM_BOMB = gzipped(_EVENT, times=(32 << 20) // len(_EVENT))
SSE = {"Content-Encoding": "gzip", "Content-Type": "text/event-stream"}


@pytest.fixture(autouse=True)
def _small_cap(monkeypatch):
    monkeypatch.setenv("PFLOW_MAX_REPLY_BYTES", str(LIMIT))
    monkeypatch.setenv("PFLOW_SERVER_PROBE", "0")


def posts(fake) -> int:
    return sum(1 for r in fake.requests if r["method"] == "POST")


def backend(model: str, fake, **params) -> LiteLLMBackend:
    return LiteLLMBackend(model, {"api_base": fake.base_url, "api_key": KEY, "num_retries": 3,
                                  **params}, base_delay=0.01)


def chat(b: LiteLLMBackend) -> str:
    return asyncio.run(b.chat([Message("user", "hi")], GenParams())).text


def stream(b: LiteLLMBackend) -> str:
    async def go() -> str:
        return "".join([ev.text async for ev in b.stream([Message("user", "hi")], None,
                                                          GenParams())])
    return asyncio.run(go())


# openai/…: the OpenAI library over litellm.aclient_session; the others: litellm's own HTTP
# handler, given a bounded one per call (anthropic's API path is /v1/messages)
@pytest.mark.parametrize("model", ["openai/fake", "hosted_vllm/fake", "anthropic/claude-x"])
def test_a_gzip_bomb_fails_at_the_bound_once(fake_openai, model):
    fake_openai.raw(BOMB, times=4, headers={"Content-Encoding": "gzip"}, any_path=True)
    with pytest.raises(ModelError) as info:
        chat(backend(model, fake_openai))
    message = str(info.value)
    assert f"the reply body is larger than {LIMIT:,} bytes once decoded" in message, message
    assert "PFLOW_MAX_REPLY_BYTES" in message and not info.value.retryable
    assert posts(fake_openai) == 1  # not retried


def test_a_text_completion_bomb_fails_at_the_bound(fake_openai):
    fake_openai.raw(BOMB, times=4, headers={"Content-Encoding": "gzip"})
    b = backend("text-completion-openai/fake", fake_openai)
    with pytest.raises(ModelError, match="once decoded"):
        asyncio.run(b.complete("Once", GenParams()))
    assert posts(fake_openai) == 1


@pytest.mark.parametrize("model", ["openai/fake", "hosted_vllm/fake"])
def test_a_streamed_gzip_bomb_fails_at_the_bound(fake_openai, model):
    assert len(STREAM_BOMB) < 256 * 1024
    fake_openai.raw(STREAM_BOMB, times=4, headers=SSE)
    with pytest.raises(ModelError) as info:
        stream(backend(model, fake_openai))
    assert "larger than" in str(info.value) and not info.value.retryable, str(info.value)
    assert posts(fake_openai) == 1


def test_a_plain_body_over_the_bound_fails(fake_openai):
    body = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant",
                                                             "content": "c" * (2 * LIMIT)}}]})
    fake_openai.raw(body.encode(), times=4)
    with pytest.raises(ModelError) as info:
        chat(backend("openai/fake", fake_openai))
    assert f"larger than {LIMIT:,} bytes (the limit" in str(info.value)
    assert posts(fake_openai) == 1


def test_an_encoding_not_asked_for_is_refused(fake_openai):
    fake_openai.raw(b"\x8b\x0b\x80hello", times=4, headers={"Content-Encoding": "br"})
    with pytest.raises(ModelError) as info:
        chat(backend("openai/fake", fake_openai))
    assert "Content-Encoding 'br'" in str(info.value) and not info.value.retryable
    assert posts(fake_openai) == 1
    assert fake_openai.requests[-1]["headers"].get("Accept-Encoding") == "gzip, deflate"


@pytest.mark.parametrize("model", ["openai/fake", "hosted_vllm/fake"])
def test_replies_under_the_bound_are_whole(fake_openai, model):
    reply = {"id": "x", "object": "chat.completion", "created": 0, "model": "fake",
             "choices": [{"index": 0, "finish_reason": "stop",
                          "message": {"role": "assistant", "content": "d" * 5000}}],
             "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
    fake_openai.raw(gzipped(json.dumps(reply).encode()), headers={"Content-Encoding": "gzip"})
    assert chat(backend(model, fake_openai)) == "d" * 5000
    words = "".join(f"w{i} " for i in range(300))  # litellm stops a stream of one chunk repeated
    fake_openai.set_reply(lambda body: words)
    assert stream(backend(model, fake_openai)) == words


def test_one_client_serves_every_event_loop(fake_openai):
    b = backend("openai/fake", fake_openai)
    for _ in range(3):  # a fresh event loop each time, the same client and transport
        assert chat(b) == "hi"
    assert bounded_client()._transport.requests >= 3


def test_a_gzip_bomb_through_litellm_is_a_located_run_error(tmp_path: Path, fake_openai,
                                                           capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.pflow").write_text(
        f'model default = "openai/fake" {{ api_base: "{fake_openai.base_url}", '
        f'api_key: "{KEY}", client: "litellm" }}\n'
        'prompt s(x: str) -> str = "s {{ x }}"\n')
    fake_openai.raw(BOMB, times=4, headers={"Content-Encoding": "gzip"})
    code = cli.main(["run", "p.pflow", "s", "-i", "x=a", "--no-cache", "--trace-dir", "t"])
    _, err = capsys.readouterr()
    assert code == 1, err
    assert "p.pflow:2:" in err and "once decoded" in err, err
    assert KEY not in err and posts(fake_openai) == 1
