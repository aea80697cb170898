"""The AST of a ``tool`` declaration (build stage)."""

from __future__ import annotations

from dataclasses import dataclass

from ...syntax.ast import HandlerDecl, Str


@dataclass(frozen=True)
class ToolDecl(HandlerDecl):
    target: Str  # "module:function" or "file_stem:function"

    kind = "tool"
