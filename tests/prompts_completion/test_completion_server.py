"""Completion prompts against the loopback fake OpenAI server (both clients: the lean
HTTP client and litellm): the text goes to ``/v1/completions`` as ``prompt``, with the
stop strings; a "context length exceeded" 400 is a located run error naming the
handler, the prompt's tokens and the window, on every path (completion, chat, hooks)."""

from __future__ import annotations

import json
from typing import Any

import pytest

import promptflow_dsl as pf
from promptflow_dsl.runtime import RunConfig, RunFailed
from promptflow_dsl.runtime.cache import CacheMode

CLIENTS = ["http", "litellm"]

OPENAI_OVERFLOW = {"error": {
    "message": "This model's maximum context length is 4096 tokens. However, you requested "
               "4300 tokens (4044 in the messages, 256 in the completion). Please reduce the "
               "length of the messages or completion.",
    "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}
LLAMA_CPP_OVERFLOW = {"error": {
    "code": 400, "message": "the request exceeds the available context size, try increasing it",
    "type": "exceed_context_size_error", "n_prompt_tokens": 5000, "n_ctx": 4096}}


def program(base: str, client: str) -> pf.Program:
    return pf.loads(f'''
model default = "openai/fake" {{ api_base: "{base}", completion: true, client: "{client}", num_retries: 0 }}

hook stop_at_x {{
  when r"x"
  run echo_back(text=text)
  action stop
}}

prompt echo_back(text: str) -> str = "{{{{ text }}}}"

prompt answer(question: str) -> str {{
  completion "Q: {{{{ question }}}}\\nA:"
  stop ["\\n", "Q:"]
  params {{ max_tokens: 16 }}
}}

prompt numbers(question: str) -> list[int] {{
  completion "Q: {{{{ question }}}}\\nA:"
  stop "\\n"
}}

prompt chat(question: str) -> str {{
  user "{{{{ question }}}}"
}}

prompt hooked(question: str) -> str {{
  user "{{{{ question }}}}"
  hooks [stop_at_x]
}}
''', name="server.pflow")


def config() -> RunConfig:
    return RunConfig(cache=CacheMode.OFF, write_trace=False, max_attempts=1)


@pytest.mark.parametrize("client", CLIENTS)
def test_completion_goes_to_v1_completions(fake_openai: Any, client: str) -> None:
    fake_openai.set_replies([" Paris\n", " [1, 2, 3]"])
    p = program(fake_openai.base_url, client)
    assert p.run("answer", config=config(), question="Capital of France?").value == "Paris"
    assert p.run("numbers", config=config(), question="three").value == [1, 2, 3]
    first, second = fake_openai.requests
    assert first["path"].endswith("/v1/completions") and second["path"].endswith("/v1/completions")
    assert first["body"]["prompt"] == "Q: Capital of France?\nA:"
    assert first["body"]["stop"] == ["\n", "Q:"] and first["body"]["max_tokens"] == 16
    assert "messages" not in first["body"] and "response_format" not in second["body"]


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("body", [OPENAI_OVERFLOW, LLAMA_CPP_OVERFLOW], ids=["openai", "llama.cpp"])
@pytest.mark.parametrize("handler", ["answer", "chat", "hooked"])
def test_context_overflow_is_a_located_run_error(fake_openai: Any, client: str, body: Any,
                                                 handler: str) -> None:
    fake_openai.raw(json.dumps(body).encode(), status=400)
    p = program(fake_openai.base_url, client)
    with pytest.raises(RunFailed) as info:
        p.run(handler, config=config(), question="a long question")
    message = info.value.message
    assert message.startswith(f"model 'openai/fake' failed for prompt '{handler}': the prompt "), \
        message
    if body is OPENAI_OVERFLOW:
        assert "the prompt (4,044 tokens) and max_tokens (256) do not fit the context window " \
               "of 4,096 tokens" in message
    else:
        assert "the prompt (5,000 tokens) does not fit the context window of 4,096 tokens" \
            in message
    assert "the server said:" in message
    assert info.value.span is not None and info.value.span.file == "server.pflow"
    assert info.value.handler == handler
    assert len(fake_openai.requests) == 1  # not retried: a longer wait cannot make it fit
