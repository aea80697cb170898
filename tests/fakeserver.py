"""An OpenAI-compatible fake HTTP server for tests (standard library only).

``FakeOpenAI`` runs a ``ThreadingHTTPServer`` on ``127.0.0.1`` (port 0, so the OS
picks a free port) in a background thread and answers:

==========================  ==========================================================
``POST /v1/chat/completions``  a chat reply; ``"stream": true`` gives SSE ``data:``
                               chunks (chunked transfer encoding) ending with
                               ``data: [DONE]``; the last chunk before it carries
                               ``usage`` when ``stream_options.include_usage``;
                               ``"logprobs": true`` adds fake per-token log-probs
``POST /v1/completions``       a text completion; ``logprobs`` (and ``echo``) give
                               ``choices[0].logprobs`` with ``tokens``,
                               ``token_logprobs``, ``text_offset``, ``top_logprobs``
                               for the (echoed prompt +) completion; ``stream`` too
``POST /v1/embeddings``        deterministic unit vectors from a hash of each text
``GET /v1/models``             the one model ``fake``
==========================  ==========================================================

Behaviour is scripted per instance:

- replies: ``set_replies([...])`` queues replies (a ``str``, or a callable
  ``body -> str``), consumed one per chat / completion request; when the queue is
  empty the reply function decides (``set_reply(fn)``; default: echo the last user
  message for chat, ``" ok"`` for a completion);
- latency: ``set_latency(seconds, chunk_delay=0.0)`` — a sleep before each answer
  (and between stream chunks);
- faults, consumed in order, one per POST request: ``fail(status, times,
  retry_after=None)``, ``hang(times, seconds=60)`` (no answer until ``seconds``
  pass or the server stops), ``garbage(times)`` (200 with a non-JSON body),
  ``truncate(times, after_chunks=1)`` (a stream — or a body — cut off mid-way),
  ``no_finish(times, done=True)`` (a stream that ends properly — with ``[DONE]``,
  or without it when ``done`` is false — but never sends a ``finish_reason``);
- server habits (kept until ``reset``): ``stream_usage = False`` ignores
  ``stream_options.include_usage`` (no usage chunk, as some servers do);
  ``require_key(key)`` answers 401 ``missing credentials`` to a POST whose
  ``Authorization`` is not ``Bearer key``;
  hostile answers, consumed like faults: ``raw(body, times, status=200, headers=None,
  any_path=False)`` (exactly these bytes as the body, e.g. a malformed reply or a gzip
  bomb with ``Content-Encoding``; with ``any_path`` on any POST path), ``echo_key(times)`` (401 ``Incorrect API key provided: KEY``,
  the key the request carried, as some servers answer); ``token_embeddings = True`` answers one
  vector per token (a list of lists) for each input, as a server without pooling does;

It records every request (``.requests``: dicts with ``method``, ``path``, ``body``
and ``headers``, looked up case-insensitively), counts them (``.count``), tracks the most requests in flight at
once (``.max_in_flight``) and the streams whose client went away early
(``.aborted``). Tokens are whitespace-led words (``"Hello"``, ``" world"``), token
counts are word counts, and log-probs are a deterministic function of the token.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = str | Callable[[dict[str, Any]], str]

_TOKEN = re.compile(r"\s*\S+|\s+")


class Headers(dict[str, str]):
    """Request headers as received, looked up case-insensitively (HTTP header names
    are case-insensitive: clients differ in how they spell them)."""

    def __init__(self, items: Any = ()) -> None:
        super().__init__((str(k).lower(), v) for k, v in items)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)


def fake_tokens(text: str) -> list[str]:
    """The fake tokenizer: words with their leading whitespace."""
    return _TOKEN.findall(text)


def fake_logprob(token: str) -> float:
    """A deterministic log-probability in [-2.0, -0.01] for a token."""
    return -round(0.01 + (zlib.crc32(token.encode("utf-8")) % 200) / 100.0, 4)


def fake_embedding(text: str, dims: int = 8) -> list[float]:
    """A deterministic unit vector derived from the SHA-256 of the text."""
    raw: list[float] = []
    counter = 0
    while len(raw) < dims:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        raw.extend((b - 127.5) / 127.5 for b in digest)
        counter += 1
    vec = raw[:dims]
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


def _words(text: str) -> int:
    return len(text.split())


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def echo_reply(body: dict[str, Any]) -> str:
    """The default reply: the last user message of a chat, ``" ok"`` for a completion."""
    messages = body.get("messages")
    if isinstance(messages, list):
        for m in reversed(messages):
            if isinstance(m, dict) and m.get("role") == "user":
                return _content_text(m.get("content"))
        return ""
    return " ok"


@dataclass
class _Fault:
    kind: str  # status | hang | garbage | truncate | no_finish | raw | echo_key
    status: int = 500
    body: bytes = b""
    headers: dict[str, str] | None = None
    retry_after: float | str | None = None
    seconds: float = 60.0
    after_chunks: int = 1
    done: bool = True
    any_path: bool = False


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # handler threads are joined on server_close()
    block_on_close = True
    request_queue_size = 256  # bursts of concurrent connections are not dropped
    allow_reuse_address = True

    fake: FakeOpenAI


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 30  # an idle client cannot hold a handler thread for ever

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    # -- plumbing ------------------------------------------------------------

    def _send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self._leave_once()  # the client cannot have the answer before this point
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()
        self.close_connection = True

    def _send_error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        kind = {429: "rate_limit_error", 401: "authentication_error",
                404: "not_found_error"}.get(status, "server_error" if status >= 500 else "invalid_request_error")
        self._send_json(status, {"error": {"message": message, "type": kind, "code": status}}, headers)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    # -- entry points ----------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802
        fake = self.server.fake
        fake._enter("GET", self.path, None, Headers(self.headers.items()))
        self._counted = True
        try:
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                self._send_json(200, {"object": "list", "data": [
                    {"id": "fake", "object": "model", "created": 0, "owned_by": "fakeserver"}]})
            else:
                self._send_error(404, f"no such path: {self.path}")
        finally:
            self._leave_once()

    def do_POST(self) -> None:  # noqa: N802
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"_unparsed": raw.decode("utf-8", "replace")}
        fault = fake._enter("POST", self.path, body, Headers(self.headers.items()))
        self._counted = True
        try:
            self._post(fake, body, fault)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError):
            with fake._lock:
                fake.aborted += 1
            self.close_connection = True
        finally:
            self._leave_once()

    def _leave_once(self) -> None:
        """The request stops counting as in flight: just before the last bytes of its
        answer are written (so a client that got its answer and sends the next request
        never sees both counted), or when the handler ends."""
        if getattr(self, "_counted", False):
            self._counted = False
            self.server.fake._leave()

    def _post(self, fake: FakeOpenAI, body: dict[str, Any], fault: _Fault | None) -> None:
        path = self.path.split("?")[0].rstrip("/")
        if path.startswith("/v1"):
            path = path[3:]
        if fault is not None and fault.kind == "raw" and fault.any_path:
            self._send_raw(fault)
            return
        if path not in ("/chat/completions", "/completions", "/embeddings"):
            self._send_error(404, f"no such path: {self.path}")
            return
        if fake.api_key is not None and \
                self.headers.get("Authorization") != f"Bearer {fake.api_key}":
            self._send_error(401, "missing credentials: no valid API key was given")
            return
        if fault is not None and fault.kind == "hang":
            fake._stop.wait(fault.seconds)
            self.close_connection = True
            return
        if fake.latency > 0 and fake._stop.wait(fake.latency):
            return  # server stopping
        if fault is not None:
            if fault.kind == "status":
                headers = {}
                if fault.retry_after is not None:
                    headers["Retry-After"] = str(fault.retry_after)
                self._send_error(fault.status, f"injected fault: HTTP {fault.status}", headers)
                return
            if fault.kind == "raw":
                self._send_raw(fault)
                return
            if fault.kind == "echo_key":
                key = str(self.headers.get("Authorization") or "").removeprefix("Bearer ")
                self._send_error(401, f"Incorrect API key provided: {key}. You can find "
                                      f"your API key at https://example.invalid/keys.")
                return
            if fault.kind == "garbage":
                data = b"<html>this is not JSON {{{"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)
                self.close_connection = True
                return
        if path == "/embeddings":
            self._embeddings(body)
            return
        chat = path == "/chat/completions"
        # max_tokens 0 (scoring an echoed prompt) generates nothing and takes no reply
        text = "" if not chat and body.get("max_tokens") == 0 else fake._next_reply(body)
        truncate = fault.after_chunks if fault is not None and fault.kind == "truncate" else None
        no_finish = fault is not None and fault.kind == "no_finish"
        if body.get("stream"):
            self._stream(fake, body, text, chat, truncate,
                         finish=None if no_finish else "stop",
                         done=not no_finish or (fault is not None and fault.done))
        elif truncate is not None:
            data = json.dumps(self._completion_obj(body, text, chat)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
        else:
            self._send_json(200, self._completion_obj(body, text, chat))

    def _send_raw(self, fault: _Fault) -> None:
        extra = fault.headers or {}
        self.send_response(fault.status)
        if not any(k.lower() == "content-type" for k in extra):
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(fault.body)))
        self.send_header("Connection", "close")
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(fault.body)
        self.close_connection = True

    # -- bodies ----------------------------------------------------------------

    @staticmethod
    def _prompt_text(body: dict[str, Any], chat: bool) -> str:
        if chat:
            return "\n".join(_content_text(m.get("content")) for m in body.get("messages") or []
                             if isinstance(m, dict))
        prompt = body.get("prompt", "")
        if isinstance(prompt, list):
            prompt = prompt[0] if prompt and isinstance(prompt[0], str) else ""
        return str(prompt)

    def _usage(self, body: dict[str, Any], text: str, chat: bool) -> dict[str, int]:
        p = _words(self._prompt_text(body, chat))
        c = _words(text)
        return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}

    def _completion_obj(self, body: dict[str, Any], text: str, chat: bool) -> dict[str, Any]:
        model = body.get("model", "fake")
        created = int(time.time())
        usage = self._usage(body, text, chat)
        if chat:
            choice: dict[str, Any] = {"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": text}}
            if body.get("logprobs"):
                choice["logprobs"] = {"content": [
                    {"token": t, "logprob": fake_logprob(t), "bytes": list(t.encode()),
                     "top_logprobs": []} for t in fake_tokens(text)]}
            else:
                choice["logprobs"] = None
            return {"id": "chatcmpl-fake", "object": "chat.completion", "created": created,
                    "model": model, "choices": [choice], "usage": usage}
        prompt = self._prompt_text(body, chat)
        echo = bool(body.get("echo"))
        full = (prompt + text) if echo else text
        choice = {"index": 0, "text": full,
                  "finish_reason": "length" if body.get("max_tokens") == 0 else "stop"}
        if body.get("logprobs") is not None and body.get("logprobs") is not False:
            choice["logprobs"] = self._text_logprobs(prompt, text, echo, body.get("logprobs"))
        else:
            choice["logprobs"] = None
        return {"id": "cmpl-fake", "object": "text_completion", "created": created,
                "model": model, "choices": [choice], "usage": usage}

    @staticmethod
    def _text_logprobs(prompt: str, text: str, echo: bool, n: Any) -> dict[str, Any]:
        tokens: list[str] = []
        logprobs: list[float | None] = []
        offsets: list[int] = []
        top: list[dict[str, float] | None] = []
        k = n if isinstance(n, int) and not isinstance(n, bool) else 1
        pos = 0
        if echo:
            for i, t in enumerate(fake_tokens(prompt)):
                tokens.append(t)
                offsets.append(pos)
                pos += len(t)
                first = i == 0  # like OpenAI: the first echoed token has no log-prob
                logprobs.append(None if first else fake_logprob(t))
                top.append(None if first else ({t: fake_logprob(t)} if k > 0 else {}))
        else:
            pos = len(prompt)
        for t in fake_tokens(text):
            tokens.append(t)
            offsets.append(pos)
            pos += len(t)
            logprobs.append(fake_logprob(t))
            top.append({t: fake_logprob(t)} if k > 0 else {})
        return {"tokens": tokens, "token_logprobs": logprobs, "text_offset": offsets,
                "top_logprobs": top}

    def _stream(self, fake: FakeOpenAI, body: dict[str, Any], text: str, chat: bool,
                truncate: int | None, finish: str | None = "stop", done: bool = True) -> None:
        model = body.get("model", "fake")
        created = int(time.time())
        pieces = fake_tokens(text) or [""]
        include_usage = fake.stream_usage and bool((body.get("stream_options") or {}).get("include_usage"))
        events: list[dict[str, Any]] = []
        for i, piece in enumerate(pieces):
            if chat:
                delta: dict[str, Any] = {"content": piece}
                if i == 0:
                    delta["role"] = "assistant"
                choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": None}
                obj = "chat.completion.chunk"
            else:
                choice = {"index": 0, "text": piece, "finish_reason": None, "logprobs": None}
                obj = "text_completion"
            events.append({"id": "chatcmpl-fake" if chat else "cmpl-fake", "object": obj,
                           "created": created, "model": model, "choices": [choice]})
        last = dict(events[-1])
        last["choices"] = [dict(last["choices"][0], finish_reason=finish)]
        if chat:
            last["choices"][0]["delta"] = dict(last["choices"][0]["delta"])
        events[-1] = last
        if include_usage:
            events.append({"id": "chatcmpl-fake" if chat else "cmpl-fake",
                           "object": "chat.completion.chunk" if chat else "text_completion",
                           "created": created, "model": model, "choices": [],
                           "usage": self._usage(body, text, chat)})
        self._start_stream()
        for i, ev in enumerate(events):
            if truncate is not None and i >= truncate:
                # drop the connection without the terminating chunk: an incomplete body
                self.wfile.flush()
                self.close_connection = True
                return
            self._chunk(f"data: {json.dumps(ev)}\n\n".encode())
            if fake.chunk_delay > 0 and fake._stop.wait(fake.chunk_delay):
                return
        self._leave_once()
        if done:
            self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")  # the terminating zero-length chunk

    def _embeddings(self, body: dict[str, Any]) -> None:
        inp = body.get("input", [])
        texts = [inp] if isinstance(inp, str) else [str(t) for t in inp]
        dims = body.get("dimensions") or 8
        if self.server.fake.token_embeddings:  # no pooling: one vector per token
            data = [{"object": "embedding", "index": i,
                     "embedding": [fake_embedding(w, int(dims)) for w in fake_tokens(t) or [""]]}
                    for i, t in enumerate(texts)]
        else:
            data = [{"object": "embedding", "index": i, "embedding": fake_embedding(t, int(dims))}
                    for i, t in enumerate(texts)]
        n = sum(_words(t) for t in texts)
        self._send_json(200, {"object": "list", "data": data, "model": body.get("model", "fake"),
                              "usage": {"prompt_tokens": n, "total_tokens": n}})


class FakeOpenAI:
    """A scripted OpenAI-compatible server; use as a context manager or call start/stop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.reset()

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> FakeOpenAI:
        if self._server is not None:
            return self
        self._stop.clear()
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stop.set()  # wakes hanging and sleeping handlers
        server.shutdown()
        server.server_close()  # joins the handler threads
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "the fake server is not running"
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- scripting -------------------------------------------------------------

    def reset(self) -> None:
        """Forget requests, counters, queued replies and faults; back to echo, no latency."""
        with self._lock:
            self.requests: list[dict[str, Any]] = []
            self.count = 0
            self.in_flight = 0
            self.max_in_flight = 0
            self.aborted = 0
            self.latency = 0.0
            self.chunk_delay = 0.0
            self._replies: deque[Reply] = deque()
            self._faults: deque[_Fault] = deque()
            self._reply_fn: Callable[[dict[str, Any]], str] = echo_reply
            self.stream_usage = True  # False: ignore stream_options.include_usage
            self.api_key: str | None = None  # set: a POST without it gets 401
            self.token_embeddings = False  # True: one vector per token for each input

    def set_replies(self, replies: list[Reply]) -> None:
        """Queue replies (strings or ``body -> str`` callables), one per chat/completion."""
        with self._lock:
            self._replies = deque(replies)

    def set_reply(self, fn: Callable[[dict[str, Any]], str]) -> None:
        """The reply function used when the queue is empty."""
        with self._lock:
            self._reply_fn = fn

    def set_latency(self, seconds: float, chunk_delay: float = 0.0) -> None:
        with self._lock:
            self.latency = float(seconds)
            self.chunk_delay = float(chunk_delay)

    def fail(self, status: int, times: int = 1, retry_after: float | str | None = None) -> None:
        """The next ``times`` POST requests answer ``status`` (with ``Retry-After`` if given)."""
        with self._lock:
            self._faults.extend(_Fault("status", status=status, retry_after=retry_after)
                                for _ in range(times))

    def hang(self, times: int = 1, seconds: float = 60.0) -> None:
        """The next ``times`` POST requests get no answer for ``seconds`` (or until stop)."""
        with self._lock:
            self._faults.extend(_Fault("hang", seconds=seconds) for _ in range(times))

    def garbage(self, times: int = 1) -> None:
        """The next ``times`` POST requests get a 200 whose body is not JSON."""
        with self._lock:
            self._faults.extend(_Fault("garbage") for _ in range(times))

    def raw(self, body: bytes, times: int = 1, status: int = 200,
            headers: dict[str, str] | None = None, any_path: bool = False) -> None:
        """The next ``times`` POST requests get exactly ``body`` (with ``status`` and any
        extra ``headers``, e.g. ``Content-Encoding: gzip``; a ``Content-Type`` there replaces
        ``application/json``); with ``any_path``, whatever path they were sent to (another
        provider's API, e.g. ``/v1/messages``)."""
        with self._lock:
            self._faults.extend(_Fault("raw", status=status, body=body, headers=headers,
                                       any_path=any_path)
                                for _ in range(times))

    def echo_key(self, times: int = 1) -> None:
        """The next ``times`` POST requests get 401 ``Incorrect API key provided: KEY``,
        KEY the bearer token the request carried."""
        with self._lock:
            self._faults.extend(_Fault("echo_key") for _ in range(times))

    def truncate(self, times: int = 1, after_chunks: int = 1) -> None:
        """The next ``times`` streams stop after ``after_chunks`` events without ending
        properly (a non-streamed reply is cut in the middle of its body)."""
        with self._lock:
            self._faults.extend(_Fault("truncate", after_chunks=after_chunks) for _ in range(times))

    def no_finish(self, times: int = 1, done: bool = True) -> None:
        """The next ``times`` streams send every chunk and end properly (``[DONE]`` unless
        ``done`` is false, then the end of the body) but never give a ``finish_reason``."""
        with self._lock:
            self._faults.extend(_Fault("no_finish", done=done) for _ in range(times))

    def require_key(self, key: str | None) -> None:
        """POST requests without ``Authorization: Bearer key`` get 401 (``None``: none needed)."""
        with self._lock:
            self.api_key = key

    @property
    def bodies(self) -> list[dict[str, Any]]:
        """The bodies of the POST requests, in order."""
        with self._lock:
            return [r["body"] for r in self.requests if r["method"] == "POST"]

    # -- used by the handler -----------------------------------------------------

    def _enter(self, method: str, path: str, body: dict[str, Any] | None,
               headers: dict[str, str]) -> _Fault | None:
        with self._lock:
            self.requests.append({"method": method, "path": path, "body": body, "headers": headers})
            self.count += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if method == "POST" and self._faults:
                return self._faults.popleft()
            return None

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _next_reply(self, body: dict[str, Any]) -> str:
        with self._lock:
            reply: Reply = self._replies.popleft() if self._replies else self._reply_fn
        return reply(body) if callable(reply) else reply
