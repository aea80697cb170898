"""The lean OpenAI-compatible client and the litellm path give the same results, usage,
errors and retries for every fake-server scenario."""

from __future__ import annotations

import asyncio
import http.client
import http.server
import threading
import urllib.parse
from typing import Any

import pytest

from promptflow_dsl.models.base import GenParams, Message, ModelError
from promptflow_dsl.models.openai_http import OpenAIHTTPBackend, uses_fast_path
from promptflow_dsl.models.remote import LiteLLMBackend

MESSAGES = [Message("system", "Be brief."), Message("user", "hello there")]
SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}


async def _no_sleep(_: float) -> None:
    return None


def backends(base_url: str) -> dict[str, Any]:
    params = {"api_base": base_url, "json_schema": True}
    kw = dict(api_key="sk-test", timeout=0.5, max_attempts=3, sleep=_no_sleep)
    return {"litellm": LiteLLMBackend("openai/fake", params, **kw),
            "http": OpenAIHTTPBackend("openai/fake", params, **kw)}


async def outcome(backend: Any, scenario: str) -> dict[str, Any]:
    try:
        if scenario == "stream":
            text, usage = [], None
            async for ev in backend.stream(MESSAGES, None, GenParams()):
                text.append(ev.text)
                usage = ev.usage or usage
            return {"text": "".join(text), "usage": (usage.prompt_tokens, usage.completion_tokens)}
        params = GenParams(json_schema=SCHEMA) if scenario == "structured" else GenParams()
        r = await backend.chat(MESSAGES, params)
        return {"text": r.text, "usage": (r.usage.prompt_tokens, r.usage.completion_tokens),
                "finish": r.finish_reason, "cost": r.usage.cost}
    except ModelError as exc:
        msg = str(exc)
        return {"error": type(exc).__name__, "status": exc.status, "retryable": exc.retryable,
                "gave_up": "gave up after" in msg, "not_retried": "not retried" in msg,
                "attempts": msg.rsplit("(", 1)[-1]}


SCENARIOS = ["plain", "stream", "structured", "429", "500", "hang", "garbage", "400"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_both_paths_agree(fake_openai, scenario):
    results = {}
    counts = {}
    for name, backend in backends(fake_openai.base_url).items():
        fake_openai.reset()
        if scenario == "structured":
            fake_openai.set_replies(['{"a": 1}'])
        elif scenario == "429":
            fake_openai.fail(429, times=1, retry_after=0)
        elif scenario == "500":
            fake_openai.fail(500, times=5)
        elif scenario == "hang":
            fake_openai.hang(times=5, seconds=3)
        elif scenario == "garbage":
            fake_openai.garbage(times=5)
        elif scenario == "400":
            fake_openai.fail(400, times=1)

        async def go(b=backend):
            try:
                return await outcome(b, scenario)
            finally:
                await b.aclose()

        results[name] = asyncio.run(go())
        counts[name] = fake_openai.count
        if scenario == "structured":
            body = fake_openai.requests[-1]["body"]
            assert body["response_format"]["type"] == "json_schema"
            assert body["model"] == "fake"
    assert results["http"] == results["litellm"], results
    assert counts["http"] == counts["litellm"], counts


def test_fast_path_selection():
    assert uses_fast_path("openai/gpt-4o-mini", {})
    assert uses_fast_path("text-completion-openai/x", {})
    assert not uses_fast_path("anthropic/claude-3", {})
    assert not uses_fast_path("openai/gpt-4o-mini", {"client": "litellm"})


def test_fast_path_does_not_import_litellm(fake_openai):
    import subprocess
    import sys

    code = f"""
import asyncio, sys
from promptflow_dsl.models.openai_http import OpenAIHTTPBackend
from promptflow_dsl.models.base import Message, GenParams
b = OpenAIHTTPBackend("openai/fake", {{"api_base": "{fake_openai.base_url}"}}, api_key="k")
async def main():
    r = await b.chat([Message("user", "hi")], GenParams())
    await b.aclose()
    return r.text
print(asyncio.run(main()), "litellm" in sys.modules)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.split() == ["hi", "False"], r.stderr


class _ForwardProxy(http.server.BaseHTTPRequestHandler):
    """A plain-HTTP forward proxy: takes absolute-form requests, forwards them."""

    seen: list[str] = []

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    def do_POST(self) -> None:  # noqa: N802
        type(self).seen.append(self.path)
        target = urllib.parse.urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("host", "proxy-connection", "connection")}
        conn.request("POST", target.path, body=body, headers=headers)
        reply = conn.getresponse()
        data = reply.read()
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.getheader("Content-Type") or "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        conn.close()


def test_a_proxy_named_by_the_environment_is_used(fake_openai, monkeypatch):
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy",
                 "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ForwardProxy)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    _ForwardProxy.seen = []
    try:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
        backend = OpenAIHTTPBackend("openai/fake", {"api_base": fake_openai.base_url},
                                    api_key="sk-test", timeout=5)

        async def go() -> str:
            try:
                return (await backend.chat(MESSAGES, GenParams())).text
            finally:
                await backend.aclose()

        assert asyncio.run(go()) == "hello there"
        assert _ForwardProxy.seen == [fake_openai.base_url + "/chat/completions"]
        assert fake_openai.count == 1
    finally:
        proxy.shutdown()
        proxy.server_close()
