"""A small HTTP/1.1 client on asyncio protocols: the wire of the OpenAI-compatible path.

A model call is one JSON POST and one JSON (or server-sent events) reply. General
clients spend most of their per-request CPU on machinery such a call never needs
(request and response objects with many hooks, cookie jars, redirect and
multipart handling, tracing signals); on a loopback server a request through this
module costs 30-40% less CPU than one through ``aiohttp``. What it does:

- ``http`` and ``https`` (the system's trusted certificates, hostname checked);
- keep-alive: a connection whose reply was read to the end, and that neither side
  asked to close, goes back to a per-host pool (idle ones are dropped after
  :data:`IDLE_SECONDS`); addresses are resolved once per :data:`DNS_SECONDS`;
- replies framed by ``Content-Length``, ``Transfer-Encoding: chunked`` or the end
  of the connection; ``gzip`` / ``deflate`` bodies are decoded;
- reading a body whole (:meth:`Response.read`) or line by line as it arrives
  (:meth:`Response.readline`, for event streams), with back-pressure.

It does not follow redirects, keep cookies or speak to proxies: :func:`proxy_for`
tells the caller when the environment names a proxy for a URL, and the caller uses
a general client then.

A reply body is held up to :func:`max_reply_bytes` (64 MiB, ``PFLOW_MAX_REPLY_BYTES``),
counted after decoding, and inflated no further than that: past it the request fails
with :class:`ReplyTooLarge` and the connection is closed.

Errors: :class:`HTTPConnectionError` (a ``ConnectionError``) when a connection
cannot be made or breaks, and its subclass :class:`RemoteProtocolError` when the
server closes the connection before the reply is complete or sends something that
is not HTTP. Cancelling a request (a timeout) closes its connection.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import os
import socket
import ssl
import time
import urllib.request
import weakref
import zlib
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

IDLE_SECONDS = 15.0
"""An idle pooled connection older than this is closed instead of reused."""

DNS_SECONDS = 300.0
"""How long a host's resolved addresses are reused."""

MAX_IDLE_PER_HOST = 100
HIGH_WATER = 1 << 20
"""Unread body bytes above which the socket stops being read (back-pressure)."""

MAX_HEAD = 64 * 1024

DEFAULT_MAX_REPLY_BYTES = 64 * 1024 * 1024
MAX_REPLY_ENV = "PFLOW_MAX_REPLY_BYTES"


def max_reply_bytes() -> int:
    """The most bytes of a reply body held at once, after decoding gzip / deflate:
    ``PFLOW_MAX_REPLY_BYTES`` if set to a positive integer, else 64 MiB.  A body (or the
    unread part of a stream) past it fails the request with :class:`ReplyTooLarge`."""
    raw = os.environ.get(MAX_REPLY_ENV, "")
    try:
        value = int(raw)
    except ValueError:
        return DEFAULT_MAX_REPLY_BYTES
    return value if value > 0 else DEFAULT_MAX_REPLY_BYTES

_USER_AGENT = "promptflow-dsl"


class ReplyTooLarge(Exception):
    """A reply body larger than :func:`max_reply_bytes` (once decoded); not retried."""


class HTTPConnectionError(ConnectionError):
    """A connection could not be made, or broke while a request was under way;
    ``refused`` is true when every address of the host refused the connection."""

    refused = False


class RemoteProtocolError(HTTPConnectionError):
    """The server closed the connection early or did not speak HTTP/1.x."""


_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy",
               "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUEST_METHOD")


def proxy_for(url: str) -> str | None:
    """The proxy the environment (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``, minus
    ``NO_PROXY``) names for ``url``, or None."""
    parts = urlsplit(url)
    return _proxy_for(parts.scheme, parts.hostname or "",
                      tuple(os.environ.get(name) for name in _PROXY_VARS))


