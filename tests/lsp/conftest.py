"""A real LSP client (pytest-lsp) talking to ``pflow lsp`` over stdio, and a small
multi-file project to talk about."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("pygls", reason="pflow lsp needs the lsp extra (pip install -e '.[lsp]')")
pytest_lsp = pytest.importorskip("pytest_lsp", reason="the tests of pflow lsp need pytest-lsp")

from lsprotocol import types as lsp  # noqa: E402
from pytest_lsp import ClientServerConfig, LanguageClient  # noqa: E402

LIB = '''\
# A labelled answer.
type Verdict {
  label: str
  score: float
}

model fast = "openai/gpt-4o-mini" { temperature: 0.2 }

# Classify a text.
# Returns a verdict.
prompt classify(text: str) -> Verdict {
  model fast
  user "Classify: {{ text }}"
}
'''

MAIN = '''\
import "lib/types.pflow" as lib

type Pair {
  left: lib.Verdict
  right: str
}

# Summarize a text in one line.
prompt summarize(text: str, pair: Pair) -> str = "Summarize {{ text }} {{ pair.left.label }}"

flow brief(text: str) -> str {
  v = lib.classify(text=text)
  s = summarize(text=text, pair={left: v, right: "x"})
  return s
}

sketch judge(claim: str) -> {verdict: str} {
  template """Claim: {{ claim }} [verdict in {"true", "false"}]"""
}
'''

OTHER = '''\
import "lib/types.pflow" as lib

flow twice(text: str) -> str {
  a = lib.classify(text=text)
  b = lib.classify(text=a.label)
  return b.label
}
'''


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


def uri(path: Path) -> str:
    return path.resolve().as_uri()


async def wait_for(client: LanguageClient, ready: Callable[[], bool]) -> None:
    """Wait for diagnostics notifications until ``ready()`` (a guard of 60 s against a
    server that never answers, not a speed requirement)."""
    async def loop() -> None:
        while not ready():
            await client.wait_for_notification(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    await asyncio.wait_for(loop(), 60)


async def open_doc(client: LanguageClient, path: Path, text: str | None = None) -> str:
    """Open ``path`` (its file's text unless ``text`` is given) and wait for its diagnostics."""
    u = uri(path)
    client.diagnostics.pop(u, None)
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(lsp.TextDocumentItem(
        u, "pflow", 1, path.read_text() if text is None else text)))
    await wait_for(client, lambda: u in client.diagnostics)
    return u


def position(text: str, needle: str, offset: int = 0, nth: int = 0) -> lsp.Position:
    """The position of the ``nth`` occurrence of ``needle`` in ``text`` (plus ``offset``
    characters)."""
    at = -1
    for _ in range(nth + 1):
        at = text.index(needle, at + 1)
    at += offset
    line = text.count("\n", 0, at)
    return lsp.Position(line, at - (text.rfind("\n", 0, at) + 1))
