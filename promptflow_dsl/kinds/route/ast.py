"""The AST of a ``route`` declaration and its experts (build stage)."""

from __future__ import annotations

from dataclasses import dataclass

from ...diagnostics import Span
from ...syntax.ast import Expr, HandlerDecl, Int, Name, Node, RecordExpr, Ref, Str


@dataclass(frozen=True)
class Expert(Node):
    name: str
    name_span: Span
    when: Expr | None = None
    delegate: Ref | None = None
    instruction: Str | None = None
    demos: Str | None = None
    model: Ref | None = None


@dataclass(frozen=True)
class AutoExperts(Node):
    path: Str
    max_k: Int


@dataclass(frozen=True)
class RouteDecl(HandlerDecl):
    by: Name | None
    experts: tuple[Expert, ...]
    auto: AutoExperts | None = None
    model: Ref | None = None
    embed: Ref | None = None
    settings: RecordExpr | None = None
    protocol: Name | None = None  # `protocol mop`: the reference mode (None: pflow's)

    kind = "route"
