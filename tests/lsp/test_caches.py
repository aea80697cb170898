"""The server's caches change nothing: on every program of the corpus (and the golden
error files), parsing declaration by declaration gives the whole-file AST and
diagnostics, and checking with cached parses and cached imported modules gives the
diagnostics of ``check_source``, cold and warm."""

from __future__ import annotations

from pathlib import Path

import pytest
from corpus_paths import REPO, corpus_files

from promptflow_dsl.check import check_source
from promptflow_dsl.check.checker import project_for
from promptflow_dsl.lsp.analysis import ParseCache, analyse
from promptflow_dsl.lsp.chunks import ChunkCache, decl_starts
from promptflow_dsl.lsp.incremental import ModuleCheckCache
from promptflow_dsl.syntax import SourceFile, parse_module
from promptflow_dsl.syntax.source import display_name, normalize

FILES = corpus_files() + sorted((REPO / "tests" / "golden").rglob("*.pflow"))


def _id(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else path.name


def _source(path: Path) -> SourceFile:
    text = normalize(path.read_bytes().decode("utf-8", errors="replace"))
    return SourceFile(display_name(path), text, path.resolve())


@pytest.mark.parametrize("path", FILES, ids=lambda p: _id(p))
def test_chunked_parse_is_the_whole_parse(path: Path) -> None:
    source = _source(path)
    whole = parse_module(source)
    chunks = ChunkCache()
    assert chunks.parse(source, parse_module) == whole
    assert chunks.parse(source, parse_module) == whole  # from the cache


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: _id(p))
def test_cached_check_is_the_check(path: Path) -> None:
    source = _source(path)
    _, expected = check_source(source, project_for(path))
    parse, modules = ParseCache(), ModuleCheckCache()
    for _ in range(2):
        got = analyse(path, source.text, 1, {}, parse, None, modules)
        assert sorted(got.diagnostics, key=lambda d: d.sort_key()) == \
            sorted(expected, key=lambda d: d.sort_key())


def test_declarations_start_at_column_zero_outside_brackets_and_strings() -> None:
    text = ('# intro\n\nprompt p(x: str) -> str = """\nflow not_a_decl\n"""\n'
            'type T {\n  a: str\n}\nflow f(\nx: str) -> str {\n  return x\n}\n')
    assert decl_starts(text) == [2, 5, 8]
    assert decl_starts("} prompt p() -> str = \"x\"\n") is None
