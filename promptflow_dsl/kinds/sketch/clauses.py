"""The syntax of ``sketch`` (build stage): ``sketch NAME(params) -> T { clauses }``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...syntax import ast
from ...syntax.clauses import COMMON, Bad, ClauseSpec, as_int, as_str, has_clause
from .ast import SketchDecl

if TYPE_CHECKING:  # pragma: no cover
    from ...syntax.builder import Builder


def as_decoder(v: ast.Expr) -> ast.Expr:
    if isinstance(v, ast.Name):
        return v
    if (isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and len(v.args) == 1
            and not v.kwargs and isinstance(v.args[0], ast.Int)):
        return v
    raise Bad("expected sequential, interleaved, var, var(N), beam_var(N) or beam(N)")


CLAUSES: dict[str, ClauseSpec] = {
    "sketch": {**COMMON, "decoder": ("decoder", as_decoder), "template": ("template", as_str),
               "retries": ("retries", as_int)},
}


def sketch_decl(b: Builder, meta: Any, children: list[Any]) -> SketchDecl:
    head = b.header(meta, children)
    fields = b.clauses("sketch", head["name"], children[3:])
    if not has_clause(children[3:], "template"):
        b.error(head["name_span"], f"sketch '{head['name']}' needs a `template` clause")
    fields.setdefault("template", None)
    return SketchDecl(**head, **fields)


RULES = {"sketch_decl": sketch_decl}
