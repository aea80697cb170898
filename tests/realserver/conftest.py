"""Fixtures of the real-server tests: ``real_server`` (llama-cpp-python's server, chat
and completions, ``--n_ctx 2048``, ``--interrupt_requests false``), ``interrupting_server``
(the same with the server's default: a new request cuts the stream in progress short),
``embedding_server`` (the same model with ``--embedding true``: one vector per token)
and ``pooled_server`` (``--embedding true`` with mean pooling, ``pooled_server.py``),
each started once per session and stopped by its PID at the end
(``llama_server.py``); ``client``, each test once with each HTTP client
(``clients.py``); probing of server profiles is on, into a per-test cache file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from clients import CLIENTS
from llama_server import Server, start_server


@pytest.fixture(params=sorted(CLIENTS))
def client(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def real_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # requests queue instead of cutting the stream in progress short (the server's default)
    with start_server(tmp_path_factory.mktemp("realserver"),
                      "--interrupt_requests", "false") as server:
        yield server


@pytest.fixture(scope="session")
def embedding_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with start_server(tmp_path_factory.mktemp("realserver_emb"), "--embedding", "true") as server:
        yield server


@pytest.fixture(autouse=True)
def _probing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Server profiles are probed here (the rest of the suite turns probing off), into a
    cache file of the test's own."""
    from promptflow_dsl.models import profiles

    monkeypatch.setenv(profiles.PROBE_ENV, "1")
    monkeypatch.setenv(profiles.CACHE_ENV, str(tmp_path / "servers.json"))
    profiles.forget()
    yield
    profiles.forget()


@pytest.fixture(scope="session")
def interrupting_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with start_server(tmp_path_factory.mktemp("realserver_int")) as server:
        yield server


@pytest.fixture(scope="session")
def pooled_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with start_server(tmp_path_factory.mktemp("realserver_pooled"), "--embedding", "true",
                      pooled=True) as server:
        yield server


@pytest.fixture(scope="session")
def litellm_proxy(real_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A LiteLLM proxy (``litellm --config``) in front of ``real_server``, key
    ``litellm_proxy.MASTER_KEY`` (``litellm_proxy.py``)."""
    from litellm_proxy import start_proxy

    with start_proxy(tmp_path_factory.mktemp("litellm_proxy"), real_server) as server:
        yield server
