"""The AST of a ``sketch`` declaration (build stage)."""

from __future__ import annotations

from dataclasses import dataclass

from ...syntax.ast import Expr, HandlerDecl, Int, RecordExpr, Ref, Str


@dataclass(frozen=True)
class SketchDecl(HandlerDecl):
    template: Str | None
    decoder: Expr | None = None  # Name (sequential | interleaved | var) or Call (var(n), beam_var(n), beam(n))
    model: Ref | None = None
    settings: RecordExpr | None = None
    retries: Int | None = None

    kind = "sketch"
