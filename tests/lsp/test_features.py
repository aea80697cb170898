"""Hover, definition, references, rename, document symbols and completion over stdio,
on the small project of conftest.py (main.pflow and other.pflow import lib/types.pflow)."""

from __future__ import annotations

from pathlib import Path

import pytest
from lsp_project import LIB, MAIN, OTHER, open_doc, position, uri
from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient

pytestmark = pytest.mark.asyncio


def doc(u: str) -> lsp.TextDocumentIdentifier:
    return lsp.TextDocumentIdentifier(uri=u)


async def hover_text(client: LanguageClient, u: str, pos: lsp.Position) -> str:
    result = await client.text_document_hover_async(
        lsp.HoverParams(text_document=doc(u), position=pos)
    )
    assert result is not None
    assert isinstance(result.contents, lsp.MarkupContent)
    return result.contents.value


async def test_hover_handler_signature_and_doc_comment(
    client: LanguageClient, project: Path
) -> None:
    u = await open_doc(client, project / "main.pflow")
    text = await hover_text(client, u, position(MAIN, "lib.classify", 5))
    assert "prompt classify(text: str) -> Verdict" in text
    assert "Classify a text.\nReturns a verdict." in text
    local = await hover_text(client, u, position(MAIN, "summarize(text=text", 2))
    assert "prompt summarize(text: str, pair: Pair) -> str" in local
    assert "Summarize a text in one line." in local


async def test_hover_type_fields_model_and_template_variable(
    client: LanguageClient, project: Path
) -> None:
    u = await open_doc(client, project / "main.pflow")
    pair = await hover_text(client, u, position(MAIN, "pair: Pair", 7))
    assert "type Pair = {" in pair and "left: Verdict" in pair and "right: str" in pair
    verdict = await hover_text(client, u, position(MAIN, "lib.Verdict", 5))
    assert "label: str" in verdict and "score: float" in verdict
    assert "A labelled answer." in verdict
    label = await hover_text(client, u, position(MAIN, "pair.left.label", 11))
    assert "pair.left.label: str" in label
    var = await hover_text(client, u, position(MAIN, "{{ text }}", 4))
    assert "text: str" in var
    local = await hover_text(client, u, position(MAIN, "  v = lib", 2))
    assert "v: Verdict" in local
    lib = await open_doc(client, project / "lib" / "types.pflow")
    model = await hover_text(client, lib, position(LIB, "model fast", 7))
    assert 'model fast = "openai/gpt-4o-mini"' in model and '"temperature": 0.2' in model


async def test_definition_of_handlers_types_models_and_files(
    client: LanguageClient, project: Path
) -> None:
    u = await open_doc(client, project / "main.pflow")
    lib_uri = uri(project / "lib" / "types.pflow")

    async def where(pos: lsp.Position) -> tuple[str, int]:
        found = await client.text_document_definition_async(
            lsp.DefinitionParams(text_document=doc(u), position=pos)
        )
        assert isinstance(found, list) and found
        return found[0].uri, found[0].range.start.line

    assert await where(position(MAIN, "lib.classify", 5)) == (
        lib_uri,
        LIB.split("\n").index("prompt classify(text: str) -> Verdict {"),
    )
    assert await where(position(MAIN, "lib.Verdict", 5)) == (lib_uri, 1)
    assert await where(position(MAIN, "pair: Pair", 7)) == (u, 2)
    assert await where(position(MAIN, '"lib/types.pflow"', 3)) == (lib_uri, 0)
    assert await where(position(MAIN, "lib.classify", 1)) == (lib_uri, 0)  # the alias
    lib = await open_doc(client, project / "lib" / "types.pflow")
    found = await client.text_document_definition_async(
        lsp.DefinitionParams(text_document=doc(lib), position=position(LIB, "  model fast", 8))
    )
    assert found and found[0].range.start.line == 6


async def test_references_span_the_project(client: LanguageClient, project: Path) -> None:
    u = await open_doc(client, project / "main.pflow")
    found = await client.text_document_references_async(
        lsp.ReferenceParams(
            text_document=doc(u),
            position=position(MAIN, "lib.classify", 5),
            context=lsp.ReferenceContext(include_declaration=True),
        )
    )
    places = sorted((loc.uri.rsplit("/", 1)[-1], loc.range.start.line) for loc in found)
    assert places == [
        ("main.pflow", 11),
        ("other.pflow", 3),
        ("other.pflow", 4),
        ("types.pflow", 10),
    ]


async def test_rename_a_handler_everywhere(client: LanguageClient, project: Path) -> None:
    u = await open_doc(client, project / "main.pflow")
    edit = await client.text_document_rename_async(
        lsp.RenameParams(
            text_document=doc(u), position=position(MAIN, "lib.classify", 5), new_name="categorize"
        )
    )
    assert edit is not None and edit.changes is not None
    files = {k.rsplit("/", 1)[-1]: v for k, v in edit.changes.items()}
    assert sorted(files) == ["main.pflow", "other.pflow", "types.pflow"]
    assert len(files["other.pflow"]) == 2
    texts = {"main.pflow": MAIN, "other.pflow": OTHER, "types.pflow": LIB}
    for name, edits in files.items():
        lines = texts[name].split("\n")
        for e in edits:
            assert e.new_text == "categorize"
            line = lines[e.range.start.line]
            assert line[e.range.start.character : e.range.end.character] == "classify"


