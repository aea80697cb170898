"""The syntax of ``route`` (build stage): ``route NAME(params) -> T { clauses, experts }``,
an ``expert NAME [when EXPR] [-> handler] [{ clauses }]`` per expert, or
``experts auto from "FILE" max K``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...diagnostics import Span
from ...syntax import ast
from ...syntax.clauses import COMMON, Clause, ClauseSpec, as_expr, as_name, as_ref, as_str
from .ast import AutoExperts, Expert, RouteDecl

if TYPE_CHECKING:  # pragma: no cover
    from ...syntax.builder import Builder

CLAUSES: dict[str, ClauseSpec] = {
    "route": {**COMMON, "by": ("by", as_name), "embed": ("embed", as_ref),
              "protocol": ("protocol", as_name)},
    "expert": {"instruction": ("instruction", as_str), "demos": ("demos", as_str),
               "model": ("model", as_ref), "when": ("when", as_expr)},
}


@dataclass(frozen=True)
class _Part:
    """A part of an expert's header or its body, before the expert is assembled."""

    kind: str  # when | delegate | body
    value: Any = None
    span: Span | None = None


def expert_when(b: Builder, meta: Any, children: list[Any]) -> _Part:
    return _Part("when", children[0])


def expert_delegate(b: Builder, meta: Any, children: list[Any]) -> _Part:
    return _Part("delegate", children[0])


def expert_body(b: Builder, meta: Any, children: list[Any]) -> _Part:
    return _Part("body", list(children), b.span(meta))


def expert(b: Builder, meta: Any, children: list[Any]) -> Expert:
    tok = children[0]
    parts = {m.kind: m for m in children[1:]}
    fields: dict[str, Any] = {}
    if "body" in parts:
        fields = b.clauses("expert", str(tok.value), parts["body"].value)
    when = parts["when"].value if "when" in parts else None
    if "when" in fields:  # `when` written in the body: the same rule as in the header
        body_when = fields.pop("when")
        if when is None:
            when = body_when
        else:
            clause = next(c for c in parts["body"].value
                          if isinstance(c, Clause) and c.word == "when")
            b.error(clause.word_span, f"expert '{tok.value}' has `when` both after its name "
                                      f"and in its body: keep one")
    delegate = parts["delegate"].value if "delegate" in parts else None
    if delegate is not None and "instruction" in fields:
        b.error(fields["instruction"].span,
                f"expert '{tok.value}' delegates to a handler and cannot also have an instruction")
    return Expert(b.span(meta), str(tok.value), b.token_span(tok), when, delegate, **fields)


def experts_auto(b: Builder, meta: Any, children: list[Any]) -> AutoExperts:
    path, k = children
    return AutoExperts(b.span(meta), path, ast.Int(b.token_span(k), b.int_value(k)))


def route_decl(b: Builder, meta: Any, children: list[Any]) -> RouteDecl:
    head = b.header(meta, children)
    items = children[3:]
    experts = tuple(i for i in items if isinstance(i, Expert))
    autos = [i for i in items if isinstance(i, AutoExperts)]
    clauses = [i for i in items if isinstance(i, Clause)]
    fields = b.clauses("route", head["name"], clauses)
    for extra in autos[1:]:
        b.error(extra.span, "duplicate `experts auto` clause")
    if autos and experts:
        b.error(autos[0].span, "a route has either `experts auto` or `expert` blocks, not both")
    if not autos and not experts:
        b.error(head["name_span"], f"route '{head['name']}' has no experts")
    seen: dict[str, Expert] = {}
    for e in experts:
        if e.name in seen:
            b.error(e.name_span, f"duplicate expert '{e.name}'")
        seen[e.name] = e
    fields.setdefault("by", None)
    return RouteDecl(**head, experts=experts, auto=autos[0] if autos else None, **fields)


RULES = {"expert_when": expert_when, "expert_delegate": expert_delegate,
         "expert_body": expert_body, "expert": expert, "experts_auto": experts_auto,
         "route_decl": route_decl}
