"""What each name in a module refers to: declarations and references by position.

:func:`index_module` walks a module's AST and records every occurrence of a
declaration's name (its declaration and each reference: calls, handler references in
clauses, type names, model names, ``alias.name``) as a :class:`Symbol`, plus the
strings that name files (imports, prompt files, demos, shots, data, the literal path
of ``read_text`` / ``read_jsonl``).  Call sites take
what the checker resolved them to (``CheckedModule.resolutions``) when it is known;
other names are looked up in the module's namespaces as the checker does (a flow's
parameters and local variables shadow nothing here: they are not symbols).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..check.env import SCALARS
from ..check.loader import LoadedModule
from ..check.program import CheckedModule
from ..diagnostics import Span
from ..syntax import ast

#: the spaces a symbol lives in
HANDLER, HOOK, TYPE, MODEL, IMPORT, EVAL, TEST = (
    "handler", "hook", "type", "model", "import", "eval", "test")

#: clause fields whose plain string names a file beside the module
FILE_FIELDS = frozenset({"path", "demos", "shots", "prompt"})
#: built-in functions whose literal first argument names a file beside the module
FILE_FUNCTIONS = frozenset({"read_text", "read_jsonl"})


@dataclass(frozen=True)
class Symbol:
    module: str  # the declaring module's key (its resolved path as text)
    space: str
    name: str


@dataclass(frozen=True)
class Occurrence:
    span: Span  # the name itself (what a rename replaces)
    symbol: Symbol
    is_decl: bool = False


@dataclass(frozen=True)
class FileRef:
    span: Span
    path: Path


@dataclass
class ModuleIndex:
    key: str
    occurrences: list[Occurrence] = field(default_factory=list)
    files: list[FileRef] = field(default_factory=list)

    def at(self, line: int, col: int) -> Occurrence | None:
        from .positions import contains

        best = None
        for occ in self.occurrences:
            if contains(occ.span, line, col):
                if best is None or _size(occ.span) < _size(best.span):
                    best = occ
        return best

    def file_at(self, line: int, col: int) -> FileRef | None:
        from .positions import contains

        return next((f for f in self.files if contains(f.span, line, col)), None)


def _size(span: Span) -> tuple[int, int]:
    return span.end_line - span.line, span.end_col - span.col


#: the space of each kind of declaration
_DECL_SPACES: tuple[tuple[type[ast.Decl], str], ...] = (
    (ast.HandlerDecl, HANDLER), (ast.HookDecl, HOOK), (ast.TypeDecl, TYPE),
    (ast.ModelDecl, MODEL), (ast.ImportDecl, IMPORT), (ast.EvalDecl, EVAL),
    (ast.TestDecl, TEST))
#: the spaces a plain name in an expression or clause may refer to, in lookup order
VALUE_SPACES = (HANDLER, HOOK, IMPORT)


def space_of(decl: ast.Decl) -> str | None:
    return next((space for kind, space in _DECL_SPACES if isinstance(decl, kind)), None)


def names_of(module: ast.Module | None) -> dict[str, dict[str, ast.Decl]]:
    """The declarations of ``module`` by space and name (the first of duplicates)."""
    out: dict[str, dict[str, ast.Decl]] = {}
    for decl in module.decls if module is not None else ():
        space = space_of(decl)
        if space is not None:
            out.setdefault(space, {}).setdefault(decl.name, decl)
    return out


def find_decl(module: ast.Module | None, symbol: Symbol) -> ast.Decl | None:
    return names_of(module).get(symbol.space, {}).get(symbol.name)


def lookup(names: dict[str, dict[str, ast.Decl]], module: str, name: str,
           spaces: tuple[str, ...]) -> Symbol | None:
    """``name`` as a symbol of ``module`` (its declarations ``names``, by
    :func:`names_of`) in the first of ``spaces`` that declares it; ``None`` when none
    does."""
    return next((Symbol(module, space, name) for space in spaces
                 if name in names.get(space, {})), None)


def tail_span(span: Span, name: str) -> Span:
    """The span of the last ``name`` characters of a one-line ``span`` (``alias.T`` -> ``T``)."""
    if span.line == span.end_line and span.end_col - span.col >= len(name):
        return Span(span.file, span.line, span.end_col - len(name), span.end_line, span.end_col)
    return span


def head_span(span: Span, alias: str) -> Span:
    """The span of the first ``alias`` characters of ``span`` (``alias.T`` -> ``alias``)."""
    return Span(span.file, span.line, span.col, span.line, span.col + len(alias))


def _children(node: Any) -> Iterator[tuple[str, Any]]:
    for f in dataclasses.fields(node):
        if f.name in ("span", "origins"):
            continue
        value = getattr(node, f.name)
        if isinstance(value, tuple):
            for item in value:
                if isinstance(item, ast.Node):
                    yield f.name, item
        elif isinstance(value, ast.Node):
            yield f.name, value


def _locals(decl: ast.Decl) -> set[str]:
    out: set[str] = set()
    if isinstance(decl, ast.HandlerDecl):
        out.update(p.name for p in decl.params)
    if isinstance(decl, ast.EvalDecl):
        out.update(("row", "out"))
    stack: list[Any] = [decl]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Assign):
            out.add(node.name)
        elif isinstance(node, ast.Comprehension):
            out.add(node.var)
        stack.extend(child for _, child in _children(node))
    return out


Lookup = Callable[[str], "ast.Module | None"]


class _Indexer:
    def __init__(self, lm: LoadedModule, cm: CheckedModule | None, modules: Lookup) -> None:
        self.lm = lm
        self.cm = cm
        self.modules = modules
        self.own = names_of(lm.module)
        self.out = ModuleIndex(lm.key)
        self.folder = lm.path.parent if lm.path is not None else None

    def add(self, span: Span, symbol: Symbol, is_decl: bool = False) -> None:
        self.out.occurrences.append(Occurrence(span, symbol, is_decl))

    def declared(self, name: str, spaces: tuple[str, ...] = VALUE_SPACES) -> Symbol | None:
        """``name`` declared in this module, in the first of ``spaces`` that has it."""
        return lookup(self.own, self.lm.key, name, spaces)

    def imported(self, alias: str, name: str, spaces: tuple[str, ...]) -> Symbol | None:
        target = self.lm.imports.get(alias)
        if target is None:
            return None
        return lookup(names_of(self.modules(target)), target, name, spaces)

    def qualified(self, span: Span, alias: str, name: str, spaces: tuple[str, ...]) -> None:
        """``alias.name`` written at ``span``: the name in the imported module, the alias."""
        found = self.imported(alias, name, spaces)
        if found is not None:
            self.add(tail_span(span, name), found)
        self.alias(alias, head_span(span, alias))

    def alias(self, name: str, span: Span) -> None:
        if name in self.lm.imports:
            self.add(span, Symbol(self.lm.key, IMPORT, name))

    def run(self) -> ModuleIndex:
        module = self.lm.module
        if module is None:
            return self.out
        for decl in module.decls:
            space = space_of(decl)
            if space is not None and space != TEST:
                self.add(decl.name_span, Symbol(self.lm.key, space, decl.name), True)
            if isinstance(decl, ast.ImportDecl) and decl.path is not None:
                self.file(decl.path)
            self.walk(decl, _locals(decl))
        return self.out

    def file(self, s: ast.Str) -> None:
        if self.folder is None or s.style == "text" or not s.value:
            return
        try:
            path = (self.folder / s.value).resolve()
            if path.is_file():
                self.out.files.append(FileRef(s.span, path))
        except (OSError, ValueError):
            return

    def ref(self, node: ast.Ref, space: str) -> None:
        if len(node.parts) == 1:
            found = self.declared(node.parts[0], (MODEL,) if space == MODEL else VALUE_SPACES)
            if found is not None:
                self.add(node.span, found)
        elif len(node.parts) == 2:
            alias, name = node.parts
            self.qualified(node.span, alias, name, (MODEL,) if space == MODEL else (HANDLER, HOOK))

    def named_type(self, node: ast.NamedType) -> None:
        if node.name in SCALARS:
            return
        if "." in node.name:
            alias, _, name = node.name.partition(".")
            self.qualified(node.span, alias, name, (TYPE,))
        else:
            found = self.declared(node.name, (TYPE,))
            if found is not None:
                self.add(node.span, found)

    def resolved(self, call: ast.Call) -> Symbol | None | bool:
        """What the checker resolved the call to: a symbol, ``False`` for a built-in,
        ``None`` when it does not know."""
        if self.cm is None:
            return None
        found = self.cm.resolutions.get(call.span)
        if found is None:
            return None
        if found.kind != "handler":
            return False
        module, _, name = found.target.rpartition("::")
        return Symbol(module, HANDLER, name)

    def walk(self, root: Any, local: set[str]) -> None:
        stack: list[tuple[str, Any]] = [("", root)]
        while stack:
            where, node = stack.pop()
            if isinstance(node, ast.Ref):
                self.ref(node, MODEL if where in ("model", "embed") else HANDLER)
                continue
            if isinstance(node, ast.NamedType):
                self.named_type(node)
                continue
            if isinstance(node, ast.Str):
                if where in FILE_FIELDS:
                    self.file(node)
                continue
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.name in FILE_FUNCTIONS and node.args
                    and isinstance(node.args[0], ast.Str)):
                self.file(node.args[0])
            if isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attr)):
                got = self.resolved(node)
                if isinstance(got, Symbol):
                    func = node.func
                    name_span = func.name_span if isinstance(func, ast.Attr) else func.span
                    self.add(name_span, got)
                    if isinstance(func, ast.Attr) and isinstance(func.obj, ast.Name):
                        self.alias(func.obj.name, func.obj.span)
                    stack.extend(c for c in _children(node) if c[1] is not func)
                    continue
                if got is False:
                    stack.extend(c for c in _children(node) if c[1] is not node.func)
                    continue
            if isinstance(node, ast.Name):
                if node.name not in local and where not in ("action", "protocol", "by", "decoder"):
                    found = self.declared(node.name)
                    if found is not None:
                        self.add(node.span, found)
                continue
            if (isinstance(node, ast.Attr) and isinstance(node.obj, ast.Name)
                    and node.obj.name not in local and node.obj.name in self.lm.imports):
                found = self.imported(node.obj.name, node.name, (HANDLER, HOOK, TYPE, MODEL))
                if found is not None:
                    self.add(node.name_span, found)
                self.alias(node.obj.name, node.obj.span)
                continue
            stack.extend(_children(node))


def index_module(lm: LoadedModule, cm: CheckedModule | None, modules: Lookup) -> ModuleIndex:
    """Every symbol occurrence and file reference of ``lm`` (``modules`` finds the AST of
    an imported module by key)."""
    return _Indexer(lm, cm, modules).run()
