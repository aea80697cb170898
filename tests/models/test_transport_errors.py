"""Misbehaving OpenAI-compatible servers give the same, clear errors on both client paths
(the lean HTTP client and litellm): refused connections, 404s, missing keys, error
statuses, time-outs, bodies that are not JSON, streams cut off without a finish_reason,
streamed usage a server does not send; and keys go only where they belong."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from promptflow_dsl.models.base import GenParams, Message, ModelError
from promptflow_dsl.models.openai_http import OpenAIHTTPBackend
from promptflow_dsl.models.remote import LiteLLMBackend, sends_env_key
from promptflow_dsl.models.transport import CUT_OFF

MESSAGES = [Message("user", "hello there")]
PATHS = {"litellm": LiteLLMBackend, "http": OpenAIHTTPBackend}


async def _no_sleep(_: float) -> None:
    return None


def make(path: str, base: str, *, key: str | None = "sk-test-0123456789", **params: Any) -> Any:
    return PATHS[path]("openai/fake", {"api_base": base, **params}, api_key=key, timeout=1.0,
                       max_attempts=2, sleep=_no_sleep)


def run(backend: Any, what: str = "chat") -> Any:
    async def go() -> Any:
        try:
            if what == "stream":
                return [(e.text, e.usage, e.finish_reason)
                        async for e in backend.stream(MESSAGES, None, GenParams())]
            if what == "embed":
                return await backend.embed(["a b", "c"])
            reply = await backend.chat(MESSAGES, GenParams())
            return reply.text
        except ModelError as exc:
            return exc
        finally:
            await backend.aclose()

    return asyncio.run(go())


def both(fake: Any, script: Any, what: str = "chat", **kw: Any) -> dict[str, Any]:
    """Run the same scenario on both paths (``script(fake)`` sets it up each time)."""
    out: dict[str, Any] = {}
    base = kw.pop("base", None)
    for path in PATHS:
        fake.reset()
        script(fake)
        out[path] = (run(make(path, base or fake.base_url, **kw), what), fake.count)
    return out


def error_view(result: Any) -> tuple[Any, ...]:
    assert isinstance(result, ModelError), result
    return type(result).__name__, result.status, result.retryable, str(result)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("path", list(PATHS))
def test_refused_connection_names_the_address(path):
    base = f"http://127.0.0.1:{free_port()}/v1"
    exc = run(make(path, base))
    assert isinstance(exc, ModelError)
    assert str(exc) == (f"openai/fake: cannot connect to {base} (connection refused) "
                        f"(gave up after 2 attempts)")
    assert exc.status is None and exc.retryable


SCENARIOS = {
    "404": lambda f: f.fail(404, times=3),
    "401": lambda f: f.fail(401, times=3),
    "403": lambda f: f.fail(403, times=3),
    "429": lambda f: f.fail(429, times=3, retry_after=0),
    "500": lambda f: f.fail(500, times=3),
    "timeout": lambda f: f.hang(times=3, seconds=3),
    "garbage": lambda f: f.garbage(times=3),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_errors_are_the_same_on_both_paths(fake_openai, scenario):
    results = both(fake_openai, SCENARIOS[scenario])
    views = {p: (error_view(r), n) for p, (r, n) in results.items()}
    assert views["http"] == views["litellm"], views
    (_, status, retryable, message), count = views["http"]
    expected_status = {"timeout": None, "garbage": None}.get(scenario, int(scenario) if
                                                            scenario.isdigit() else None)
    assert status == expected_status
    assert retryable == (scenario in ("429", "500", "timeout", "garbage"))
    assert count == (2 if retryable else 1)


def test_a_404_names_the_url_and_hints_at_v1(fake_openai):
    base = fake_openai.base_url.removesuffix("/v1")
    results = both(fake_openai, lambda f: f.fail(404, times=3), base=base)
    for exc, _ in results.values():
        assert f"the URL tried: {base}/chat/completions" in str(exc)
        assert "is '/v1' missing at the end of api_base?" in str(exc)


@pytest.mark.parametrize("path", list(PATHS))
def test_missing_credentials_fail_at_once_with_how_to_give_a_key(fake_openai, monkeypatch, path):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-secret-0123456789")
    fake_openai.require_key("sk-right-key-0123456789")
    exc = run(make(path, fake_openai.base_url, key=None))
    assert isinstance(exc, ModelError) and exc.status == 401 and not exc.retryable
    text = str(exc)
    assert text.startswith("openai/fake: HTTP 401 authentication failed: missing credentials")
    assert f"the server at {fake_openai.base_url} wants an API key" in text
    assert "no API key was sent" in text
    assert '`api_key_env: "NAME"`' in text and "(not retried; 1 attempt)" in text
    assert fake_openai.count == 1
    # the environment's OpenAI key never went to this server
    sent = [r["headers"].get("authorization") for r in fake_openai.requests if r["method"] == "POST"]
    assert all("sk-env-secret" not in str(h) for h in sent), sent


@pytest.mark.parametrize("path", list(PATHS))
def test_a_declared_key_reaches_the_server(fake_openai, path):
    fake_openai.require_key("sk-right-key-0123456789")
    assert run(make(path, fake_openai.base_url, key="sk-right-key-0123456789")) == "hello there"
    fake_openai.reset()
    fake_openai.require_key("sk-right-key-0123456789")
    backend = PATHS[path]("openai/fake", {"api_base": fake_openai.base_url,
                                          "api_key": "sk-right-key-0123456789"}, timeout=1.0)
    assert run(backend) == "hello there"


def test_which_calls_may_carry_the_environment_key():
    assert sends_env_key("openai/gpt-4o-mini", None)
    assert sends_env_key("openai/gpt-4o-mini", "https://api.openai.com/v1")
    assert not sends_env_key("openai/gpt-4o-mini", "http://127.0.0.1:8000/v1")
    assert not sends_env_key("text-completion-openai/x", "https://llm.example.com/v1")
    assert sends_env_key("anthropic/claude-3-5-haiku", "https://proxy.example.com")


@pytest.mark.parametrize("done", [True, False], ids=["with-DONE", "at-EOF"])
def test_a_stream_without_finish_reason_is_an_error_on_both_paths(fake_openai, done):
    results = both(fake_openai, lambda f: f.no_finish(times=3, done=done), "stream")
    views = {p: (error_view(r), n) for p, (r, n) in results.items()}
    assert views["http"] == views["litellm"], views
    (_, status, retryable, message), count = views["http"]
    assert status is None and retryable
    assert message == (f"openai/fake: {CUT_OFF} (11 characters of the reply were already "
                       f"delivered)")


def test_an_empty_stream_cut_off_is_retried(fake_openai):
    # nothing was delivered: retried like a broken connection, then a whole reply
    for path in PATHS:
        fake_openai.reset()
        fake_openai.set_replies(["", "fine"])
        fake_openai.no_finish(times=1)
        events = run(make(path, fake_openai.base_url), "stream")
        assert "".join(t for t, _, _ in events) == "fine", path
        assert events[-1][2] == "stop"
        assert fake_openai.count == 2


def test_an_empty_stream_cut_off_every_time_gives_up(fake_openai):
    results = both(fake_openai, lambda f: (f.set_replies(["", "", ""]), f.no_finish(times=3)),
                   "stream")
    for exc, count in results.values():
        assert str(exc) == f"openai/fake: {CUT_OFF} (gave up after 2 attempts)"
        assert count == 2


def test_streamed_usage_the_server_does_not_send_is_unknown(fake_openai):
    def script(f: Any) -> None:
        f.stream_usage = False

    results = both(fake_openai, script, "stream")
    for events, _ in results.values():
        assert "".join(t for t, _, _ in events) == "hello there"
        assert events[-1][1] is None and events[-1][2] == "stop"
    results = both(fake_openai, lambda f: None, "stream")
    for events, _ in results.values():
        usage = events[-1][1]
        assert (usage.prompt_tokens, usage.completion_tokens) == (2, 2)


def test_one_vector_per_token_is_a_clear_error(fake_openai):
    def script(f: Any) -> None:
        f.token_embeddings = True

    results = both(fake_openai, script, "embed", embeddings=True)
    views = {p: error_view(r) for p, (r, _) in results.items()}
    assert views["http"] == views["litellm"]
    message = views["http"][3]
    assert "one vector per token (2 vectors of 8 numbers) for text 1" in message
    assert "pooling" in message
