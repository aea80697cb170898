"""A lean client for OpenAI-compatible endpoints: the fast path most calls take.

Models named ``openai/NAME`` (OpenAI itself, or any OpenAI-compatible server given
by ``api_base``: vLLM, Ollama, llama.cpp servers...) and ``text-completion-openai/NAME``
are served by :class:`OpenAIHTTPBackend`, which speaks the protocol directly over
the keep-alive connections of :mod:`.http11` (one pool per event loop), instead of
going through litellm (whose per-call work — cost-map look-ups, logging payloads,
SDK request building — costs several milliseconds of CPU per call, and whose import
costs seconds).  When the environment names a proxy for the URL (``HTTPS_PROXY``,
``HTTP_PROXY``, ``ALL_PROXY``, minus ``NO_PROXY``), requests go through an
``aiohttp`` session that honours it.

Everything above the wire is shared with :class:`~.remote.LiteLLMBackend`, which
this class extends: request building, capabilities (the static table), retries and
timeouts (:mod:`.transport`), error classification, streaming, scoring and the
emulations.  Only the four wire calls are replaced, so results, usage, errors and
retries are the same either way (a conformance test runs every fake-server
scenario through both).  Cost comes from the small price table in :mod:`.prices`.
Set the model parameter ``client: "litellm"`` (or ``PFLOW_CLIENT=litellm``) to use
litellm for these models too.
"""

from __future__ import annotations

import asyncio
import json
import os
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from . import http11
from .base import Usage, token_count
from .prices import cost_of
from .remote import LiteLLMBackend, sends_env_key, split_provider

OPENAI_BASE = "https://api.openai.com/v1"
FAST_PREFIXES = ("openai/", "text-completion-openai/")
_NOT_SENT = frozenset({"num_retries", "max_retries", "timeout", "api_base", "api_key",
                       "extra_body", "model"})

_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
# the backends that used each loop's connections; they close when the last one does
_holders: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, set[int]] = weakref.WeakKeyDictionary()


def uses_fast_path(model_id: str, params: Mapping[str, Any]) -> bool:
    """Whether ``model_id`` goes through this client (not litellm)."""
    if str(params.get("client", os.environ.get("PFLOW_CLIENT", ""))).lower() == "litellm":
        return False
    return model_id.startswith(FAST_PREFIXES)


class HTTPStatusError(Exception):
    """A non-2xx reply; ``status_code`` and ``headers`` drive retry classification."""

    def __init__(self, status: int, headers: Mapping[str, str], body: str) -> None:
        detail = body.strip()
        counts = ""
        try:
            data = json.loads(detail)
            detail = str((data.get("error") or {}).get("message") or data.get("error") or detail)
            # llama.cpp's context-size error gives its numbers as fields, not in the message
            counts = "".join(f" {k}={v}" for k in ("n_prompt_tokens", "n_ctx")
                             if isinstance(v := data["error"].get(k), int))
        except (ValueError, AttributeError, KeyError, TypeError):
            pass
        super().__init__(detail[:300] + (f" ({counts.strip()})" if counts else "")
                         or f"HTTP {status}")
        self.status_code = status
        self.headers = {str(k).lower(): v for k, v in headers.items()}


def _aiohttp_session() -> Any:
    """This loop's general client, for URLs the environment sends through a proxy."""
    import aiohttp

    loop = asyncio.get_running_loop()
    session = _sessions.get(loop)
    if session is None or session.closed:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
        session = aiohttp.ClientSession(connector=connector, trust_env=True)
        _sessions[loop] = session
    return session


