"""The lean HTTP/1.1 client: framing, keep-alive, decoding, back-pressure and failures,
against a raw loopback server that sends exactly the bytes each test scripts."""

from __future__ import annotations

import asyncio
import gzip
import shutil
import socket
import ssl
import subprocess
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from promptflow_dsl.models import http11
from promptflow_dsl.models.http11 import HTTPConnectionError, RemoteProtocolError
from promptflow_dsl.models.transport import classify

Reply = bytes | Callable[[asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """Answers each request with the next scripted reply (raw bytes, or a coroutine
    that writes to the connection); counts connections and requests."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.replies: deque[Reply] = deque()
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.AbstractServer | None = None
        self.tls = tls

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length) if length else b""
                self.requests.append(head + body)
                reply = self.replies.popleft()
                if callable(reply):
                    await reply(writer)
                    if writer.is_closing():
                        return
                else:
                    writer.write(reply)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def ok(body: bytes, *headers: str) -> bytes:
    extra = "".join(f"{h}\r\n" for h in headers)
    return (f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n").encode() + body


def run(coro_fn: Callable[[RawServer], Awaitable[Any]], tls: ssl.SSLContext | None = None) -> Any:
    async def main() -> Any:
        async with RawServer(tls) as server:
            try:
                return await coro_fn(server)
            finally:
                await http11.close_pool()
    return asyncio.run(main())


async def get(server: RawServer, body: bytes = b"{}") -> tuple[int, bytes, http11.Response]:
    r = await http11.pool().request("POST", server.url + "/v1/x", {"X-Test": "1"}, body)
    data = await r.read()
    r.release()
    return r.status, data, r


def test_content_length_and_keep_alive():
    async def go(server: RawServer) -> None:
        server.replies.extend([ok(b"first"), ok(b"second")])
        assert (await get(server))[:2] == (200, b"first")
        assert (await get(server))[:2] == (200, b"second")
        assert server.connections == 1  # the second request reused the connection
        head = server.requests[0].decode()
        assert head.startswith("POST /v1/x HTTP/1.1\r\n")
        assert "Host: 127.0.0.1:" in head and "X-Test: 1" in head and "Content-Length: 2" in head
    run(go)


def test_host_header_over_ipv6():
    async def go() -> bytes:
        server = await asyncio.start_server(serve, "::1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            r = await http11.pool().request("POST", f"http://[::1]:{port}/x", {}, b"{}")
            data = await r.read()
            r.release()
            return data
        finally:
            server.close()
            await server.wait_closed()
            await http11.close_pool()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(2)
        host = next(line for line in head.split(b"\r\n") if line.startswith(b"Host:"))
        writer.write(ok(host))
        await writer.drain()
        writer.close()

    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    assert asyncio.run(go()).startswith(b"Host: [::1]:")


def test_connection_close_is_not_reused():
    async def go(server: RawServer) -> None:
        server.replies.extend([ok(b"a", "Connection: close"), ok(b"b")])
        assert (await get(server))[1] == b"a"
        assert (await get(server))[1] == b"b"
        assert server.connections == 2
    run(go)


def test_chunked_body_with_extensions_and_trailer_read_by_lines():
    async def go(server: RawServer) -> None:
        async def chunked(w: asyncio.StreamWriter) -> None:
            w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for piece in (b"data: one\n", b"data: t", b"wo\n\ndata: [DONE]\n"):
                w.write(f"{len(piece):x};ext=1\r\n".encode() + piece + b"\r\n")
                await w.drain()
                await asyncio.sleep(0.01)  # arrives in separate packets
            w.write(b"0\r\nX-Trailer: yes\r\n\r\n")
            await w.drain()
        server.replies.extend([chunked, ok(b"after")])
        r = await http11.pool().request("POST", server.url + "/s", {}, b"{}")
        lines = []
        while line := await r.readline():
            lines.append(line)
        r.release()
        assert lines == [b"data: one\n", b"data: two\n", b"\n", b"data: [DONE]\n"]
        assert (await get(server))[1] == b"after"
        assert server.connections == 1  # a chunked reply read to the end keeps the connection
    run(go)


def test_gzip_body_is_decoded():
    async def go(server: RawServer) -> None:
        server.replies.append(ok(gzip.compress(b'{"a": 1}'), "Content-Encoding: gzip"))
        assert (await get(server))[1] == b'{"a": 1}'
    run(go)


def test_body_until_close():
    async def go(server: RawServer) -> None:
        async def until_close(w: asyncio.StreamWriter) -> None:
            w.write(b"HTTP/1.1 200 OK\r\n\r\nall of it")
            await w.drain()
            w.close()
        server.replies.extend([until_close, ok(b"next")])
        assert (await get(server))[1] == b"all of it"
        assert (await get(server))[1] == b"next"
        assert server.connections == 2
    run(go)


def test_truncated_body_is_a_protocol_error():
    async def go(server: RawServer) -> None:
        async def cut(w: asyncio.StreamWriter) -> None:
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
            await w.drain()
            w.close()
        server.replies.append(cut)
        with pytest.raises(RemoteProtocolError, match="before the reply was complete") as info:
            await get(server)
        failure = classify(info.value)
        assert failure.retryable and failure.description.startswith("connection failed")
    run(go)


def test_not_http_is_a_protocol_error():
    async def go(server: RawServer) -> None:
        server.replies.append(b"SSH-2.0-OpenSSH\r\n\r\n")
        with pytest.raises(RemoteProtocolError, match="not an HTTP reply"):
            await get(server)
    run(go)


def test_connection_refused():
    async def go(server: RawServer) -> None:
        url = server.url
        assert server.server is not None
        server.server.close()
        await server.server.wait_closed()
        with pytest.raises(HTTPConnectionError, match="cannot connect") as info:
            await http11.pool().request("POST", url + "/x", {}, b"{}")
        assert classify(info.value).retryable
    run(go)


def test_cancelled_request_drops_its_connection():
    async def go(server: RawServer) -> None:
        async def slow(w: asyncio.StreamWriter) -> None:
            await asyncio.sleep(5)
        server.replies.extend([slow, ok(b"fresh")])
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await get(server)
        assert (await get(server))[1] == b"fresh"
        assert server.connections == 2
    run(go)


def test_large_body_with_back_pressure():
    big = bytes(range(256)) * (3 * http11.HIGH_WATER // 256)

    async def go(server: RawServer) -> None:
        server.replies.append(ok(big))
        r = await http11.pool().request("POST", server.url + "/big", {}, b"")
        await asyncio.sleep(0.2)  # let the body pile up past the high-water mark
        data = await r.read()
        r.release()
        assert data == big
    run(go)


def test_server_closing_an_idle_connection():
    async def go(server: RawServer) -> None:
        async def answer_then_close(w: asyncio.StreamWriter) -> None:
            w.write(ok(b"one"))  # keep-alive is not refused, but the server hangs up
            await w.drain()
            w.close()
        server.replies.extend([answer_then_close, ok(b"two")])
        assert (await get(server))[1] == b"one"
        await asyncio.sleep(0.05)
        assert (await get(server))[1] == b"two"
        assert server.connections == 2
    run(go)


def test_bad_url():
    async def go(server: RawServer) -> None:
        with pytest.raises(ValueError, match="not an http"):
            await http11.pool().request("POST", "ftp://example.invalid/x", {}, b"")
    run(go)


def test_proxy_for(monkeypatch):
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy",
                 "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert http11.proxy_for("https://api.example.com/v1") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,internal.example")
    assert http11.proxy_for("https://api.example.com/v1") == "http://proxy.example:3128"
    assert http11.proxy_for("http://api.example.com/v1") is None  # only https is proxied
    assert http11.proxy_for("https://internal.example/v1") is None


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (made with the openssl command)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not available")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


def test_https_with_a_trusted_certificate(certificate, monkeypatch):
    cert, key = certificate
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", cert)  # the client's default context trusts it

    async def go(server: RawServer) -> None:
        server.replies.extend([ok(b"secure"), ok(b"again")])
        assert server.url.startswith("https://")
        assert (await get(server))[1] == b"secure"
        assert (await get(server))[1] == b"again"
        assert server.connections == 1
    run(go, tls)


def test_https_with_an_untrusted_certificate_fails(certificate, monkeypatch):
    cert, key = certificate
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)

    async def go(server: RawServer) -> None:
        server.replies.append(ok(b"never"))
        with pytest.raises(HTTPConnectionError, match="cannot connect"):
            await get(server)
    run(go, tls)
