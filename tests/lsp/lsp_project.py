"""The small multi-file project the language server tests talk about, and helpers
for a pytest-lsp client (a module of its own name: ``conftest`` is not unique)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from lsprotocol import types as lsp
from pytest_lsp import LanguageClient

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
