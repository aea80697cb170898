"""The names in scope at a position and their types: a handler's parameters (what its
templates see), a flow's or test's local variables (typed by the checker), and the
fields of records reached through dotted names."""

from __future__ import annotations

from ..check.program import CheckedModule
from ..lang.types import OptionalType, RecordType, Type
from ..syntax import ast
from .positions import contains


def enclosing_decl(module: ast.Module | None, line: int, col: int) -> ast.Decl | None:
    """The top-level declaration whose span holds 1-based ``line``:``col``."""
    if module is None:
        return None
    return next((d for d in module.decls if contains(d.span, line, col)), None)


def params(decl: ast.Decl | None, cm: CheckedModule | None) -> dict[str, Type | None]:
    """A handler's parameters (the variables of its templates) with their types."""
    if not isinstance(decl, ast.HandlerDecl):
        return {}
    info = cm.handlers.get(decl.name) if cm is not None else None
    if info is not None and info.decl is decl:
        return {p.name: p.type for p in info.signature.params}
    if info is not None:  # the same declaration from an earlier parse
        return {p.name: p.type for p in info.signature.params}
    return {p.name: None for p in decl.params}


def locals_of(decl: ast.Decl | None, cm: CheckedModule | None) -> dict[str, Type | None]:
    """Parameters and local variables (``x = ...`` in a flow or a test) with their types."""
    out = params(decl, cm)
    body: tuple = ()
    if isinstance(decl, ast.TestDecl):
        body = decl.body
    elif decl is not None and hasattr(decl, "body"):
        body = decl.body
    for stmt in body:
        if isinstance(stmt, ast.Assign):
            out[stmt.name] = cm.expr_types.get(stmt.value.span) if cm is not None else None
    return out


def strip_optional(t: Type | None) -> Type | None:
    return t.inner if isinstance(t, OptionalType) else t


def follow(root: Type | None, path: list[str]) -> Type | None:
    """The type reached from ``root`` through record fields ``path``."""
    t = root
    for name in path:
        t = strip_optional(t)
        if not isinstance(t, RecordType):
            return None
        f = t.field(name)
        if f is None:
            return None
        t = f.type
    return t


def fields(t: Type | None) -> list[tuple[str, Type]]:
    t = strip_optional(t)
    if isinstance(t, RecordType):
        return [(f.name, f.type) for f in t.fields]
    return []
