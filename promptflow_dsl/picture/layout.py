"""The layered layout of a plan: boxes sized to their labels, edges as point lists.

:func:`layout` places every step of a :class:`~promptflow_dsl.plan.Plan` with
grandalf's Sugiyama layout (layers top to bottom, crossings reduced, long edges
routed through dummy points), then packs each layer again left to right so that no
two boxes ever overlap, whatever the layout's averaging did.  Text is measured with
a fixed advance per character (the pictures use a monospace font), so a label's
extent is known without a font file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..plan.model import Plan, PlannedStep, short, show_expr
from ..syntax import ast

FONT_SIZE = 12.0
CHAR_W = FONT_SIZE * 0.6  # the advance of a monospace font, in pixels
LINE_H = FONT_SIZE * 1.3
PAD_X = 12.0  # text to box edge; shapes with slanted or pointed sides add their own
PAD_Y = 8.0
LAYER_GAP = 46.0
NODE_GAP = 28.0
MARGIN = 20.0
# extra width a shape needs so that its text stays inside it
SHAPE_EXTRA = {"branch": 2 * LINE_H, "value": 2 * LINE_H, "input": LINE_H, "return": LINE_H}


class MissingExtra(Exception):
    """A library the pictures need is not installed; ``install`` is the command."""

    def __init__(self, module: str, install: str) -> None:
        super().__init__(f"drawing pictures needs {module}, which is not installed: {install}")
        self.module = module
        self.install = install


INSTALL = 'pip install "promptflow-dsl[graph]"'


@dataclass
class Box:
    """One step: its centre ``(x, y)``, size, text lines and kind."""

    id: str
    kind: str
    lines: list[str]
    w: float
    h: float
    x: float = 0.0
    y: float = 0.0

    @property
    def left(self) -> float:
        return self.x - self.w / 2

    @property
    def top(self) -> float:
        return self.y - self.h / 2

    def text_extent(self) -> tuple[float, float, float, float]:
        """(left, top, right, bottom) of the text block, centred in the box."""
        width = max(len(line) for line in self.lines) * CHAR_W
        height = len(self.lines) * LINE_H
        return (self.x - width / 2, self.y - height / 2, self.x + width / 2, self.y + height / 2)


@dataclass
class Link:
    """One edge: its kind, optional label and the points it passes through."""

    source: str
    target: str
    kind: str
    label: str | None
    points: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class Layout:
    """A placed plan: boxes by step id, links, and the picture's size."""

    title: str
    boxes: dict[str, Box]
    links: list[Link]
    width: float
    height: float


def step_lines(step: PlannedStep) -> list[str]:
    """A step's text: its label and, for a map, what runs for each item."""
    lines = [short(line) for line in (step.label.splitlines() or [""])]
    if step.kind == "map" and isinstance(step.expr, ast.Comprehension):
        c = step.expr
        each = f"for each {c.var}: {show_expr(c.elt)}"
        if c.cond is not None:
            each += f" if {show_expr(c.cond)}"
        lines.append(short(each))
    return lines


def _size(kind: str, lines: list[str]) -> tuple[float, float]:
    width = max(len(line) for line in lines) * CHAR_W + 2 * PAD_X + SHAPE_EXTRA.get(kind, 0.0)
    height = len(lines) * LINE_H + 2 * PAD_Y
    if kind == "branch":
        height += LINE_H  # the pointed ends sit above and below the text
    return width, height


def _edge_label(plan: Plan, u: str, v: str, kind: str) -> str | None:
    if kind == "data":
        guard = plan.steps[v].guard
        return guard[1] if guard is not None and guard[0] == u else None
    if kind == "may_call":
        return "may call"
    return "hook" if kind == "hook" else None


def _grandalf() -> Any:
    try:
        import grandalf.graphs as graphs
        import grandalf.layouts as layouts
    except ImportError:
        raise MissingExtra("grandalf", INSTALL) from None
    return graphs, layouts


class _View:
    """What grandalf reads and writes on a vertex: size and centre."""

    def __init__(self, w: float, h: float) -> None:
        self.w, self.h = w, h
        self.xy = (0.0, 0.0)


class _EdgeView:
    def __init__(self) -> None:
        self.points: list[tuple[float, float]] = []

    def setpath(self, points: list[tuple[float, float]]) -> None:
        self.points = [(float(x), float(y)) for x, y in points]


def layout(plan: Plan, title: str = "") -> Layout:
    """Place ``plan``'s steps and route its edges.

    Raises :class:`MissingExtra` when grandalf is not installed.
    """
    graphs, layouts = _grandalf()
    boxes: dict[str, Box] = {}
    vertices: dict[str, Any] = {}
    for sid, step in plan.steps.items():
        lines = step_lines(step)
        w, h = _size(step.kind, lines)
        boxes[sid] = Box(sid, step.kind, lines, w, h)
        vertex = graphs.Vertex(sid)
        vertex.view = _View(w, h)
        vertices[sid] = vertex
    edges = []
    links: list[Link] = []
    loops: list[Link] = []
    for u, v, kind in plan.edges():
        if kind == "call" and plan.steps[u].kind != "handler":
            continue  # a call step names its callee; 50 edges to one box say nothing more
        if u == v:  # drawn as a small loop, unlabelled (its dash says what it is)
            loops.append(Link(u, v, kind, None))
            continue
        e = graphs.Edge(vertices[u], vertices[v])
        e.view = _EdgeView()
        edges.append(e)
        links.append(Link(u, v, kind, _edge_label(plan, u, v, kind)))
    graph = graphs.Graph(list(vertices.values()), edges)
    x_offset = MARGIN
    height = 0.0
    for component in graph.C:
        sug = layouts.SugiyamaLayout(component)
        sug.xspace, sug.yspace = NODE_GAP, LAYER_GAP
        roots = [v for v in component.sV if not v.e_in()] or None
        sug.init_all(roots=roots)
        sug.draw()
        right, bottom = _pack(sug, x_offset)
        x_offset = right + NODE_GAP * 2
        height = max(height, bottom)
    for vertex in graph.V():
        box = boxes[vertex.data]
        box.x, box.y = vertex.view.xy
    for link, e in zip(links, edges, strict=True):
        link.points = _route(e, boxes[link.source], boxes[link.target])
    for link in loops:  # a handler that may call itself: a loop on the box's right side
        b = boxes[link.source]
        right, dy = b.x + b.w / 2, b.h / 4
        link.points = [(right, b.y - dy), (right + NODE_GAP * 0.8, b.y - dy),
                       (right + NODE_GAP * 0.8, b.y + dy), (right, b.y + dy)]
        links.append(link)
    width = max([b.x + b.w / 2 + NODE_GAP for b in boxes.values()] + [MARGIN]) + MARGIN
    return Layout(title, boxes, links, width, height + MARGIN)


