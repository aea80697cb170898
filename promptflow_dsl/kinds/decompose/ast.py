"""The AST of a ``decompose`` declaration (build stage)."""

from __future__ import annotations

from dataclasses import dataclass

from ...syntax.ast import Expr, HandlerDecl, Int, Name, Node, RecordExpr, Ref, Str


@dataclass(frozen=True)
class HandlerBinding(Node):
    name: str  # the name the decomposer writes in `[name]`
    target: Ref


@dataclass(frozen=True)
class DecomposeDecl(HandlerDecl):
    handlers: tuple[HandlerBinding, ...]
    prompt: Str | None  # plain string: a file path; text string: inline few-shot text
    model: Ref | None = None
    settings: RecordExpr | None = None
    max_steps: Int | None = None
    max_depth: Int | None = None
    max_calls: Int | None = None
    protocol: Name | None = None  # pflow (default) | decomp (the published code's behaviour)
    search: Expr | None = None  # greedy (default) | beam(N): best-first over decompositions

    kind = "decompose"
