"""The AST of a ``flow`` declaration (build stage); its statements (``Assign``,
``Return``) are the language's own (``syntax.ast``), shared with tests."""

from __future__ import annotations

from dataclasses import dataclass

from ...syntax.ast import Assign, HandlerDecl, Return


@dataclass(frozen=True)
class FlowDecl(HandlerDecl):
    body: tuple[Assign | Return, ...]

    kind = "flow"
