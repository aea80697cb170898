"""What the plan stage produces: :class:`Plan`, :class:`PlannedStep`, :class:`PlanError`.

The graph holds only string ids; each node's payload is its :class:`PlannedStep`
(node attribute ``step``, also in ``Plan.steps``).  Also here: the short source-like
text of an expression used in step labels (:func:`show_expr`).
"""

from __future__ import annotations

import functools
import heapq
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..diagnostics import Span
from ..syntax import ast

STEP_KINDS = ("input", "call", "map", "branch", "value", "return", "handler")
EDGE_KINDS = ("data", "call", "may_call", "hook")
# When several kinds link the same two handler nodes, the edge keeps the strongest.
EDGE_RANK = {"data": 0, "call": 1, "may_call": 2, "hook": 3}
LABEL_WIDTH = 60


class PlanError(Exception):
    """The data edges of a plan form a cycle.

    ``message`` names the steps on the cycle; ``spans`` holds the ``.pflow`` span of
    every one of them that has one.
    """

    def __init__(self, message: str, spans: Iterable[Span] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.spans: tuple[Span, ...] = tuple(spans)


@dataclass(frozen=True)
class PlannedStep:
    """One node of a plan.

    ``kind`` is one of :data:`STEP_KINDS`; ``handler`` the callee's key (call and map
    steps, handler nodes); ``binds`` the flow variable (or parameter) the step
    defines; ``guard`` = (branch step id, "then" | "else") for a step that runs only
    when that branch takes that side; ``expr`` the expression the step evaluates
    (for an input, the parameter's default).
    """

    id: str
    kind: str
    label: str
    span: Span | None = None
    handler: str | None = None
    binds: str | None = None
    guard: tuple[str, str] | None = None
    expr: ast.Expr | None = None


class Plan:
    """The execution graph of one handler (see the package README for its shape).

    ``steps`` maps step ids to steps; :meth:`edges` lists ``(source, target, kind)``
    with ``kind`` in :data:`EDGE_KINDS`.  ``graph`` is the same graph as a
    ``networkx.DiGraph`` of step ids (node attribute ``step``; edge attribute
    ``kind``), built on first use: planning, ordering and rendering never import
    networkx, so ``pflow graph`` starts fast.
    """

    def __init__(self, entry: str, succ: Mapping[str, Mapping[str, str]],
                 steps: Mapping[str, PlannedStep], *,
                 names: Mapping[str, str] | None = None) -> None:
        self.entry = entry
        self.steps: dict[str, PlannedStep] = dict(steps)
        # successors of each step in insertion order: step id -> {target id: edge kind}
        self._succ: dict[str, dict[str, str]] = {sid: dict(succ.get(sid, {})) for sid in self.steps}
        self._graph: Any = None
        self._names = dict(names or {})

    @classmethod
    def from_steps(cls, entry: str, steps: Iterable[PlannedStep],
                   edges: Iterable[tuple[str, str, str]], **extra: Any) -> Plan:
        """A plan from its steps and ``(source id, target id, kind)`` edges.

        ``extra`` is passed to the constructor (``names``).
        Raises ``ValueError`` for a repeated step id, an unknown kind, an edge naming an
        unknown step or a data edge touching a handler node, and :class:`PlanError`
        if the data edges form a cycle.
        """
        table: dict[str, PlannedStep] = {}
        succ: dict[str, dict[str, str]] = {}
        for s in steps:
            if s.id in table:
                raise ValueError(f"step id '{s.id}' is used twice")
            if s.kind not in STEP_KINDS:
                raise ValueError(f"step '{s.id}' has unknown kind '{s.kind}'")
            table[s.id] = s
            succ[s.id] = {}
        for u, v, kind in edges:
            if kind not in EDGE_KINDS:
                raise ValueError(f"edge {u} -> {v} has unknown kind '{kind}'")
            for end in (u, v):
                if end not in table:
                    raise ValueError(f"edge {u} -> {v} names unknown step '{end}'")
                if kind == "data" and table[end].kind == "handler":
                    raise ValueError(f"data edge {u} -> {v} touches handler node '{end}'")
            old = succ[u].get(v)
            if old is None or EDGE_RANK[kind] < EDGE_RANK[old]:
                succ[u][v] = kind
        plan = cls(entry, succ, table, **extra)
        plan.check_acyclic()
        return plan

    # ------------------------------------------------------------ views

    def edges(self) -> list[tuple[str, str, str]]:
        """Every edge as ``(source id, target id, kind)``, grouped by source in step order."""
        return [(u, v, kind) for u, out in self._succ.items() for v, kind in out.items()]

    @property
    def graph(self) -> Any:
        """The plan as a ``networkx.DiGraph`` (imports networkx on first use)."""
        if self._graph is None:
            import networkx as nx

            g = nx.DiGraph()
            for sid, step in self.steps.items():
                g.add_node(sid, step=step)
            for u, v, kind in self.edges():
                g.add_edge(u, v, kind=kind)
            self._graph = g
        return self._graph

    def data_edges(self) -> list[tuple[str, str]]:
        """The data edges (between non-handler steps) as ``(source id, target id)``."""
        return [(u, v) for u, targets in self._data_succ.items() for v in targets]

    def data_graph(self) -> Any:
        """A read-only ``networkx`` view: the non-handler steps and the data edges."""
        import networkx as nx

        g = self.graph
        return nx.subgraph_view(g, filter_node=lambda n: self.steps[n].kind != "handler",
                                filter_edge=lambda u, v: g.edges[u, v]["kind"] == "data")

    @functools.cached_property
    def _data_succ(self) -> dict[str, list[str]]:
        """The non-handler steps and the data edges between them (a plan does not change)."""
        return {sid: [v for v, kind in self._succ[sid].items() if kind == "data"]
                for sid, s in self.steps.items() if s.kind != "handler"}

    def check_acyclic(self) -> None:
        """Raises :class:`PlanError` naming every step on a cycle of data edges."""
        cycle = _find_cycle(self._data_succ)
        if cycle is None:
            return
        chain = " -> ".join([*cycle, cycle[0]])
        spans = [s for s in (self.steps[i].span for i in cycle) if s is not None]
        raise PlanError(f"cycle among the data steps: {chain}", spans)

    def order(self) -> list[str]:
        """The data steps in a topological order, ties broken by source position.

        Raises :class:`PlanError` if the data edges form a cycle.
        """
        succ = self._data_succ
        indegree = dict.fromkeys(succ, 0)
        for targets in succ.values():
            for v in targets:
                indegree[v] += 1
        ready = [(self._position(n), n) for n, d in indegree.items() if d == 0]
        heapq.heapify(ready)
        out: list[str] = []
        while ready:
            _, n = heapq.heappop(ready)
            out.append(n)
            for v in succ[n]:
                indegree[v] -= 1
                if indegree[v] == 0:
                    heapq.heappush(ready, (self._position(v), v))
        if len(out) < len(succ):  # the steps on a cycle never became ready
            self.check_acyclic()
        return out

    def _position(self, sid: str) -> tuple[int, int, int, str]:
        span = self.steps[sid].span
        return (0, span.line, span.col, sid) if span is not None else (1, 0, 0, sid)

    def reachable_handlers(self) -> frozenset[str]:
        """The keys of every handler the plan may call, directly or transitively."""
        return frozenset(s.handler for s in self.steps.values()
                         if s.kind == "handler" and s.handler is not None)

    def name_of(self, key: str) -> str:
        """How the entry module spells handler ``key`` (the key itself if unknown)."""
        return self._names.get(key, key)

    # ------------------------------------------------------------ export

    def to_json(self) -> dict[str, Any]:
        """networkx node-link data (``networkx.node_link_graph`` reads it back) with
        readable fields (spans as ``file:line:col``)."""
        nodes = []
        for sid, s in self.steps.items():
            nodes.append({"kind": s.kind, "label": s.label,
                          "span": str(s.span) if s.span is not None else None,
                          "handler": s.handler,
                          "handler_name": self.name_of(s.handler) if s.handler else None,
                          "binds": s.binds, "guard": list(s.guard) if s.guard else None,
                          "id": sid})
        links = [{"kind": kind, "source": u, "target": v} for u, v, kind in self.edges()]
        data = {"directed": True, "multigraph": False, "graph": {"entry": self.entry},
                "nodes": nodes, "links": links}
        json.dumps(data)  # fail here, not in a caller, if anything is not serialisable
        return data


def _find_cycle(succ: Mapping[str, list[str]]) -> list[str] | None:
    """The steps of one cycle (depth-first from the first step, in order), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in succ:
        if root in state:
            continue
        path = [root]
        state[root] = 1
        stack = [iter(succ[root])]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(succ[nxt]))
    return None


# --------------------------------------------------------------------------- expression text


def children(e: ast.Expr) -> Iterator[ast.Expr]:
    """The direct sub-expressions of ``e`` (keyword and record-entry values included)."""
    for name in e.__dataclass_fields__:
        value = getattr(e, name)
        for x in value if isinstance(value, tuple) else (value,):
            if isinstance(x, ast.Expr):
                yield x
            elif isinstance(x, (ast.Keyword, ast.RecordEntry)):
                yield x.value


def short(text: str, width: int = LABEL_WIDTH) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


_PREC = {"or": 1, "and": 2, "not": 3, "+": 5, "-": 5, "*": 6, "/": 6, "%": 6}
_CMP = 4


def show_expr(e: ast.Expr) -> str:
    """Source-like text of an expression (``reply_to(review=review, label=v.label)``)."""
    return _show(e)[0]


def _wrap(e: ast.Expr, least: int) -> str:
    text, prec = _show(e)
    return f"({text})" if prec < least else text


def _quote(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def _show(e: ast.Expr) -> tuple[str, int]:
    atom = 9
    match e:
        case ast.Name(name=n):
            return n, atom
        case ast.Str(value=v, style=style):
            return ("r" + _quote(v) if style == "raw" else _quote(v)), atom
        case ast.Bool(value=v):
            return ("true" if v else "false"), atom
        case ast.NoneLit():
            return "none", atom
        case ast.Int(value=v) | ast.Float(value=v):
            return repr(v), atom
        case ast.ListExpr(items=items):
            return "[" + ", ".join(_show(i)[0] for i in items) + "]", atom
        case ast.RecordExpr(entries=entries):
            keys = [en.key if en.key.isidentifier() else _quote(en.key) for en in entries]
            return "{" + ", ".join(f"{k}: {_show(en.value)[0]}"
                                   for k, en in zip(keys, entries, strict=True)) + "}", atom
        case ast.Attr(obj=obj, name=n):
            return f"{_wrap(obj, atom)}.{n}", atom
        case ast.Index(obj=obj, index=index):
            return f"{_wrap(obj, atom)}[{_show(index)[0]}]", atom
        case ast.Call(func=func, args=args, kwargs=kwargs):
            parts = [_show(a)[0] for a in args] + [f"{k.name}={_show(k.value)[0]}" for k in kwargs]
            return f"{_wrap(func, atom)}({', '.join(parts)})", atom
        case ast.Comprehension(elt=elt, var=var, iter=it, cond=cond):
            tail = f" if {_show(cond)[0]}" if cond is not None else ""
            return f"[{_show(elt)[0]} for {var} in {_show(it)[0]}{tail}]", atom
        case ast.Conditional(then=then, cond=cond, orelse=orelse):
            return f"{_wrap(then, 1)} if {_wrap(cond, 1)} else {_wrap(orelse, 0)}", 0
        case ast.Try(expr=tried, fallback=fallback):
            return f"try {_wrap(tried, 1)} else {_wrap(fallback, 0)}", 0
        case ast.UnaryOp(op="not", operand=x):
            return f"not {_wrap(x, _PREC['not'])}", _PREC["not"]
        case ast.UnaryOp(op=op, operand=x):
            return f"{op}{_wrap(x, 7)}", 7
        case ast.Compare(op=op, left=left, right=right):
            return f"{_wrap(left, _CMP + 1)} {op} {_wrap(right, _CMP + 1)}", _CMP
        case ast.BinOp(op=op, left=left, right=right) | ast.BoolOp(op=op, left=left, right=right):
            p = _PREC.get(op, 5)
            return f"{_wrap(left, p)} {op} {_wrap(right, p + 1)}", p
    return type(e).__name__, atom  # pragma: no cover - every expression kind is handled
