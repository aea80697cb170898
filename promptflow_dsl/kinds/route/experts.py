"""A route's experts, as the runtime, ``pflow route explain`` and ``pflow optimize`` see them.

:func:`route_spec` reads what the checker recorded for a ``route`` handler
(its :class:`~.details.RouteDetails`: the router, the embedder, each expert's
instruction, demos, delegate and model) together with the declaration (``when`` expressions and spans)
into a :class:`RouteSpec`.  Automatic experts (``experts auto``) are not known until
the demos are clustered: :func:`auto_experts` makes ``expert_1`` ... ``expert_K`` from
an assignment, with empty instructions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from ...check.program import HandlerInfo
from ...diagnostics import Span
from ...syntax import ast
from .ast import RouteDecl
from .details import ExpertDetails, RouteDetails

DEFAULT_RETRIES = 2


@dataclass(frozen=True)
class Expert:
    """One expert: an instruction with demos, or a delegate handler (``delegate`` key)."""

    name: str
    instruction: str = ""
    demos: tuple[dict[str, Any], ...] = ()
    delegate: str | None = None
    model: str | None = None  # the expert's own `model` clause
    when: ast.Expr | None = None
    span: Span | None = None  # the expert's name
    delegate_span: Span | None = None

    @property
    def inputs(self) -> list[str]:
        return [str(d["input"]) for d in self.demos]

    def with_instruction(self, instruction: str) -> Expert:
        return replace(self, instruction=instruction)


@dataclass
class RouteSpec:
    """What a route is made of.  ``experts`` is in the order written (rules are tried
    in this order); it is empty for ``experts auto`` until the demos are assigned."""

    h: HandlerInfo
    name: str  # the route's display name
    param: str
    by: str
    experts: list[Expert]
    model: str | None = None  # the route's `model` clause (llm router; experts' fallback)
    embed: str | None = None  # the route's `embed` clause
    retries: int = DEFAULT_RETRIES
    params: dict[str, Any] = field(default_factory=dict)
    auto_rows: list[dict[str, Any]] | None = None
    auto_max_k: int = 0
    auto_path: str | None = None
    protocol: str = "pflow"  # pflow | mop

    def expert(self, name: str) -> Expert:
        return next(e for e in self.experts if e.name == name)

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.experts]

    def model_of(self, expert: Expert) -> str | None:
        """The model an instruction expert answers on: its own, else the route's, else default."""
        return expert.model or self.model


def route_spec(h: HandlerInfo, name: str | None = None) -> RouteSpec:
    """The spec of a checked ``route`` handler."""
    decl, d = h.decl, h.details
    assert isinstance(decl, RouteDecl) and isinstance(d, RouteDetails), h.kind
    experts = []
    for ex in decl.experts:
        info = d.experts.get(ex.name, ExpertDetails())
        experts.append(Expert(
            name=ex.name, instruction=info.instruction or "", demos=tuple(info.demos or ()),
            delegate=info.delegate, model=info.model, when=ex.when, span=ex.name_span,
            delegate_span=ex.delegate.span if ex.delegate is not None else None))
    auto = d.auto
    return RouteSpec(
        h=h, name=name or h.name, param=h.signature.params[0].name, by=d.by or "embedding",
        experts=experts, model=d.model, embed=d.embed, retries=d.retries, params=dict(d.params),
        auto_rows=list(auto.demos) if auto is not None and auto.demos is not None else None,
        auto_max_k=auto.max_k if auto is not None else 0,
        auto_path=auto.path if auto is not None else None, protocol=d.protocol)


def by_embedding(h: HandlerInfo) -> bool:
    """Whether route ``h`` routes by embedding (its demos are prepared first)."""
    return isinstance(h.details, RouteDetails) and h.details.by == "embedding"


def auto_experts(spec: RouteSpec, labels: list[int]) -> list[Expert]:
    """``expert_1`` ... ``expert_K`` from a cluster label per automatic demo row."""
    rows = spec.auto_rows or []
    k = max(labels, default=-1) + 1
    groups: list[list[dict[str, Any]]] = [[] for _ in range(k)]
    for row, lab in zip(rows, labels, strict=True):
        groups[lab].append(row)
    span = spec.h.decl.auto.span if isinstance(spec.h.decl, RouteDecl) and spec.h.decl.auto \
        else spec.h.decl.name_span
    return [Expert(name=f"expert_{i + 1}", demos=tuple(g), span=span) for i, g in enumerate(groups)]


def output_text(value: Any) -> str:
    """A demo's output as the assistant turn shows it: text as it is, else JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)
