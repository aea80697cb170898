"""A hostile server that streams without end ends in a located run error, not in memory
growth, on both clients: a streamed reply is bounded by ``PFLOW_MAX_REPLY_BYTES`` (64 MiB
by default; small here) — its bytes on the lean client, its text and chunks through
litellm — as a whole body already is (``http11``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import promptflow_dsl as pf
from promptflow_dsl.models.base import GenParams, Message, ModelError
from promptflow_dsl.models.openai_http import OpenAIHTTPBackend
from promptflow_dsl.models.remote import LiteLLMBackend
from promptflow_dsl.runtime import RunConfig, RunFailed
from promptflow_dsl.runtime.cache import CacheMode

LIMIT = 20_000
LONG = "".join(f"w{i} " for i in range(8_000))  # 46,890 characters in 8,000 chunks, none repeated

PROGRAM = '''
model default = "openai/fake" {{ api_base: "{base}", api_key: "sk-fake"{client} }}
tool noop(x: str) -> str = python "tools:noop"
hook never {{
  when r"never-seen(?=\\s)"
  run noop(x=text)
}}
prompt tell(x: str) -> str {{
  user "{{{{ x }}}}"
  hooks [never]
}}
'''

CLIENTS = {"http": "", "litellm": ', client: "litellm"'}


@pytest.fixture(autouse=True)
def _small_cap(monkeypatch):
    monkeypatch.setenv("PFLOW_MAX_REPLY_BYTES", str(LIMIT))


@pytest.mark.parametrize("client", CLIENTS)
def test_an_overlong_stream_fails_once(fake_openai, client):
    fake_openai.set_reply(lambda body: LONG)
    cls = OpenAIHTTPBackend if client == "http" else LiteLLMBackend
    b = cls("openai/fake", {"api_base": fake_openai.base_url, "api_key": "sk-fake"})

    async def go() -> int:
        got = 0
        try:
            async for ev in b.stream([Message("user", "hi")], None, GenParams()):
                got += len(ev.text)
        finally:
            await b.aclose()
        return got

    with pytest.raises(ModelError) as info:
        asyncio.run(go())
    assert f"larger than {LIMIT:,} bytes" in str(info.value)
    assert not info.value.retryable
    assert fake_openai.count == 1  # not retried


@pytest.mark.parametrize("client", CLIENTS)
def test_an_overlong_stream_is_a_located_run_error(tmp_path: Path, fake_openai, client):
    fake_openai.set_reply(lambda body: LONG)
    (tmp_path / "tools.py").write_text("def noop(x):\n    return x\n")
    (tmp_path / "p.pflow").write_text(PROGRAM.format(base=fake_openai.base_url,
                                                     client=CLIENTS[client]))
    program = pf.load(tmp_path / "p.pflow")
    config = RunConfig(cache=CacheMode.OFF, write_trace=False, trace_dir=tmp_path / "traces")
    with pytest.raises(RunFailed) as info:
        program.run("tell", config=config, x="hi")
    message = str(info.value)
    assert "p.pflow:8:8" in message and f"larger than {LIMIT:,} bytes" in message, message


@pytest.mark.parametrize("client", CLIENTS)
def test_a_stream_under_the_bound_is_whole(fake_openai, client):
    fake_openai.set_reply(lambda body: "word " * 100)
    cls = OpenAIHTTPBackend if client == "http" else LiteLLMBackend
    b = cls("openai/fake", {"api_base": fake_openai.base_url, "api_key": "sk-fake"})

    async def go() -> str:
        try:
            return "".join([ev.text async for ev in b.stream([Message("user", "hi")], None,
                                                              GenParams())])
        finally:
            await b.aclose()

    assert asyncio.run(go()) == "word " * 100
