"""Rename a handler or a type everywhere in its project.

The new name must be an identifier, no built-in type or function, and free in the
declaring module's namespace (handlers, hooks and import aliases share one; types have
their own).  Declarations of the standard library are not renamed.
"""

from __future__ import annotations

import re

from lsprotocol import types as lsp

from ..check.builtins import BUILTINS, COUNTERS
from ..check.env import SCALARS
from ..kinds.registry import KINDS
from .analysis import Analysis
from .convert import Ranges
from .documents import DocumentStore, path_to_uri
from .index import HANDLER, HOOK, IMPORT, TYPE, Occurrence, names_of
from .navigate import symbol_at
from .project import project_index

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: words a declaration name cannot take (they start declarations)
RESERVED = frozenset({*KINDS, "type", "model", "import", "hook", "test", "eval", "as", "return",
                      "true", "false", "none", "and", "or", "not", "in", "if", "else", "for",
                      "try", "mock", "expect", "live", "contains"})


class RenameRefused(Exception):
    """The rename cannot be done; the message says why."""


def renamable(analysis: Analysis, pos: lsp.Position) -> Occurrence:
    """The handler or type occurrence at ``pos``.

    Raises :class:`RenameRefused` when there is none, or it is declared in the standard
    library.
    """
    occ = symbol_at(analysis, pos)
    if occ is None or occ.symbol.space not in (HANDLER, TYPE):
        raise RenameRefused("only a handler or a type can be renamed")
    lm = analysis.load.modules.get(occ.symbol.module)
    if lm is None or lm.std_name is not None or lm.path is None:
        raise RenameRefused(f"'{occ.symbol.name}' is declared in the standard library")
    return occ


def check_name(analysis: Analysis, occ: Occurrence, new: str) -> None:
    """Raises :class:`RenameRefused` when ``new`` cannot name the symbol."""
    if not _IDENT.match(new):
        raise RenameRefused(f"'{new}' is not a name")
    if new in RESERVED:
        raise RenameRefused(f"'{new}' is a keyword")
    symbol = occ.symbol
    if symbol.space == TYPE and new in SCALARS:
        raise RenameRefused(f"'{new}' is a built-in type")
    if symbol.space == HANDLER and (new in BUILTINS or new in COUNTERS):
        raise RenameRefused(f"'{new}' is a built-in function")
    lm = analysis.load.modules[symbol.module]
    names = names_of(lm.module)
    spaces = (TYPE,) if symbol.space == TYPE else (HANDLER, HOOK, IMPORT)
    for space in spaces:
        if new in names.get(space, {}) and new != symbol.name:
            decl = names[space][new]
            raise RenameRefused(f"'{new}' is already declared in {lm.source.uri} "
                                f"(line {decl.name_span.line})")


def rename(store: DocumentStore, analysis: Analysis, pos: lsp.Position, new: str,
           ranges: Ranges) -> lsp.WorkspaceEdit:
    """The edits renaming the symbol at ``pos`` to ``new`` in every file of the project.

    Raises :class:`RenameRefused`.
    """
    occ = renamable(analysis, pos)
    check_name(analysis, occ, new)
    changes: dict[str, list[lsp.TextEdit]] = {}
    for o in project_index(store, analysis).occurrences(occ.symbol):
        loc = ranges.location(o.span)
        changes.setdefault(loc.uri, []).append(lsp.TextEdit(loc.range, new))
    return lsp.WorkspaceEdit(changes=changes)


def prepare(analysis: Analysis, pos: lsp.Position, ranges: Ranges) -> lsp.Range:
    """The range of the name to rename. Raises :class:`RenameRefused`."""
    return ranges.range(renamable(analysis, pos).span)


__all__ = ["RenameRefused", "check_name", "prepare", "rename", "renamable", "path_to_uri"]
