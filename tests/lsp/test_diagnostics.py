"""Diagnostics over stdio: they appear, carry related locations, clear when fixed,
follow unsaved edits and imported files."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from lsp_project import MAIN, open_doc, uri, wait_for
from lsprotocol import types as lsp
from pytest_lsp import LanguageClient

pytestmark = pytest.mark.asyncio


def change(client: LanguageClient, u: str, version: int, text: str) -> None:
    client.text_document_did_change(lsp.DidChangeTextDocumentParams(
        lsp.VersionedTextDocumentIdentifier(version=version, uri=u),
        [lsp.TextDocumentContentChangeWholeDocument(text=text)]))


async def edit(client: LanguageClient, u: str, version: int, text: str) -> list[lsp.Diagnostic]:
    """Send the whole new text and wait for the diagnostics of that version."""
    change(client, u, version, text)

    async def version_published() -> list[lsp.Diagnostic]:
        while True:
            params = await client.wait_for_notification(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
            if params.uri == u and params.version == version:
                return list(params.diagnostics)

    return await asyncio.wait_for(version_published(), 60)


async def test_clean_project_has_no_diagnostics(client: LanguageClient, project: Path) -> None:
    u = await open_doc(client, project / "main.pflow")
    assert list(client.diagnostics[u]) == []


async def test_errors_appear_with_related_locations_and_clear(client: LanguageClient,
                                                             project: Path) -> None:
    u = await open_doc(client, project / "main.pflow")
    bad = MAIN + 'prompt summarize(text: str) -> str = "again {{ text }}"\n'  # a duplicate
    bad = bad.replace("summarize(text=text, pair", "summarise(text=text, pair", 1)
    diags = await edit(client, u, 2, bad)
    messages = [d.message for d in diags]
    assert any("summarise" in m and "did you mean 'summarize'" in m for m in messages), messages
    unknown = next(d for d in diags if "summarise" in d.message)
    assert unknown.severity == lsp.DiagnosticSeverity.Error
    assert unknown.source == "pflow"
    line = bad.splitlines()[unknown.range.start.line]
    assert line[unknown.range.start.character:].startswith("summarise")
    related = [d for d in diags if d.related_information]
    assert related, messages
    first = related[0].related_information[0]
    assert first.location.uri == u and first.message == "first declared here"
    assert bad.splitlines()[first.location.range.start.line].startswith("prompt summarize(text: str, pair")
    assert list(await edit(client, u, 3, MAIN)) == []


async def test_unsaved_edit_of_an_import_reaches_its_importer(client: LanguageClient,
                                                             project: Path) -> None:
    main = await open_doc(client, project / "main.pflow")
    lib_path = project / "lib" / "types.pflow"
    lib = await open_doc(client, lib_path)
    assert not client.diagnostics[main] and not client.diagnostics[lib]
    renamed = lib_path.read_text().replace("prompt classify(", "prompt categorize(")
    # the file on disk keeps `classify`: only the open buffer says `categorize`
    await edit(client, lib, 2, renamed)
    await wait_for(client, lambda: any("classify" in d.message
                                       for d in client.diagnostics.get(main, [])))
    assert "classify" in lib_path.read_text()


async def test_syntax_error(client: LanguageClient, project: Path) -> None:
    path = project / "broken.pflow"
    text = "prompt p(x: str) -> str {\n  user \"hi {{ x }}\"\n\nflow f( -> str {\n}\n"
    path.write_text(text)
    u = await open_doc(client, path)
    diags = client.diagnostics[u]
    assert len(diags) >= 1
    assert diags[0].severity == lsp.DiagnosticSeverity.Error
    assert diags[0].range.start.line >= 2


async def test_errors_in_an_imported_file_are_published_for_it(client: LanguageClient,
                                                              project: Path) -> None:
    lib_path = project / "lib" / "types.pflow"
    lib_path.write_text(lib_path.read_text().replace("score: float", "score: flot"))
    main = await open_doc(client, project / "main.pflow")
    lib = uri(lib_path)
    await wait_for(client, lambda: bool(client.diagnostics.get(lib)))
    assert any("flot" in d.message for d in client.diagnostics[lib])
    assert main in client.diagnostics
