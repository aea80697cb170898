"""The fake OpenAI server itself, over plain HTTP (standard library clients)."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from fakeserver import FakeOpenAI, fake_embedding, fake_tokens


def post(fake, path, body, timeout=5.0):
    req = urllib.request.Request(fake.base_url + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status, dict(resp.headers), resp.read()


def chat_body(text="hello there", **kw):
    return {"model": "fake", "messages": [{"role": "system", "content": "be brief"},
                                          {"role": "user", "content": text}], **kw}


def sse_events(raw: bytes) -> list:
    out = []
    for line in raw.decode().splitlines():
        if line.startswith("data: "):
            payload = line[len("data: "):]
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def test_binds_loopback_only(fake_openai):
    assert fake_openai.base_url.startswith("http://127.0.0.1:")
    assert fake_openai._server.server_address[0] == "127.0.0.1"


def test_chat_echo_and_usage(fake_openai):
    status, headers, raw = post(fake_openai, "/chat/completions", chat_body("hello there"))
    body = json.loads(raw)
    assert status == 200
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "hello there"}
    assert body["usage"] == {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}
    assert fake_openai.count == 1
    assert fake_openai.requests[0]["body"]["messages"][1]["content"] == "hello there"


def test_replies_queue_then_function(fake_openai):
    fake_openai.set_replies(["first", lambda body: body["model"] + "!"])
    fake_openai.set_reply(lambda body: "fallback")
    texts = [json.loads(post(fake_openai, "/chat/completions", chat_body())[2])["choices"][0]
             ["message"]["content"] for _ in range(3)]
    assert texts == ["first", "fake!", "fallback"]


def test_response_format_is_recorded(fake_openai):
    rf = {"type": "json_schema", "json_schema": {"name": "v", "schema": {"type": "object"}}}
    fake_openai.set_replies(['{"a": 1}'])
    _, _, raw = post(fake_openai, "/chat/completions", chat_body(response_format=rf))
    assert json.loads(raw)["choices"][0]["message"]["content"] == '{"a": 1}'
    assert fake_openai.bodies[0]["response_format"] == rf


def test_stream_with_usage(fake_openai):
    fake_openai.set_replies(["one two three"])
    _, headers, raw = post(fake_openai, "/chat/completions",
                           chat_body(stream=True, stream_options={"include_usage": True}))
    assert headers["Content-Type"] == "text/event-stream"
    events = sse_events(raw)
    assert events[-1] == "[DONE]"
    chunks = [e for e in events[:-1] if e["choices"]]
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks) == "one two three"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert events[-2]["choices"] == [] and events[-2]["usage"]["completion_tokens"] == 3


def test_stream_without_usage(fake_openai):
    _, _, raw = post(fake_openai, "/chat/completions", chat_body("a b", stream=True))
    events = sse_events(raw)
    assert all("usage" not in e for e in events[:-1])


def test_truncated_stream_is_an_incomplete_body(fake_openai):
    fake_openai.set_replies(["one two three four"])
    fake_openai.truncate(1, after_chunks=2)
    with pytest.raises(http.client.IncompleteRead):
        post(fake_openai, "/chat/completions", chat_body(stream=True))


def test_completion_logprobs_echo(fake_openai):
    prefix, cont = "The cat sat", " on the mat"
    _, _, raw = post(fake_openai, "/completions",
                     {"model": "fake", "prompt": prefix + cont, "echo": True, "logprobs": 0,
                      "max_tokens": 0})
    choice = json.loads(raw)["choices"][0]
    lp = choice["logprobs"]
    assert choice["text"] == prefix + cont
    assert "".join(lp["tokens"]) == prefix + cont
    assert lp["token_logprobs"][0] is None
    assert all(v < 0 for v in lp["token_logprobs"][1:])
    assert lp["text_offset"][lp["tokens"].index(" on")] == len(prefix)
    assert fake_tokens(" on the mat") == [" on", " the", " mat"]


def test_completion_reply_and_logprobs_without_echo(fake_openai):
    fake_openai.set_replies([" world"])
    _, _, raw = post(fake_openai, "/completions", {"model": "fake", "prompt": "hello", "logprobs": 1})
    choice = json.loads(raw)["choices"][0]
    assert choice["text"] == " world"
    assert choice["logprobs"]["tokens"] == [" world"]


def test_embeddings_deterministic(fake_openai):
    _, _, raw = post(fake_openai, "/embeddings", {"model": "fake", "input": ["a", "b", "a"]})
    data = [d["embedding"] for d in json.loads(raw)["data"]]
    assert data[0] == data[2] != data[1]
    assert data[0] == fake_embedding("a")
    assert abs(sum(v * v for v in data[0]) - 1.0) < 1e-9


def test_models(fake_openai):
    with urllib.request.urlopen(fake_openai.base_url + "/models", timeout=5) as resp:
        assert json.loads(resp.read())["data"][0]["id"] == "fake"


def test_faults_in_order(fake_openai):
    fake_openai.fail(429, 1, retry_after=2)
    fake_openai.fail(500, 1)
    fake_openai.garbage(1)
    with pytest.raises(urllib.error.HTTPError) as e1:
        post(fake_openai, "/chat/completions", chat_body())
    assert e1.value.code == 429 and e1.value.headers["Retry-After"] == "2"
    with pytest.raises(urllib.error.HTTPError) as e2:
        post(fake_openai, "/chat/completions", chat_body())
    assert e2.value.code == 500
    status, _, raw = post(fake_openai, "/chat/completions", chat_body())
    assert status == 200
    with pytest.raises(ValueError):
        json.loads(raw)
    assert post(fake_openai, "/chat/completions", chat_body())[0] == 200
    assert fake_openai.count == 4


def test_hang_times_out_client(fake_openai):
    fake_openai.hang(1)
    t0 = time.monotonic()
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        post(fake_openai, "/chat/completions", chat_body(), timeout=0.3)
    assert time.monotonic() - t0 < 2
    assert post(fake_openai, "/chat/completions", chat_body())[0] == 200


def test_concurrency_tracked(fake_openai):
    fake_openai.set_latency(0.3)
    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(lambda i: post(fake_openai, "/chat/completions",
                                               chat_body(f"n{i}"))[0], range(32)))
    assert results == [200] * 32
    assert fake_openai.max_in_flight == 32
    assert fake_openai.in_flight == 0


def test_reset(fake_openai):
    fake_openai.fail(500, 3)
    fake_openai.set_latency(5)
    fake_openai.reset()
    assert post(fake_openai, "/chat/completions", chat_body())[0] == 200
    assert fake_openai.count == 1


def test_stop_is_clean_even_while_hanging():
    before = set(threading.enumerate())
    server = FakeOpenAI().start()
    server.hang(1, seconds=60)

    def client():
        try:
            post(server, "/chat/completions", chat_body(), timeout=10)
        except Exception:  # noqa: BLE001 - the server goes away
            pass

    t = threading.Thread(target=client)
    t.start()
    deadline = time.monotonic() + 5
    while server.in_flight == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    t0 = time.monotonic()
    server.stop()
    t.join(5)
    assert time.monotonic() - t0 < 3
    assert not t.is_alive()
    assert set(threading.enumerate()) - before == set()  # no handler or server thread left
