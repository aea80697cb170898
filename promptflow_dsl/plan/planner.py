"""The plan stage: one handler of a :class:`CheckedProgram` -> a :class:`Plan` (a networkx DAG).

A flow becomes one step per statement (``call``, ``map``, ``branch`` or ``value``),
plus extra steps for handler calls nested inside a statement (``x#1``, ``x#2``...) and
for the calls on each side of a conditional (``x?then``, ``x?else``, guarded), one
``input`` step per parameter and a ``return`` step.  Any other handler kind becomes
its inputs, one ``call`` step and ``return``.  Every handler the plan can reach is a
``handler`` node, linked by ``call`` / ``may_call`` / ``hook`` edges; only ``data``
edges must be acyclic.  See ``README.md`` beside this file for the full contract.
"""

from __future__ import annotations

import threading
import weakref
from collections import deque
from collections.abc import Iterable
from typing import Protocol, cast

from ..check.exprs import free_names
from ..check.program import CheckedProgram, HandlerInfo
from ..diagnostics import Span
from ..kinds import registry
from ..syntax import ast
from .model import Plan, PlanError, PlannedStep, children, short, show_expr

__all__ = ["Plan", "PlanError", "PlannedStep", "build_plan", "plan_for", "handler_nodes"]

_PLANS: dict[int, dict[str, Plan]] = {}  # id(program) -> handler key -> plan
_PLANS_LOCK = threading.Lock()


def plan_for(program: CheckedProgram, handler: HandlerInfo) -> Plan:
    """The plan of ``handler``, built once per program and shared by every caller (the
    library facade, every run of the program); plans are never modified.

    The cache is keyed by the program's identity and kept beside it, not in it: an
    entry goes when its program is garbage-collected.
    """
    key = id(program)
    with _PLANS_LOCK:
        plans = _PLANS.get(key)
        if plans is None:
            plans = _PLANS[key] = {}
            weakref.finalize(program, _PLANS.pop, key, None)
    plan = plans.get(handler.key)
    if plan is None:
        plan = plans[handler.key] = build_plan(program, handler)
    return plan


def build_plan(program: CheckedProgram, handler: HandlerInfo) -> Plan:
    """The execution plan of ``handler`` (a handler of ``program``).

    Raises :class:`PlanError` (with the span of every step on it) if the data edges
    form a cycle; the checker rejects such programs, so this is a safety net.
    """
    b = PlanBuilder(program, handler)
    kind_plan = registry.stage_module(handler.kind, "plan")
    if kind_plan is not None:
        cast(KindPlan, kind_plan).plan(b, handler)
    else:
        b.single()
    return b.finish()


class KindPlan(Protocol):
    """``kinds/<kind>/plan.py``, for a kind whose plan is not inputs → one call → return."""

    def plan(self, builder: PlanBuilder, handler: HandlerInfo) -> None:
        """Add the steps and edges of ``handler`` to ``builder``."""
        ...


def handler_nodes(program: CheckedProgram, roots: Iterable[str]
                  ) -> tuple[dict[str, str], list[PlannedStep], list[tuple[str, str, str]]]:
    """The ``handler`` nodes of every handler reachable from the keys ``roots``.

    Returns (handler key -> node id, the nodes, the edges between them as
    ``(source id, target id, kind)``).  Unknown keys are skipped; never raises.
    """
    known = program.all_handlers()
    ids: dict[str, str] = {}
    nodes: list[PlannedStep] = []
    pending: list[tuple[str, str, str]] = []
    queue = deque(k for k in roots if k in known)
    while queue:
        key = queue.popleft()
        if key in ids:
            continue
        h = known[key]
        name = program.display_name(key)
        nid = f"handler:{name}"
        if any(s.id == nid for s in nodes):  # two modules spelt alike: fall back to the key
            nid = f"handler:{key}"
        ids[key] = nid
        nodes.append(PlannedStep(nid, "handler", f"{h.kind} {name}", h.decl.span, key))
        for target, kind in h.calls:
            if target in known:
                pending.append((key, target, kind))
                queue.append(target)
    return ids, nodes, [(ids[s], ids[t], k) for s, t, k in pending]


