"""The syntax of ``decompose`` (build stage): ``decompose NAME(params) -> T { clauses }``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...syntax import ast
from ...syntax.clauses import (
    COMMON,
    Bad,
    ClauseSpec,
    as_int,
    as_name,
    as_ref,
    as_str,
    has_clause,
)
from .ast import DecomposeDecl, HandlerBinding

if TYPE_CHECKING:  # pragma: no cover
    from ...syntax.builder import Builder


def as_bindings(v: ast.Expr) -> tuple[HandlerBinding, ...]:
    if isinstance(v, ast.RecordExpr):
        return tuple(HandlerBinding(e.span, e.key, as_ref(e.value)) for e in v.entries)
    if isinstance(v, ast.ListExpr):
        out = []
        for item in v.items:
            ref = as_ref(item)
            out.append(HandlerBinding(item.span, ref.parts[-1], ref))
        return tuple(out)
    raise Bad("expected { name: handler, ... } or [handler, ...]")


def as_search(v: ast.Expr) -> ast.Expr:
    if isinstance(v, ast.Name):
        return v
    if (isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and len(v.args) == 1
            and not v.kwargs and isinstance(v.args[0], ast.Int)):
        return v
    raise Bad("expected greedy or beam(N)")


CLAUSES: dict[str, ClauseSpec] = {
    "decompose": {**COMMON, "handlers": ("handlers", as_bindings), "prompt": ("prompt", as_str),
                  "max_steps": ("max_steps", as_int), "max_depth": ("max_depth", as_int),
                  "max_calls": ("max_calls", as_int), "protocol": ("protocol", as_name),
                  "search": ("search", as_search)},
}


def decompose_decl(b: Builder, meta: Any, children: list[Any]) -> DecomposeDecl:
    head = b.header(meta, children)
    fields = b.clauses("decompose", head["name"], children[3:])
    for required in ("handlers", "prompt"):
        if not has_clause(children[3:], required):
            b.error(head["name_span"], f"decompose '{head['name']}' needs a `{required}` clause")
    fields.setdefault("handlers", ())
    fields.setdefault("prompt", None)
    return DecomposeDecl(**head, **fields)


RULES = {"decompose_decl": decompose_decl}
