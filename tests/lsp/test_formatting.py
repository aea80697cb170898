"""Document formatting over stdio: ``pflow fmt``'s layout as edits of the changed lines;
no edits for a formatted document or one that does not parse."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsp_project import open_doc
from lsprotocol import types as lsp
from pytest_lsp import ClientServerConfig, LanguageClient

from promptflow_dsl.fmt import format_text
from promptflow_dsl.lsp.positions import Lines

pytestmark = pytest.mark.asyncio

MESSY = '''# a model
model m="x"   # trailing
prompt p(q:str)->str{user "{{ q }}"  retries 2}
flow f(q: str) -> str {
  return p(q=q)
}
'''


def apply(text: str, edits: list[lsp.TextEdit]) -> str:
    """``text`` with the ``edits`` applied (the edits do not overlap)."""
    lines = Lines(text)
    for edit in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character),
                       reverse=True):
        start = lines.offset(edit.range.start.line, edit.range.start.character)
        end = lines.offset(edit.range.end.line, edit.range.end.character)
        text = text[:start] + edit.new_text + text[end:]
    return text


async def formatting(client: LanguageClient, u: str) -> list[lsp.TextEdit]:
    result = await client.text_document_formatting_async(lsp.DocumentFormattingParams(
        text_document=lsp.TextDocumentIdentifier(uri=u),
        options=lsp.FormattingOptions(tab_size=4, insert_spaces=False)))
    return list(result or [])


async def test_formatting_edits_give_the_formatted_text(client: LanguageClient,
                                                        project: Path) -> None:
    u = await open_doc(client, project / "messy.pflow", MESSY)
    edits = await formatting(client, u)
    assert apply(MESSY, edits) == format_text(MESSY)
    # only the changed lines are replaced: the comment line and the flow are untouched
    assert all(e.range.start.line >= 1 for e in edits)
    assert all(e.range.end.line <= 3 for e in edits)


async def test_a_formatted_document_gets_no_edits(client: LanguageClient, project: Path) -> None:
    tidy = format_text(MESSY)
    u = await open_doc(client, project / "tidy.pflow", tidy)
    assert await formatting(client, u) == []


async def test_unsaved_text_without_a_final_newline(client: LanguageClient, project: Path) -> None:
    text = 'model m="x"\nmodel n = "y"'
    u = await open_doc(client, project / "end.pflow", text)
    edits = await formatting(client, u)
    assert apply(text, edits) == 'model m = "x"\nmodel n = "y"\n'


async def test_a_syntax_error_gets_no_edits(client: LanguageClient, project: Path) -> None:
    u = await open_doc(client, project / "broken.pflow", 'model m="x"\nprompt p( -> str = "x"\n')
    assert await formatting(client, u) == []


@pytest_lsp.fixture(config=ClientServerConfig(
    server_command=[sys.executable, "-m", "promptflow_dsl", "lsp"]))
async def fresh_client(lsp_client: LanguageClient):
    yield


async def test_the_server_says_it_formats(fresh_client: LanguageClient) -> None:
    result = await fresh_client.initialize_session(lsp.InitializeParams(
        capabilities=lsp.ClientCapabilities()))
    assert result.capabilities.document_formatting_provider
    await fresh_client.shutdown_session()
