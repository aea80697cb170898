"""The AST of a ``sketch`` declaration (build stage)."""

from __future__ import annotations

from dataclasses import dataclass

from ...syntax.ast import Expr, HandlerDecl, Int, RecordExpr, Ref, Str


@dataclass(frozen=True)
class SketchDecl(HandlerDecl):
    template: Str | None
    decoder: Expr | None = None  # Name (sequential | interleaved) or Call (beam(n))
    model: Ref | None = None
    settings: RecordExpr | None = None
    retries: Int | None = None

    kind = "sketch"