class PlanBuilder:
    """Collects steps and edges for one entry handler; ``finish`` assembles the Plan.
    A kind's plan (``kinds/<kind>/plan.py``) calls :meth:`single` or :meth:`flow`."""

    def __init__(self, program: CheckedProgram, handler: HandlerInfo) -> None:
        self.program = program
        self.handler = handler
        self.module = program.module_of(handler.key)
        self.steps: list[PlannedStep] = []
        self.edges: list[tuple[str, str, str]] = []
        self.reads: dict[str, set[str]] = {}  # step id -> variables its own expression reads
        self.feeds: list[tuple[str, str]] = []  # (nested step, step that uses its value)
        self.callees: dict[str, list[str]] = {}  # step id -> handler keys it calls
        self.sides: dict[str, dict[str, str | None]] = {}
        self.binders: dict[str, str] = {}  # variable -> step id
        self.counters: dict[str, int] = {}
        self._calls_memo: dict[int, bool] = {}

    # ------------------------------------------------------------ entries

    def inputs(self) -> None:
        for p, info in zip(self.handler.decl.params, self.handler.signature.params, strict=False):
            sid = f"in:{p.name}"
            self.steps.append(PlannedStep(sid, "input", f"{p.name}: {info.type.show()}", p.span,
                                          binds=p.name, expr=p.default))
            self.binders[p.name] = sid

    def single(self) -> None:
        h = self.handler
        self.inputs()
        args = ", ".join(p.name for p in h.signature.params)
        self.steps.append(PlannedStep(h.name, "call", short(f"{h.name}({args})"), h.decl.name_span,
                                      h.key))
        self.callees[h.name] = [h.key]
        self.steps.append(PlannedStep("return", "return", "return", None))
        self.edges += [(f"in:{p.name}", h.name, "data") for p in h.signature.params]
        self.edges.append((h.name, "return", "data"))

    def flow(self, body: tuple[ast.Assign | ast.Return, ...]) -> None:
        """The handler's inputs, then one step per statement of ``body`` (``name = expr``
        or ``return expr``), with a step for each handler call nested in it."""
        self.inputs()
        for st in body:
            if isinstance(st, ast.Assign):
                self.binders[st.name] = st.name
        for st in body:
            if isinstance(st, ast.Assign):
                self.lower(st.value, st.name, root=st.name, guard=None, binds=st.name,
                           span=st.span)
            else:
                self.lower(st.value, "return", root="return", guard=None, kind="return",
                           span=st.span)

    # ------------------------------------------------------------ expressions

    def target(self, e: ast.Expr) -> str | None:
        """The handler key a call site resolved to, or ``None`` (builtins, non-calls)."""
        if isinstance(e, ast.Call):
            r = self.module.resolutions.get(e.span)
            if r is not None and r.kind == "handler":
                return r.target
        return None

    def calls_in(self, e: ast.Expr) -> list[str]:
        """Handler keys called anywhere inside ``e``, outermost first, without repeats."""
        out: list[str] = []
        stack = [e]
        while stack:
            node = stack.pop()
            t = self.target(node)
            if t is not None and t not in out:
                out.append(t)
            stack.extend(reversed(list(children(node))))
        return out

    def has_calls(self, e: ast.Expr | None) -> bool:
        if e is None:
            return False
        memo = self._calls_memo.get(id(e))
        if memo is None:
            memo = self.target(e) is not None or any(self.has_calls(c) for c in children(e))
            self._calls_memo[id(e)] = memo
        return memo

    def kind_of(self, e: ast.Expr) -> str:
        if self.target(e) is not None:
            return "call"
        if isinstance(e, ast.Comprehension) and (self.has_calls(e.elt) or self.has_calls(e.cond)):
            return "map"
        if isinstance(e, ast.Conditional):
            return "branch"
        return "value"

    def is_boundary(self, e: ast.Expr) -> bool:
        """Whether a nested expression becomes its own step."""
        if isinstance(e, ast.Conditional):
            return self.has_calls(e.then) or self.has_calls(e.orelse)
        if isinstance(e, ast.Try):
            return self.has_calls(e.fallback)
        return self.kind_of(e) in ("call", "map")

    def cut(self, e: ast.Expr, top: bool, names: set[str], subs: list[ast.Expr]) -> None:
        """Collect what ``e`` reads itself (``names``) and its nested steps (``subs``)."""
        if not self.has_calls(e):
            names.update(n.name for n in free_names(e))
        elif not top and self.is_boundary(e):
            subs.append(e)
        elif isinstance(e, ast.Comprehension):
            self.cut(e.iter, False, names, subs)
            for part in (e.elt, e.cond):  # evaluated per item, inside the map
                if part is not None:
                    names.update(n.name for n in free_names(part) if n.name != e.var)
        elif isinstance(e, ast.Conditional):
            self.cut(e.cond, False, names, subs)
            for side in (e.then, e.orelse):
                if not (top and self.has_calls(side)):  # a side with calls has its own steps
                    self.cut(side, False, names, subs)
        elif isinstance(e, ast.Try):
            self.cut(e.expr, False, names, subs)
            if not (top and self.has_calls(e.fallback)):  # a fallback with calls: its own step
                self.cut(e.fallback, False, names, subs)
        elif isinstance(e, ast.Call):
            f = e.func
            if not (isinstance(f, ast.Name) or (isinstance(f, ast.Attr)
                                                 and isinstance(f.obj, ast.Name))):
                self.cut(f, False, names, subs)
            for a in (*e.args, *(k.value for k in e.kwargs)):
                self.cut(a, False, names, subs)
        else:
            for c in children(e):
                self.cut(c, False, names, subs)

    def lower(self, e: ast.Expr, sid: str | None, *, root: str, guard: tuple[str, str] | None,
              binds: str | None = None, kind: str | None = None, span: Span | None = None) -> str:
        """Add the step computing ``e`` (and the steps nested in it); returns its id."""
        kind = kind or self.kind_of(e)
        names: set[str] = set()
        subs: list[ast.Expr] = []
        self.cut(e, kind != "return", names, subs)
        sub_ids = [self.lower(s, None, root=root, guard=guard) for s in subs]
        if sid is None:  # numbered after its own nested steps: ids follow evaluation order
            self.counters[root] = self.counters.get(root, 0) + 1
            sid = f"{root}#{self.counters[root]}"
        handler = None
        if kind == "call":
            handler = self.target(e)
            self.callees[sid] = [handler] if handler else []
        elif kind == "map":
            assert isinstance(e, ast.Comprehension)
            keys = self.calls_in(e.elt) + (self.calls_in(e.cond) if e.cond else [])
            self.callees[sid] = list(dict.fromkeys(keys))
            handler = self.callees[sid][0]
        self.steps.append(PlannedStep(sid, kind, self.label(e, kind, binds, handler),
                                      span or e.span, handler, binds, guard, e))
        self.reads[sid] = names
        self.feeds += [(i, sid) for i in sub_ids]
        if kind == "branch":
            assert isinstance(e, ast.Conditional)
            sides: dict[str, str | None] = {}
            for which, side in (("then", e.then), ("else", e.orelse)):
                side_id = f"{sid}?{which}"
                sides[which] = (self.lower(side, side_id, root=side_id, guard=(sid, which))
                                if self.has_calls(side) else None)
            self.sides[sid] = sides
        elif isinstance(e, ast.Try) and kind != "return" and self.has_calls(e.fallback):
            side_id = f"{sid}?else"  # run only when the tried expression fails
            self.sides[sid] = {"else": self.lower(e.fallback, side_id, root=side_id,
                                                  guard=(sid, "else"))}
        return sid

    def label(self, e: ast.Expr, kind: str, binds: str | None, handler: str | None) -> str:
        lhs = f"{binds} = " if binds else ""
        if kind == "map":
            assert isinstance(e, ast.Comprehension) and handler is not None
            return short(f"{lhs}map {self.program.display_name(handler)} over {show_expr(e.iter)}")
        if kind == "branch":
            assert isinstance(e, ast.Conditional)
            return short(f"if {show_expr(e.cond)}")
        if kind == "return":
            return short(f"return {show_expr(e)}")
        return short(lhs + show_expr(e))

    # ------------------------------------------------------------ assembly

    def producers(self, sid: str) -> list[str]:
        """The steps a reader of ``sid``'s value waits for: a branch and its taken side."""
        out = [sid]
        for side in self.sides.get(sid, {}).values():
            if side is not None:
                out += self.producers(side)
        return out

    def finish(self) -> Plan:
        edges = list(self.edges)
        for sid, names in self.reads.items():
            for n in sorted(names):
                if n in self.binders:
                    edges += [(p, sid, "data") for p in self.producers(self.binders[n])]
        for sub, user in self.feeds:
            edges += [(p, user, "data") for p in self.producers(sub)]
        edges += [(s.guard[0], s.id, "data") for s in self.steps if s.guard is not None]
        roots = [k for keys in self.callees.values() for k in keys]
        ids, nodes, hedges = handler_nodes(self.program, roots)
        for sid, keys in self.callees.items():
            edges += [(sid, ids[k], "call") for k in keys if k in ids]
        shown = {k: self.program.display_name(k) for k in ids}
        return Plan.from_steps(self.handler.key, [*self.steps, *nodes], [*edges, *hedges],
                               names=shown)
