"""Text views of a plan (or of a module's call graph): Mermaid, Graphviz DOT and JSON.

Mermaid: ``flowchart TD``; inputs are stadiums, calls rectangles, maps subroutine
boxes, branches rhombi, values parallelograms, ``return`` a circle, handler nodes
rounded and grey.  Data edges are solid arrows (labelled ``then`` / ``else`` into a
guarded step), ``call`` edges dotted, ``may_call`` and ``hook`` dotted and labelled.
DOT uses the same shapes as far as Graphviz has them and ``style=dashed`` for
``may_call`` / ``hook``.  JSON is :meth:`Plan.to_json`, indented.
"""

from __future__ import annotations

import json
import re

from ..check.program import CheckedProgram
from ..syntax import ast
from .model import Plan, PlannedStep, short, show_expr
from .planner import handler_nodes

FORMATS = ("mermaid", "dot", "json")

__all__ = ["FORMATS", "dot_id", "mermaid_ids", "render", "render_call_graph"]


def render(plan: Plan, fmt: str) -> str:
    """``plan`` as text in ``fmt`` ("mermaid", "dot" or "json").

    Raises ``ValueError`` for any other format.
    """
    if fmt == "json":
        return json.dumps(plan.to_json(), indent=2, ensure_ascii=False)
    if fmt == "mermaid":
        return _mermaid(plan)
    if fmt == "dot":
        return _dot(plan)
    raise ValueError(f"unknown graph format '{fmt}' (expected {', '.join(FORMATS)})")


def render_call_graph(program: CheckedProgram, fmt: str) -> str:
    """The module-level view: every handler of the entry module and every handler they
    can reach, labelled ``kind name``, with call / may_call / hook edges.

    The JSON form is a plan's node-link data whose ``entry`` is the module key.
    Raises ``ValueError`` for an unknown format.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown graph format '{fmt}' (expected {', '.join(FORMATS)})")
    roots = [h.key for h in program.entry.handlers.values()]
    ids, nodes, edges = handler_nodes(program, roots)
    names = {k: program.display_name(k) for k in ids}
    return render(Plan.from_steps(program.entry.key, nodes, edges, names=names), fmt)


# --------------------------------------------------------------------------- shared


def _nodes(plan: Plan) -> list[str]:
    """Data steps in plan order, then handler nodes in the order they were found."""
    data = plan.order()
    seen = set(data)
    return data + [n for n in plan.steps if n not in seen]


def _edges(plan: Plan, nodes: list[str]) -> list[tuple[str, str, str, str | None]]:
    """(source, target, kind, label) in a stable order."""
    rank = {n: i for i, n in enumerate(nodes)}
    out = []
    for u, v, kind in plan.edges():
        label = None
        if kind == "data":
            g = plan.steps[v].guard
            label = g[1] if g is not None and g[0] == u else None
        elif kind in ("may_call", "hook"):
            label = "may call" if kind == "may_call" else "hook"
        out.append((u, v, kind, label))
    return sorted(out, key=lambda e: (rank[e[0]], rank[e[1]]))


def _text(step: PlannedStep) -> str:
    """The node text: the label, and for a map what runs for each item."""
    if step.kind == "map" and isinstance(step.expr, ast.Comprehension):
        c = step.expr
        each = f"for each {c.var}: {show_expr(c.elt)}"
        if c.cond is not None:
            each += f" if {show_expr(c.cond)}"
        return f"{step.label}\n{short(each)}"
    return step.label


# --------------------------------------------------------------------------- mermaid

_MERMAID_SHAPES = {
    "input": ('(["', '"])'),
    "call": ('["', '"]'),
    "map": ('[["', '"]]'),
    "branch": ('{"', '"}'),
    "value": ('[/"', '"/]'),
    "return": ('(("', '"))'),
    "handler": ('("', '")'),
}
_MERMAID_RESERVED = {"end", "graph", "flowchart", "subgraph", "direction", "style", "class",
                     "classdef", "click", "linkstyle", "default", "call", "href"}


def mermaid_ids(ids: list[str] | Plan) -> dict[str, str]:
    """A safe, distinct Mermaid id (letters, digits, ``_``) for each step id."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for sid in (list(ids.steps) if isinstance(ids, Plan) else ids):
        base = re.sub(r"[^A-Za-z0-9_]", "_", sid.encode("ascii", "replace").decode())
        if not base or not base[0].isalpha() or base.lower() in _MERMAID_RESERVED:
            base = "n_" + base
        name, k = base, 2
        while name.lower() in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name.lower())
        out[sid] = name
    return out


def mermaid_label(text: str) -> str:
    """``text`` escaped for a ``"..."`` Mermaid label (entity codes, ``<br/>`` for lines)."""
    text = text.replace("#", "#35;").replace("&", "#38;").replace('"', "#quot;")
    text = text.replace("<", "#lt;").replace(">", "#gt;").replace("`", "#96;")
    return "<br/>".join(text.splitlines() or [""])


def _mermaid(plan: Plan) -> str:
    nodes = _nodes(plan)
    ids = mermaid_ids(nodes)
    lines = ["flowchart TD"]
    for n in nodes:
        step = plan.steps[n]
        left, right = _MERMAID_SHAPES[step.kind]
        cls = ":::handler" if step.kind == "handler" else ""
        lines.append(f"    {ids[n]}{left}{mermaid_label(_text(step))}{right}{cls}")
    for u, v, kind, label in _edges(plan, nodes):
        arrow = "-->" if kind == "data" else "-.->"
        tag = f"|{mermaid_label(label)}|" if label else ""
        lines.append(f"    {ids[u]} {arrow}{tag} {ids[v]}")
    lines.append("    classDef handler fill:#eeeeee,stroke:#999999,color:#333333")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- dot

_DOT_SHAPES = {
    "input": 'shape=box, style="rounded,bold"',
    "call": "shape=box",
    "map": "shape=box, peripheries=2",
    "branch": "shape=diamond",
    "value": "shape=parallelogram",
    "return": "shape=circle",
    "handler": 'shape=box, style="rounded,filled", fillcolor="#eeeeee", color="#999999"',
}
_DOT_EDGES = {"data": "", "call": "style=dotted", "may_call": "style=dashed",
              "hook": "style=dashed"}


def dot_id(text: str) -> str:
    """``text`` as a quoted DOT string: backslashes, quotes and newlines escaped."""
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
    return f'"{text}"'


def _dot(plan: Plan) -> str:
    nodes = _nodes(plan)
    lines = ["digraph plan {", "    rankdir=TB;", '    node [fontname="Helvetica"];',
             '    edge [fontname="Helvetica"];']
    for n in nodes:
        step = plan.steps[n]
        lines.append(f"    {dot_id(n)} [label={dot_id(_text(step))}, {_DOT_SHAPES[step.kind]}];")
    for u, v, kind, label in _edges(plan, nodes):
        attrs = [a for a in (_DOT_EDGES[kind], f"label={dot_id(label)}" if label else "") if a]
        tail = f" [{', '.join(attrs)}]" if attrs else ""
        lines.append(f"    {dot_id(u)} -> {dot_id(v)}{tail};")
    lines.append("}")
    return "\n".join(lines) + "\n"
