"""The executor of flows: the plan's statements run as soon as their inputs are ready.

The plan (:mod:`promptflow_dsl.plan`) has one node per call site; every node
belongs to one statement of the flow (``v``, ``v#1``, ``v?then`` all belong to
``v``).  A :class:`Scheduler` — a pure state machine with no I/O — tracks which
statements are waiting, ready, running, done, failed or skipped; the driver
:func:`run` starts every ready statement as an asyncio task, so
independent statements run concurrently, and each statement's expression is
evaluated by :class:`~promptflow_dsl.runtime.evaluate.Evaluator` (fan-out items
concurrently, only the taken side of a conditional).  When a statement fails its
dependents are skipped, the rest still finish, and the flow fails with the first
error.  In sequential mode (tests under mocks) one statement runs at a time, in
topological order with the written order as tie-break.
"""

from __future__ import annotations

import asyncio
import re
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...check.program import HandlerInfo
from ...runtime.errors import RunError
from ...runtime.evaluate import Evaluator
from ...syntax import ast
from .ast import FlowDecl

if TYPE_CHECKING:  # pragma: no cover
    from ...plan import Plan
    from ...runtime.context import RunContext
    from ...runtime.trace import Step

_ROOT = re.compile(r"[#?]")


def statement_of(step_id: str) -> str:
    """The statement a plan step belongs to (``v#2`` and ``v?then`` belong to ``v``)."""
    return _ROOT.split(step_id, 1)[0]


@dataclass
class Scheduler:
    """Which statements can run, given which have finished.  Pure: no I/O, no asyncio."""

    deps: dict[str, set[str]]
    order: list[str]
    state: dict[str, str] = field(default_factory=dict)  # waiting|running|done|failed|skipped

    def __post_init__(self) -> None:
        for s in self.order:
            self.state.setdefault(s, "waiting")

    def ready(self) -> list[str]:
        return [s for s in self.order if self.state[s] == "waiting"
                and all(self.state[d] == "done" for d in self.deps.get(s, ()))]

    def start(self, s: str) -> None:
        self.state[s] = "running"

    def done(self, s: str) -> None:
        self.state[s] = "done"

    def failed(self, s: str) -> list[str]:
        """Mark ``s`` failed; returns the statements skipped because of it."""
        self.state[s] = "failed"
        skipped = []
        changed = True
        while changed:
            changed = False
            for t in self.order:
                if self.state[t] == "waiting" and any(self.state[d] in ("failed", "skipped")
                                                      for d in self.deps.get(t, ())):
                    self.state[t] = "skipped"
                    skipped.append(t)
                    changed = True
        return skipped

    @property
    def finished(self) -> bool:
        return all(v in ("done", "failed", "skipped") for v in self.state.values())

    @property
    def running(self) -> list[str]:
        return [s for s, v in self.state.items() if v == "running"]


_FOLDED: weakref.WeakKeyDictionary[Plan, tuple[dict[str, set[str]], list[str]]] = \
    weakref.WeakKeyDictionary()


def statements_of(ctx: RunContext, h: HandlerInfo) -> tuple[dict[str, set[str]], list[str]]:
    """A flow's statement dependencies and order, folded from its plan once per plan
    (plans are built once per program and never change)."""
    plan = ctx.plan_of(h)
    folded = _FOLDED.get(plan)
    if folded is None:
        folded = _FOLDED[plan] = statement_graph(plan)
    return folded


def statement_graph(plan: Plan) -> tuple[dict[str, set[str]], list[str]]:
    """Statement-level dependencies and order, folded from the plan's data graph."""
    order = list(dict.fromkeys(statement_of(sid) for sid in plan.order()
                               if plan.steps[sid].kind != "input"))
    deps: dict[str, set[str]] = {s: set() for s in order}
    for u, v in plan.data_edges():
        su, sv = statement_of(u), statement_of(v)
        if plan.steps[u].kind == "input" or su == sv:
            continue
        deps.setdefault(sv, set()).add(su)
    return deps, order


async def run(ctx: RunContext, h: HandlerInfo, inputs: dict[str, Any], step: Step) -> Any:
    """Run flow ``h`` with validated ``inputs``; returns the value of its ``return``.

    Raises :class:`RunError` (the first failure; later statements that depend on
    it are skipped and listed in the trace).
    """
    decl = h.decl
    assert isinstance(decl, FlowDecl)
    deps, order = statements_of(ctx, h)
    exprs: dict[str, ast.Expr] = {}
    for st in decl.body:
        exprs["return" if isinstance(st, ast.Return) else st.name] = st.value
    module = ctx.program.module_of(h.key)
    evaluator = Evaluator(ctx, module, caller=step.id)
    env: dict[str, Any] = dict(inputs)
    sched = Scheduler(deps, order)
    errors: list[tuple[str, RunError]] = []
    results: dict[str, Any] = {}
    tasks: dict[asyncio.Task[Any], str] = {}

    async def one(s: str) -> Any:
        return await evaluator.eval(exprs[s], env)

    try:
        while not sched.finished:
            ready = sched.ready()
            if ctx.sequential:
                ready = ready[:1] if not tasks else []
            for s in ready:
                sched.start(s)
                tasks[asyncio.ensure_future(one(s))] = s
            if not tasks:
                break  # nothing runnable: everything left was skipped
            finished, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in finished:
                s = tasks.pop(t)
                exc = t.exception()
                if exc is None:
                    results[s] = t.result()
                    if s != "return":
                        env[s] = results[s]
                    sched.done(s)
                    continue
                if not isinstance(exc, RunError):
                    raise exc
                errors.append((s, exc))
                for skipped in sched.failed(s):
                    ctx.trace.event(step, "skipped", f"'{skipped}' skipped: '{s}' failed")
    finally:
        for t in tasks:
            t.cancel()
    if errors:
        first = min(errors, key=lambda e: order.index(e[0]))[1]
        raise first
    if "return" not in results:  # pragma: no cover - the checker requires a return
        raise RunError(f"flow '{decl.name}' finished without a return value", span=decl.name_span)
    return results["return"]
