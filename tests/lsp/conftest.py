"""A real LSP client (pytest-lsp) talking to ``pflow lsp`` over stdio, and the project
of ``lsp_project.py`` written to a temporary folder."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("pygls", reason="pflow lsp needs the lsp extra (pip install -e '.[lsp]')")
pytest_lsp = pytest.importorskip("pytest_lsp", reason="the tests of pflow lsp need pytest-lsp")

from lsp_project import LIB, MAIN, OTHER  # noqa: E402
from lsprotocol import types as lsp  # noqa: E402
from pytest_lsp import ClientServerConfig, LanguageClient  # noqa: E402


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pflow.toml").write_text("")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "types.pflow").write_text(LIB)
    (tmp_path / "main.pflow").write_text(MAIN)
    (tmp_path / "other.pflow").write_text(OTHER)
    return tmp_path


@pytest_lsp.fixture(config=ClientServerConfig(
    server_command=[sys.executable, "-m", "promptflow_dsl", "lsp"]))
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(lsp.InitializeParams(
        capabilities=lsp.ClientCapabilities(), initialization_options={"debounce": 0}))
    yield
    await lsp_client.shutdown_session()


