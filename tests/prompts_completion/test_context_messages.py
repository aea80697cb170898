"""``models/context.py``: a server's "context length exceeded" answer is recognised and
restated with its numbers; any other error is left as it is."""

from __future__ import annotations

from promptflow_dsl.models.base import ModelError
from promptflow_dsl.models.context import ContextOverflow, describe, from_server


def test_vllm_wording_with_the_prompt_alone_too_long() -> None:
    exc = ModelError("m", "HTTP 400 client error: This model's maximum context length is 2048 "
                          "tokens. However, you requested 3000 tokens (2744 in the messages, "
                          "256 in the completion). (not retried; 1 attempt)", status=400)
    out = from_server(exc)
    assert isinstance(out, ContextOverflow) and not out.retryable and out.status == 400
    assert (out.prompt_tokens, out.window) == (2744, 2048)
    assert str(out).startswith("m: the prompt (2,744 tokens) does not fit the context window "
                               "of 2,048 tokens (the server said: HTTP 400 client error: ")


def test_llama_cpp_fields_and_unknown_numbers() -> None:
    exc = ModelError("m", "HTTP 400 client error: the request exceeds the available context "
                          "size, try increasing it (n_prompt_tokens=900 n_ctx=512)", status=400)
    assert (from_server(exc).prompt_tokens, from_server(exc).window) == (900, 512)  # type: ignore[attr-defined]
    bare = ModelError("m", "HTTP 400 client error: prompt is too long", status=400)
    assert "the prompt does not fit the model's context window" in str(from_server(bare))


def test_other_errors_are_left_alone() -> None:
    for exc in (ModelError("m", "HTTP 400 client error: temperature must be <= 2", status=400),
                ModelError("m", "HTTP 500 server error: context length exceeded", status=500,
                           retryable=True),
                ModelError("m", "connection failed: context window", status=None)):
        assert from_server(exc) is exc


def test_describe() -> None:
    assert describe(100, 160, 200) == ("the prompt (100 tokens) and max_tokens (200) do not fit "
                                       "the context window of 160 tokens")
    assert describe(300, 160, 200) == "the prompt (300 tokens) does not fit the context window " \
                                      "of 160 tokens"
    assert describe(None, None) == "the prompt does not fit the model's context window"
