"""Hover, go to definition and find references."""

from __future__ import annotations

from pathlib import Path

from lsprotocol import types as lsp

from ..syntax import ast
from .analysis import Analysis
from .context import open_template, word_at
from .convert import Ranges
from .describe import code, describe
from .documents import DocumentStore, path_to_uri
from .index import IMPORT, ModuleIndex, Occurrence, Symbol, find_decl, index_module
from .positions import Lines
from .project import project_index
from .scope import enclosing_decl, follow, locals_of, params


def entry_index(analysis: Analysis) -> ModuleIndex:
    modules = analysis.load.modules

    def lookup(key: str) -> ast.Module | None:
        lm = modules.get(key)
        return lm.module if lm is not None else None

    return index_module(analysis.entry, analysis.checked(analysis.entry_key), lookup)


def _position(analysis: Analysis, pos: lsp.Position) -> tuple[int, int, int]:
    lines = Lines(analysis.text)
    line, col = lines.span_position(pos.line, pos.character)
    return line, col, lines.offset(pos.line, pos.character)


def hover(analysis: Analysis, pos: lsp.Position) -> str | None:
    """The hover text at ``pos``: a template variable's type inside ``{{ }}``, a symbol's
    declaration and comment, or a local variable's type."""
    line, col, offset = _position(analysis, pos)
    module = analysis.entry.module
    cm = analysis.checked(analysis.entry_key)
    decl = enclosing_decl(module, line, col)
    found = word_at(analysis.text, offset)
    if open_template(analysis.text, offset) is not None and found is not None:
        root, *rest = found[0].split(".")
        scope = params(decl, cm)
        if root in scope:
            t = follow(scope[root], rest)
            return code(f"{found[0]}: {t.show() if t is not None else '?'}") + \
                "\n\ntemplate variable"
    occ = entry_index(analysis).at(line, col)
    if occ is not None:
        return describe(analysis, occ.symbol)
    if found is not None:
        root, *rest = found[0].split(".")
        scope = locals_of(decl, cm)
        if root in scope and scope[root] is not None:
            t = follow(scope[root], rest)
            if t is not None:
                return code(f"{found[0]}: {t.show()}")
    return None


def definition(analysis: Analysis, pos: lsp.Position, ranges: Ranges) -> list[lsp.Location]:
    """Where the symbol (or file) at ``pos`` is declared."""
    line, col, _ = _position(analysis, pos)
    index = entry_index(analysis)
    ref = index.file_at(line, col)
    if ref is not None:
        return [_file_location(ref.path)]
    occ = index.at(line, col)
    if occ is None:
        return []
    return _declaration(analysis, occ.symbol, ranges)


def _file_location(path: Path) -> lsp.Location:
    start = lsp.Position(0, 0)
    return lsp.Location(path_to_uri(path), lsp.Range(start, start))


def _declaration(analysis: Analysis, symbol: Symbol, ranges: Ranges) -> list[lsp.Location]:
    lm = analysis.load.modules.get(symbol.module)
    if lm is None:
        return []
    decl = find_decl(lm.module, symbol)
    if isinstance(decl, ast.ImportDecl):
        target = lm.imports.get(decl.name)
        if target is not None:
            return [_file_location(Path(target))]
    if decl is None:
        return []
    return [ranges.location(decl.name_span)]


def symbol_at(analysis: Analysis, pos: lsp.Position) -> Occurrence | None:
    line, col, _ = _position(analysis, pos)
    return entry_index(analysis).at(line, col)


def references(store: DocumentStore, analysis: Analysis, pos: lsp.Position, ranges: Ranges,
               include_declaration: bool) -> list[lsp.Location]:
    """Every occurrence in the project of the symbol at ``pos``."""
    occ = symbol_at(analysis, pos)
    if occ is None:
        return []
    symbol = occ.symbol
    if symbol.space == IMPORT:  # an alias is local to its module
        occs = [o for o in entry_index(analysis).occurrences if o.symbol == symbol]
    else:
        occs = project_index(store, analysis).occurrences(symbol)
    out = []
    for o in sorted(occs, key=lambda o: o.span):
        if o.is_decl and not include_declaration:
            continue
        out.append(ranges.location(o.span))
    return out
