"""The plan of a ``flow`` (plan stage): one step per statement, one per handler call
nested in a statement, data edges from what each reads (``plan/planner.py`` lowers
the expressions)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .ast import FlowDecl

if TYPE_CHECKING:  # pragma: no cover
    from ...check.program import HandlerInfo
    from ...plan.planner import PlanBuilder


def plan(builder: PlanBuilder, handler: HandlerInfo) -> None:
    decl = handler.decl
    assert isinstance(decl, FlowDecl)
    builder.flow(decl.body)
