"""What the estimator needs to know about each handler kind, read in one place.

One small function per kind gives the facts that decide its model calls: the kind's
typed ``Details`` (``kinds/<kind>/details.py``: retries, limits, the model it names,
its parameters...) and, for a sketch, its template. A route's facts come from
``kinds.route.experts.route_spec``, a hook's from its ``HookInfo``. When a kind grows
an estimate of its own, its function moves into its package.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..check.program import HandlerInfo, HookInfo
from ..kinds.decompose.details import DecomposeDetails
from ..kinds.prompt.details import PromptDetails
from ..kinds.sketch.details import SketchDetails
from ..syntax import ast


def prompt_facts(h: HandlerInfo) -> PromptDetails:
    assert isinstance(h.details, PromptDetails), h.kind
    return h.details


def decompose_facts(h: HandlerInfo) -> DecomposeDetails:
    assert isinstance(h.details, DecomposeDetails), h.kind
    return h.details


def sketch_facts(h: HandlerInfo) -> tuple[SketchDetails, str]:
    """The sketch's details and its template text."""
    from ..kinds.sketch.ast import SketchDecl

    assert isinstance(h.details, SketchDetails) and isinstance(h.decl, SketchDecl), h.kind
    return h.details, h.decl.template.value if h.decl.template is not None else ""


@dataclass(frozen=True)
class HookFacts:
    max_fires: int
    trigger_is_call: bool  # a call trigger is asked at every sentence end
    trigger: ast.Expr | None
    condition: ast.Expr | None
    program: ast.Expr | None


def hook_facts(hook: HookInfo) -> HookFacts:
    decl = hook.decl
    return HookFacts(hook.max_fires, isinstance(decl.trigger, ast.Call), decl.trigger,
                     decl.condition, decl.program)