def _pack(sug: Any, x_offset: float) -> tuple[float, float]:
    """Place one component: grandalf gave the layers and the order within each (crossings
    reduced); here each box goes under the mean x of its neighbours in the layer above,
    and the layer is then swept so that boxes (and the dummy points of long edges) keep
    at least :data:`NODE_GAP` apart — no two boxes can overlap.  Layers stack top to
    bottom.  Returns (right, bottom) of the component."""
    up: dict[Any, list[Any]] = {}
    for e in sug.g.sE:
        a, b = e.v
        ra, rb = sug.grx[a].rank, sug.grx[b].rank
        if ra > rb:
            a, b, ra, rb = b, a, rb, ra
        ctrls = sug.ctrls.get(e, {})
        chain = [a, *[ctrls[r] for r in range(ra + 1, rb) if r in ctrls], b]
        for upper, lower in zip(chain, chain[1:], strict=False):
            up.setdefault(lower, []).append(upper)
    y = MARGIN
    for layer in sug.layers:
        items = sorted(layer, key=lambda v: v.view.xy[0])
        wanted: list[float | None] = []
        for v in items:  # the neighbours above were placed with their layers already
            above = [u.view.xy[0] for u in up.get(v, [])]
            wanted.append(sum(above) / len(above) if above else None)
        xs = _spread(items, wanted)
        depth = max(v.view.h for v in items)
        for v, x in zip(items, xs, strict=True):
            v.view.xy = (x, y + depth / 2)
        y += depth + LAYER_GAP
    every = [v for layer in sug.layers for v in layer]
    shift = x_offset - min(v.view.xy[0] - v.view.w / 2 for v in every)
    for v in every:
        v.view.xy = (v.view.xy[0] + shift, v.view.xy[1])
    for e in sug.g.sE:
        rank = (sug.grx[e.v[0]].rank, sug.grx[e.v[1]].rank)
        ctrls = sug.ctrls.get(e, {})
        ranks = range(rank[0] + 1, rank[1]) if rank[0] < rank[1] else range(rank[0] - 1, rank[1], -1)
        e.view.setpath([e.v[0].view.xy, *[ctrls[r].view.xy for r in ranks if r in ctrls],
                        e.v[1].view.xy])
    right = max(v.view.xy[0] + v.view.w / 2 for v in every)
    return right, y - LAYER_GAP


def _spread(items: list[Any], wanted: list[float | None]) -> list[float]:
    """x centres for a layer's boxes in their order, each as near its wanted x as the
    boxes beside it allow, never closer than :data:`NODE_GAP` edge to edge."""
    n = len(items)
    known = [w for w in wanted if w is not None]
    # boxes with no neighbour above sit after the previous box
    filled: list[float] = []
    for i in range(n):
        w = wanted[i]
        if w is None:
            w = filled[-1] if filled else (known[0] if known else 0.0)
        filled.append(w)

    def gap(i: int) -> float:  # centre distance between box i and box i + 1
        return items[i].view.w / 2 + NODE_GAP + items[i + 1].view.w / 2

    right = list(filled)  # pushed rightwards
    for i in range(1, n):
        right[i] = max(right[i], right[i - 1] + gap(i - 1))
    left = list(filled)  # pushed leftwards
    for i in range(n - 2, -1, -1):
        left[i] = min(left[i], left[i + 1] - gap(i))
    xs = [(a + b) / 2 for a, b in zip(left, right, strict=True)]
    for i in range(1, n):  # the mean of two valid placements can still be too tight
        xs[i] = max(xs[i], xs[i - 1] + gap(i - 1))
    return xs


def _route(e: Any, source: Box, target: Box) -> list[tuple[float, float]]:
    """The edge's points, from the border of ``source`` to the border of ``target``."""
    middle = e.view.points[1:-1]
    if e.view.points and e.view.points[0] != (source.x, source.y):
        middle = middle[::-1]  # an edge grandalf turned around to break a cycle
    first = middle[0] if middle else (target.x, target.y)
    last = middle[-1] if middle else (source.x, source.y)
    return [_border(source, first), *middle, _border(target, last)]


def _border(box: Box, toward: tuple[float, float]) -> tuple[float, float]:
    """Where the line from the centre of ``box`` toward a point leaves the box."""
    dx, dy = toward[0] - box.x, toward[1] - box.y
    if dx == 0 and dy == 0:
        return box.x, box.y
    sx = (box.w / 2) / abs(dx) if dx else float("inf")
    sy = (box.h / 2) / abs(dy) if dy else float("inf")
    s = min(sx, sy)
    return box.x + dx * s, box.y + dy * s