async def test_rename_a_type_and_refusals(client: LanguageClient, project: Path) -> None:
    u = await open_doc(client, project / "main.pflow")
    edit = await client.text_document_rename_async(
        lsp.RenameParams(
            text_document=doc(u), position=position(MAIN, "lib.Verdict", 5), new_name="Judgement"
        )
    )
    assert edit is not None and edit.changes is not None
    assert sum(len(v) for v in edit.changes.values()) == 3  # declaration, return type, field
    with pytest.raises(JsonRpcException, match="already declared"):
        await client.text_document_rename_async(
            lsp.RenameParams(
                text_document=doc(u),
                position=position(MAIN, "summarize(text=text", 2),
                new_name="brief",
            )
        )
    with pytest.raises(JsonRpcException, match="built-in type"):
        await client.text_document_rename_async(
            lsp.RenameParams(
                text_document=doc(u), position=position(MAIN, "pair: Pair", 7), new_name="str"
            )
        )
    with pytest.raises(JsonRpcException, match="only a handler or a type"):
        await client.text_document_prepare_rename_async(
            lsp.PrepareRenameParams(
                text_document=doc(u), position=position(MAIN, "lib.classify", 1)
            )
        )


async def test_document_symbols(client: LanguageClient, project: Path) -> None:
    u = await open_doc(client, project / "main.pflow")
    symbols = await client.text_document_document_symbol_async(lsp.DocumentSymbolParams(doc(u)))
    assert symbols is not None
    names = [(s.name, s.kind) for s in symbols]
    assert names == [
        ("lib", lsp.SymbolKind.Module),
        ("Pair", lsp.SymbolKind.Struct),
        ("summarize", lsp.SymbolKind.Function),
        ("brief", lsp.SymbolKind.Function),
        ("judge", lsp.SymbolKind.Function),
    ]
    pair = symbols[1]
    assert isinstance(pair, lsp.DocumentSymbol) and pair.children
    assert [c.name for c in pair.children] == ["left", "right"]


async def labels(client: LanguageClient, u: str, pos: lsp.Position) -> list[str]:
    result = await client.text_document_completion_async(
        lsp.CompletionParams(text_document=doc(u), position=pos)
    )
    assert result is not None
    items = result.items if isinstance(result, lsp.CompletionList) else result
    return [i.label for i in items]


async def test_completion(client: LanguageClient, project: Path) -> None:

    u = await open_doc(client, project / "main.pflow")
    # record fields after `.` in a template, template variables inside {{ }}
    assert await labels(client, u, position(MAIN, "pair.left.label", 10)) == ["label", "score"]
    assert sorted(await labels(client, u, position(MAIN, "{{ text }}", 3))) == ["pair", "text"]
    # names of an imported module after `alias.`
    imported = await labels(client, u, position(MAIN, "lib.classify", 4))
    assert {"classify", "Verdict", "fast"} <= set(imported)
    # handler names in a flow
    in_flow = await labels(client, u, position(MAIN, "summarize(text=text", 0))
    assert {"summarize", "brief", "v", "text", "strip", "return"} <= set(in_flow)
    # type names after `:`
    types = await labels(client, u, position(MAIN, "pair: Pair", 6))
    assert {"Pair", "lib.Verdict", "str", "int"} <= set(types)
    # sketch hole options
    hole = await labels(client, u, position(MAIN, "[verdict in", 9))
    assert {'stop="', "max_tokens=", ": int", 'regex=r"'} <= set(hole)


async def test_completion_while_the_text_does_not_parse(
    client: LanguageClient, project: Path
) -> None:
    from promptflow_dsl.syntax.clauses import specs

    path = project / "main.pflow"
    u = await open_doc(client, path)
    # an unsaved edit: a record access being typed in the flow, and an empty line in a prompt
    typing = MAIN.replace("  return s\n", "  x = v.\n  return s\n").replace(
        '  template """Claim', '  \n  template """Claim'
    )
    client.text_document_did_change(
        lsp.DidChangeTextDocumentParams(
            lsp.VersionedTextDocumentIdentifier(version=2, uri=u),
            [lsp.TextDocumentContentChangeWholeDocument(text=typing)],
        )
    )
    assert await labels(client, u, position(typing, "x = v.", 6)) == ["label", "score"]
    clause_words = await labels(client, u, position(typing, "  \n  template", 2))
    assert clause_words == list(specs()["sketch"])
    top = await labels(client, u, lsp.Position(len(typing.split("\n")) - 1, 0))
    assert {"prompt", "flow", "type", "model", "import", "sketch"} <= set(top)


async def test_definition_of_demos_and_read_text_files(client: LanguageClient,
                                                       project: Path) -> None:
    (project / "demos.jsonl").write_text('{"text": "a", "output": "b"}\n')
    (project / "notes.txt").write_text("notes\n")
    text = (
        'prompt p(text: str) -> str {\n  user "{{ text }}"\n  demos "demos.jsonl"\n}\n\n'
        'flow f() -> str {\n  n = read_text("notes.txt")\n  return n\n}\n'
    )
    path = project / "files.pflow"
    path.write_text(text)
    u = await open_doc(client, path)
    for needle, target in (('"demos.jsonl"', "demos.jsonl"), ('"notes.txt"', "notes.txt")):
        found = await client.text_document_definition_async(
            lsp.DefinitionParams(text_document=doc(u), position=position(text, needle, 2))
        )
        assert isinstance(found, list) and found, needle
        assert found[0].uri == uri(project / target)
