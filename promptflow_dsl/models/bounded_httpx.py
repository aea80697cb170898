"""An ``httpx`` transport whose replies are size-bounded, for the clients litellm uses.

litellm reads replies with ``httpx``, which inflates ``gzip`` / ``deflate`` bodies
without a bound. :class:`BoundedTransport` stands under the clients pflow gives litellm
(``remote.py``): it asks only for ``gzip`` and ``deflate``, decodes them itself, never
inflating past the room left, and hands ``httpx`` the decoded bytes. A body whose raw
bytes or decoded bytes pass :func:`~promptflow_dsl.models.http11.max_reply_bytes`
(``PFLOW_MAX_REPLY_BYTES``, 64 MiB by default) fails with
:class:`~promptflow_dsl.models.http11.ReplyTooLarge`, the error of the built-in client;
another content encoding fails with :class:`UnsupportedEncoding`. Streamed bodies are
bounded the same way, chunk by chunk.

One transport serves every event loop: it keeps a connection pool (an
``httpx.AsyncHTTPTransport``) per running loop and per proxy, so the one client built
on it may be shared by code that runs ``asyncio.run`` many times. Proxies come from the
environment as for the built-in client (``http11.proxy_for``); certificates are checked
against ``httpx``'s trust store (certifi, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``).
"""

from __future__ import annotations

import asyncio
import weakref
import zlib
from collections.abc import AsyncIterator
from typing import Any

import httpx

from .http11 import ReplyTooLarge, max_reply_bytes, proxy_for, too_large_message, zlib_decoder

ACCEPTED_ENCODINGS = "gzip, deflate"


class UnsupportedEncoding(ReplyTooLarge):
    """A reply in a content encoding the transport did not ask for (``br``, ``zstd``, …):
    it cannot be decoded with a bound, so it is refused; not retried."""


def _decoder(encoding: str) -> Any:
    """A zlib decoder for ``encoding``; None for identity. Raises
    :class:`UnsupportedEncoding` for any other encoding."""
    if encoding in ("", "identity"):
        return None
    decoder = zlib_decoder(encoding)
    if decoder is not None:
        return decoder
    raise UnsupportedEncoding(f"the reply is in Content-Encoding {encoding!r}, which was not "
                              f"asked for and cannot be decoded with a size bound")


class _BoundedStream(httpx.AsyncByteStream):
    """The decoded bytes of ``inner``, failing once more than the bound has come (raw or
    decoded)."""

    def __init__(self, inner: httpx.AsyncByteStream, decoder: Any) -> None:
        self._inner = inner
        self._decoder = decoder
        self._limit = max_reply_bytes()
        self._raw = 0
        self._decoded = 0

    def _too_large(self) -> ReplyTooLarge:
        return ReplyTooLarge(too_large_message(self._decoder is not None))

    def _decode(self, data: bytes) -> bytes:
        if self._decoder is None:
            return data
        room = self._limit - self._decoded
        try:  # never inflate more than the room left: a small bomb stays small
            out = self._decoder.decompress(data, room + 1)
        except zlib.error as exc:
            raise httpx.DecodingError(f"the reply body cannot be decoded: {exc}") from None
        return bytes(out)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for data in self._inner:
            self._raw += len(data)
            if self._raw > self._limit:
                raise self._too_large()
            out = self._decode(data)
            self._decoded += len(out)
            if self._decoded > self._limit:
                raise self._too_large()
            if out:
                yield out
        if self._decoder is not None:
            try:
                tail = self._decoder.flush()
            except zlib.error as exc:
                raise httpx.DecodingError(f"the reply body cannot be decoded: {exc}") from None
            self._decoded += len(tail)
            if self._decoded > self._limit:
                raise self._too_large()
            if tail:
                yield tail

    async def aclose(self) -> None:
        await self._inner.aclose()


class BoundedTransport(httpx.AsyncBaseTransport):
    """See the module docstring."""

    def __init__(self) -> None:
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop,
                                               dict[str | None, httpx.AsyncHTTPTransport]] = (
            weakref.WeakKeyDictionary())
        self.requests = 0
        """How many requests went through (tests check that a path uses this transport)."""
        # made once, here (outside any timed attempt): a context per pool costs 0.05-0.3 s
        self._ssl = httpx.create_ssl_context()

    def _pool(self, url: str) -> httpx.AsyncHTTPTransport:
        loop = asyncio.get_running_loop()
        pools = self._pools.setdefault(loop, {})
        proxy = proxy_for(url)
        inner = pools.get(proxy)
        if inner is None:
            inner = pools[proxy] = httpx.AsyncHTTPTransport(proxy=proxy, verify=self._ssl)
        return inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and return its reply with a bounded, decoded body. Raises
        :class:`UnsupportedEncoding` for an encoding not asked for, and (while the body
        is read) ``ReplyTooLarge`` past the bound; ``httpx`` errors as usual."""
        self.requests += 1
        request.headers["Accept-Encoding"] = ACCEPTED_ENCODINGS
        response = await self._pool(str(request.url)).handle_async_request(request)
        encoding = response.headers.get("content-encoding", "").strip().lower()
        try:
            decoder = _decoder(encoding)
        except UnsupportedEncoding:
            await response.aclose()
            raise
        headers = [(k, v) for k, v in response.headers.multi_items()
                   if k.lower() not in ("content-encoding", "content-length")
                   or decoder is None]
        stream = response.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        return httpx.Response(response.status_code, headers=headers,
                              stream=_BoundedStream(stream, decoder),
                              extensions=response.extensions, request=request)

    async def aclose(self) -> None:
        """Close this event loop's pools (other loops' pools go with their loops)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        for inner in self._pools.pop(loop, {}).values():
            await inner.aclose()


def too_large_in(exc: BaseException) -> ReplyTooLarge | None:
    """The :class:`ReplyTooLarge` somewhere in the cause / context chain of ``exc``, as
    litellm and the OpenAI library wrap what a transport raises."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, ReplyTooLarge):
            return e
        stack.extend((e.__cause__, e.__context__))
    return None
