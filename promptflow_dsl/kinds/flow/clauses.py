"""The syntax of ``flow`` (build stage): ``flow NAME(params) -> T { NAME = EXPR ... return EXPR }``
(the statements are built by the builder's ``assign`` and ``return_stmt``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...syntax.clauses import ClauseSpec
from .ast import FlowDecl

if TYPE_CHECKING:  # pragma: no cover
    from ...syntax.builder import Builder

CLAUSES: dict[str, ClauseSpec] = {}


def flow_decl(b: Builder, meta: Any, children: list[Any]) -> FlowDecl:
    return FlowDecl(**b.header(meta, children), body=tuple(children[3:]))


RULES = {"flow_decl": flow_decl}
