"""Pictures of plans: SVG, PNG and HTML drawn from a layered layout (``pflow graph
--format svg|png|html``).  See README.md.

grandalf (layout) and matplotlib (PNG only) are imported when a picture is drawn; when
they are missing, :class:`MissingExtra` says how to install them.
"""

from __future__ import annotations

from ..check.program import CheckedProgram
from ..plan.model import Plan
from .layout import INSTALL, Box, Layout, Link, MissingExtra, layout

FORMATS = ("svg", "png", "html")

__all__ = ["FORMATS", "INSTALL", "Box", "Layout", "Link", "MissingExtra", "call_graph_plan",
           "draw", "layout"]


def draw(plan: Plan, fmt: str, title: str = "") -> bytes:
    """``plan`` drawn in ``fmt`` ("svg", "png" or "html") as the bytes of a file.

    Raises ``ValueError`` for another format and :class:`MissingExtra` when a library
    the format needs is not installed.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown picture format '{fmt}' (expected {', '.join(FORMATS)})")
    placed = layout(plan, title)
    if fmt == "png":
        from .png import render_png

        return render_png(placed)
    if fmt == "html":
        from .page import render_html

        return render_html(placed).encode("utf-8")
    from .svg import render_svg

    return render_svg(placed).encode("utf-8")


def call_graph_plan(program: CheckedProgram) -> Plan:
    """Every handler of the entry module and every handler they can reach, as a plan of
    handler nodes with call / may_call / hook edges (what ``pflow graph FILE`` draws)."""
    from ..plan.planner import handler_nodes

    roots = [h.key for h in program.entry.handlers.values()]
    ids, nodes, edges = handler_nodes(program, roots)
    names = {k: program.display_name(k) for k in ids}
    return Plan.from_steps(program.entry.key, nodes, edges, names=names)
