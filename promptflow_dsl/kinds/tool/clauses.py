"""The syntax of ``tool`` (build stage): ``tool NAME(params) -> T = python "module:function"``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...syntax.clauses import ClauseSpec
from .ast import ToolDecl

if TYPE_CHECKING:  # pragma: no cover
    from ...syntax.builder import Builder

CLAUSES: dict[str, ClauseSpec] = {}


def tool_decl(b: Builder, meta: Any, children: list[Any]) -> ToolDecl:
    return ToolDecl(**b.header(meta, children), target=children[3])


RULES = {"tool_decl": tool_decl}