async def close_session(holder: int | None = None) -> None:
    """Release this event loop's connections for ``holder`` (a backend's id); they are
    closed when no backend holds them any more, so concurrent runs on one loop keep them."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    holders = _holders.get(loop, set())
    holders.discard(holder) if holder is not None else holders.clear()
    if holders:
        return
    await http11.close_pool()
    session = _sessions.pop(loop, None)
    if session is not None and not session.closed:
        await session.close()


class _SSE:
    """The chunks of a streamed completion, as dicts; ``aclose`` releases the response."""

    def __init__(self, readline: Callable[[], Awaitable[bytes]], release: Callable[[], Any]) -> None:
        self._readline = readline
        self._release = release
        self._left = http11.max_reply_bytes()  # an endless stream ends here, not in memory

    def __aiter__(self) -> _SSE:
        return self

    async def __anext__(self) -> dict[str, Any]:
        while True:
            raw = await self._readline()
            if not raw:
                raise StopAsyncIteration
            self._left -= len(raw)
            if self._left < 0:
                raise http11.ReplyTooLarge(f"the streamed reply is larger than "
                                           f"{http11.max_reply_bytes():,} bytes")
            line = raw.decode("utf-8", errors="replace").strip()
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                raise StopAsyncIteration
            return json.loads(data)

    async def aclose(self) -> None:
        self._release()


async def _read_capped(response: Any) -> bytes:
    """An ``aiohttp`` response's body, at most ``http11.max_reply_bytes()`` (as the
    HTTP/1.1 client bounds its own). Raises ``http11.ReplyTooLarge`` past it."""
    cap = http11.max_reply_bytes()
    parts: list[bytes] = []
    size = 0
    async for part in response.content.iter_chunked(1 << 16):
        size += len(part)
        if size > cap:
            raise http11.ReplyTooLarge(f"the reply body is larger than {cap:,} bytes")
        parts.append(part)
    return b"".join(parts)


class OpenAIHTTPBackend(LiteLLMBackend):
    """An OpenAI-compatible model over plain HTTP (see the module docstring)."""

    ask_litellm = False
    placeholder_key = None  # a server given no key gets no Authorization header

    def _warm(self) -> None:
        return None  # nothing to import

    # -- the wire ------------------------------------------------------------------

    def _request(self, kw: dict[str, Any]) -> tuple[str, dict[str, str], dict[str, Any]]:
        base = str(kw.get("api_base") or self.api_base or OPENAI_BASE).rstrip("/")
        headers = {"Content-Type": "application/json"}
        # OPENAI_API_KEY goes to OpenAI only (``remote.sends_env_key``), never to another server
        key = kw.get("api_key") or (os.environ.get("OPENAI_API_KEY")
                                    if sends_env_key(self.model_id, base) else None)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        body = {k: v for k, v in kw.items() if k not in _NOT_SENT}
        body.update(kw.get("extra_body") or {})
        body["model"] = split_provider(str(kw.get("model") or self.model_id))[1]
        return base, headers, body

    async def _post(self, path: str, kw: dict[str, Any], *, stream: bool = False) -> Any:
        base, headers, body = self._request(kw)
        _holders.setdefault(asyncio.get_running_loop(), set()).add(id(self))
        url = base + path
        data = json.dumps(body).encode()
        direct = http11.proxy_for(url) is None
        if direct:
            response = await http11.pool().request("POST", url, headers, data)
            readline = response.readline
        else:  # a general client that speaks to the proxy
            response = await _aiohttp_session().post(url, data=data, headers=headers)
            readline = response.content.readline
        try:
            if response.status >= 300:
                text = await response.text(errors="replace")
                raise HTTPStatusError(response.status, response.headers, text)
            if stream:
                return _SSE(readline, response.release)
            raw = await (response.read() if direct else _read_capped(response))
        except BaseException:
            response.close()
            raise
        response.release()
        return json.loads(raw)

    async def _acompletion(self, kw: dict[str, Any]) -> Any:
        return await self._post("/chat/completions", kw, stream=bool(kw.get("stream")))

    async def _atext_completion(self, kw: dict[str, Any]) -> Any:
        return await self._post("/completions", kw)

    async def _aembedding(self, texts: list[str], kw: dict[str, Any]) -> Any:
        return await self._post("/embeddings", {**kw, "input": texts})

    async def _close_stream(self, response: Any) -> None:
        close = getattr(response, "aclose", None)
        if close is not None:
            await close()

    # -- cost ----------------------------------------------------------------------

    def _cost(self, response: Any) -> float | None:
        usage = (response or {}).get("usage") if isinstance(response, dict) else None
        if not usage:
            return None
        if not isinstance(usage, dict):
            return None
        return self._cost_of_usage(Usage(token_count(usage.get("prompt_tokens")),
                                         token_count(usage.get("completion_tokens"))))

    def _cost_of_usage(self, usage: Usage) -> float | None:
        if self.api_base:
            return None  # a self-hosted server: no list price
        return cost_of(self.model_id, usage.prompt_tokens, usage.completion_tokens)

    async def aclose(self) -> None:
        await close_session(id(self))


async def iterate(stream: AsyncIterator[Any]) -> list[Any]:  # pragma: no cover - debugging aid
    return [c async for c in stream]