@functools.lru_cache(maxsize=256)
def _proxy_for(scheme: str, host: str, _environment: tuple[str | None, ...]) -> str | None:
    # the environment's proxy variables are part of the key: reading the whole
    # environment on every request costs more than the request itself
    proxies = urllib.request.getproxies()
    proxy = proxies.get(scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    return proxy


# --------------------------------------------------------------------------- the reply


def zlib_decoder(encoding: str) -> Any:
    """A zlib decoder for Content-Encoding ``encoding`` (``gzip``, ``x-gzip`` or
    ``deflate``, already lower-cased), or None for any other encoding."""
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    return None


def too_large_message(decoded: bool) -> str:
    """What :class:`ReplyTooLarge` says of a body past :func:`max_reply_bytes`
    (``decoded``: counted after inflating it)."""
    return (f"the reply body is larger than {max_reply_bytes():,} bytes"
            f"{' once decoded' if decoded else ''} (the limit is {MAX_REPLY_ENV})")


class Response:
    """The status, headers and body of one reply.

    ``headers`` maps lower-case names to values (repeated headers joined with
    ``", "``). Read the body with :meth:`read` or :meth:`readline`, then call
    :meth:`release` (which puts the connection back in the pool when it can be
    reused) or :meth:`close`.
    """

    def __init__(self, conn: _Connection, status: int, reason: str,
                 headers: dict[str, str]) -> None:
        self._conn = conn
        self.status = status
        self.reason = reason
        self.headers = headers
        self._body = bytearray()
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._decoder: Any = zlib_decoder(headers.get("content-encoding", "").strip().lower())
        self._released = False

    # -- fed by the connection -------------------------------------------------

    def _feed(self, data: bytes) -> None:
        if self._done:
            return
        room = max_reply_bytes() - len(self._body)
        if self._decoder is not None:
            try:  # never inflate more than the room left: a small bomb stays small
                data = self._decoder.decompress(data, room + 1)
            except zlib.error as exc:
                self._fail(RemoteProtocolError(f"the reply body cannot be decoded: {exc}"))
                return
        if len(data) > room:
            self._too_large()
            return
        self._body += data
        self._wake()

    def _too_large(self) -> None:
        self._fail(ReplyTooLarge(too_large_message(self._decoder is not None)))
        self._conn.close()

    def _finish(self) -> None:
        if self._done:
            return
        if self._decoder is not None:
            try:
                rest = self._decoder.flush()
            except zlib.error:
                rest = b""
            if len(self._body) + len(rest) > max_reply_bytes():
                self._too_large()
                return
            self._body += rest
        self._done = True
        self._wake()

    def _fail(self, exc: BaseException) -> None:
        if not self._done:
            self._error = exc
            self._done = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        self._conn.resume()
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    # -- read ------------------------------------------------------------------

    async def read(self) -> bytes:
        """The whole body.  Raises :class:`HTTPConnectionError` if it is cut short."""
        while not self._done:
            await self._wait()
        if self._error is not None:
            raise self._error
        data = bytes(self._body)
        self._body.clear()
        return data

    async def text(self, errors: str = "strict") -> str:
        """The whole body as UTF-8 text."""
        return (await self.read()).decode("utf-8", errors=errors)

    async def readline(self) -> bytes:
        """The next line (with its ``\\n``), what is left at the end of the body, or
        ``b""`` when the body is exhausted.  Raises :class:`HTTPConnectionError`."""
        while True:
            i = self._body.find(b"\n")
            if i >= 0:
                line = bytes(self._body[: i + 1])
                del self._body[: i + 1]
                return line
            if self._done:
                if self._error is not None:
                    raise self._error
                line = bytes(self._body)
                self._body.clear()
                return line
            await self._wait()

    # -- give back -------------------------------------------------------------

    def release(self) -> None:
        """Return the connection to the pool if the body was read to the end and the
        connection may be reused; close it otherwise.  Idempotent."""
        if self._released:
            return
        self._released = True
        self._conn.done_with(self, reusable=self._done and self._error is None)

    def close(self) -> None:
        """Close the connection (an unread body is dropped).  Idempotent."""
        if self._released:
            return
        self._released = True
        self._conn.done_with(self, reusable=False)


# --------------------------------------------------------------------------- the connection


_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILER, _UNTIL_CLOSE, _IDLE = range(8)


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection and the parser of the replies that arrive on it."""

    def __init__(self, pool: Pool, key: tuple[str, str, int]) -> None:
        self.pool = pool
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.state = _IDLE
        self.remaining = 0
        self.response: Response | None = None
        self.head: asyncio.Future[Response] | None = None
        self.keep_alive = True
        self.lost = False
        self.paused = False
        self.idle_since = time.monotonic()
        self.no_body = False

    # -- asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        try:
            self._parse()
        except RemoteProtocolError as exc:
            self._broken(exc)

    def eof_received(self) -> bool | None:
        return False  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.keep_alive = False
        if self.state == _UNTIL_CLOSE and self.response is not None:
            self.state = _IDLE
            self.response._finish()
            return
        if self.state != _IDLE or self.head is not None:
            why = f": {exc}" if exc else ""
            self._broken(RemoteProtocolError(
                f"the server closed the connection before the reply was complete{why}"))

    # -- use -------------------------------------------------------------------

    def usable(self) -> bool:
        return (not self.lost and self.transport is not None and not self.transport.is_closing()
                and time.monotonic() - self.idle_since < IDLE_SECONDS)

    def send(self, data: bytes, no_body: bool) -> asyncio.Future[Response]:
        assert self.transport is not None and self.state == _IDLE
        self.state = _HEAD
        self.no_body = no_body
        self.head = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.head

    def resume(self) -> None:
        if self.paused and self.transport is not None and not self.transport.is_closing():
            self.paused = False
            self.transport.resume_reading()

    def done_with(self, response: Response, reusable: bool) -> None:
        if self.response is response:
            self.response = None
        if reusable and self.keep_alive and self.state == _IDLE and not self.buf:
            self.resume()
            self.pool.put_back(self)
        else:
            self.close()

    def close(self) -> None:
        self.keep_alive = False
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.keep_alive = False
        if self.transport is not None:
            self.transport.abort()

    # -- parsing ---------------------------------------------------------------

    def _broken(self, exc: BaseException) -> None:
        self.keep_alive = False
        head, self.head = self.head, None
        if head is not None and not head.done():
            head.set_exception(exc)
        if self.response is not None:
            self.response._fail(exc)
        self.state = _IDLE
        if self.transport is not None:
            self.transport.close()

    def _parse(self) -> None:
        while self.buf:
            if self.state == _HEAD:
                if not self._parse_head():
                    return
            elif self.state == _LENGTH:
                if self._take_counted():
                    self._end_of_body()
            elif self.state == _UNTIL_CLOSE:
                self._body(bytes(self.buf))
                self.buf.clear()
            elif self.state == _CHUNK_SIZE:
                i = self.buf.find(b"\r\n")
                if i < 0:
                    if len(self.buf) > 1024:
                        raise RemoteProtocolError("a chunk-size line is too long")
                    return
                line = bytes(self.buf[:i]).split(b";", 1)[0].strip()
                del self.buf[: i + 2]
                try:
                    size = int(line, 16)
                except ValueError:
                    raise RemoteProtocolError(f"bad chunk size {line[:20]!r}") from None
                if size == 0:
                    self.state = _TRAILER
                else:
                    self.remaining = size
                    self.state = _CHUNK_DATA
            elif self.state == _CHUNK_DATA:
                if self._take_counted():
                    self.state = _CHUNK_END
            elif self.state == _CHUNK_END:
                if len(self.buf) < 2:
                    return
                if self.buf[:2] != b"\r\n":
                    raise RemoteProtocolError("a chunk does not end with CRLF")
                del self.buf[:2]
                self.state = _CHUNK_SIZE
            elif self.state == _TRAILER:
                i = self.buf.find(b"\r\n")
                if i < 0:
                    return
                del self.buf[: i + 2]
                if i == 0:
                    self._end_of_body()
            else:  # _IDLE: bytes nobody asked for
                raise RemoteProtocolError("the server sent data without a request")

    def _take_counted(self) -> bool:
        """Pass up to ``remaining`` buffered bytes to the body; True when all have come."""
        take = min(self.remaining, len(self.buf))
        self._body(bytes(self.buf[:take]))
        del self.buf[:take]
        self.remaining -= take
        return self.remaining == 0

    def _parse_head(self) -> bool:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buf) > MAX_HEAD:
                raise RemoteProtocolError("the reply's header is too long")
            return False
        lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        del self.buf[: end + 4]
        version, _, rest = lines[0].partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise RemoteProtocolError(f"not an HTTP reply: {lines[0][:60]!r}")
        status = int(code)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                continue
            name = name.strip().lower()
            value = value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        if 100 <= status < 200:  # informational (100 Continue): the real reply follows
            return True
        connection = headers.get("connection", "").lower()
        if "close" in connection or version == "HTTP/1.0" and "keep-alive" not in connection:
            self.keep_alive = False
        response = Response(self, status, reason, headers)
        self.response = response
        head, self.head = self.head, None
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self.state = _CHUNK_SIZE
        elif self.no_body or status in (204, 304):
            self.state = _IDLE
            response._finish()
        elif "content-length" in headers:
            try:
                self.remaining = int(headers["content-length"])
            except ValueError:
                raise RemoteProtocolError("bad Content-Length") from None
            self.state = _LENGTH
            if self.remaining == 0:
                self._end_of_body()
        else:
            self.keep_alive = False
            self.state = _UNTIL_CLOSE
        if head is not None and not head.done():
            head.set_result(response)
        return True

    def _body(self, data: bytes) -> None:
        response = self.response
        if response is None:
            return
        response._feed(data)
        if len(response._body) > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def _end_of_body(self) -> None:
        self.state = _IDLE
        if self.response is not None:
            self.response._finish()


# --------------------------------------------------------------------------- the pool


@dataclass
class _Resolved:
    addresses: list[tuple[Any, ...]]
    until: float


_dns: dict[tuple[str, int], _Resolved] = {}


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class Pool:
    """Keep-alive connections of one event loop, by (scheme, host, port)."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, str, int], deque[_Connection]] = {}
        self._all: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._resolving: dict[tuple[str, int], asyncio.Future[Any]] = {}
        self._ssl: ssl.SSLContext | None = None
        self.closed = False

    async def request(self, method: str, url: str, headers: dict[str, str],
                      body: bytes = b"") -> Response:
        """Send one request; returns the reply once its head has arrived.

        Raises :class:`HTTPConnectionError` (connection refused or broken, not HTTP),
        ``ValueError`` for a URL that is not ``http``/``https``.
        """
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if scheme == "https" else 80)
        key = (scheme, parts.hostname, port)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        name = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname  # IPv6
        host = name if port == (443 if scheme == "https" else 80) else f"{name}:{port}"
        lines = [f"{method} {target} HTTP/1.1", f"Host: {host}",
                 f"User-Agent: {_USER_AGENT}", "Accept-Encoding: gzip, deflate"]
        lines.extend(f"{k}: {v}" for k, v in headers.items())
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        conn = self._idle_connection(key) or await self._connect(key)
        try:
            return await conn.send(data, no_body=method == "HEAD")
        except BaseException:
            conn.abort()
            raise

    def _idle_connection(self, key: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()  # the most recently used first
            if conn.usable():
                return conn
            conn.close()
        return None

    def put_back(self, conn: _Connection) -> None:
        if self.closed:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        idle = self._idle.setdefault(conn.key, deque())
        idle.append(conn)
        while len(idle) > MAX_IDLE_PER_HOST:
            idle.popleft().close()

    async def _resolve(self, host: str, port: int) -> list[tuple[Any, ...]]:
        """The addresses of ``host`` (an IP address as it is; names from a cache shared
        by every pool, one look-up at a time per name).  Raises HTTPConnectionError."""
        if _is_ip(host):
            return [(host, port)]
        now = time.monotonic()
        hit = _dns.get((host, port))
        if hit is not None and hit.until > now:
            return hit.addresses
        pending = self._resolving.get((host, port))
        if pending is None:
            pending = self._resolving[(host, port)] = asyncio.ensure_future(
                asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM))
            pending.add_done_callback(lambda _: self._resolving.pop((host, port), None))
        try:
            infos = await asyncio.shield(pending)
        except OSError as exc:
            raise HTTPConnectionError(f"cannot resolve {host}: {exc}") from exc
        addresses = [info[4] for info in infos]
        _dns[(host, port)] = _Resolved(addresses, now + DNS_SECONDS)
        return addresses

    async def _connect(self, key: tuple[str, str, int]) -> _Connection:
        scheme, host, port = key
        loop = asyncio.get_running_loop()
        context: ssl.SSLContext | None = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl
        errors: list[str] = []
        refused = True
        for address in await self._resolve(host, port):
            try:
                _, conn = await loop.create_connection(
                    lambda: _Connection(self, key), address[0], address[1], ssl=context,
                    server_hostname=host if context is not None else None)
            except OSError as exc:  # refused, unreachable, a bad certificate (ssl.SSLError)
                errors.append(f"{address[0]}:{address[1]}: {exc.strerror or exc}")
                refused = refused and isinstance(exc, ConnectionRefusedError)
                continue
            sock = conn.transport.get_extra_info("socket") if conn.transport else None
            if sock is not None:
                try:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                except (OSError, AttributeError):
                    pass
            self._all.add(conn)
            return conn
        error = HTTPConnectionError(f"cannot connect to {host}:{port} ({'; '.join(errors)})")
        error.refused = refused and bool(errors)
        raise error

    async def close(self) -> None:
        """Close every connection of this pool (idle or in use).  Idempotent."""
        self.closed = True
        self._idle.clear()
        for conn in list(self._all):
            conn.close()
        await asyncio.sleep(0)  # let the transports run their close callbacks


_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Pool] = weakref.WeakKeyDictionary()


def pool() -> Pool:
    """This event loop's pool (made on first use)."""
    loop = asyncio.get_running_loop()
    p = _pools.get(loop)
    if p is None or p.closed:
        p = _pools[loop] = Pool()
    return p


async def close_pool() -> None:
    """Close this event loop's pool, if it has one."""
    p = _pools.pop(asyncio.get_running_loop(), None)
    if p is not None:
        await p.close()
