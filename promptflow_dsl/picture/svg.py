"""A placed plan as SVG text, written by hand (no drawing library, no fonts needed).

Shapes by step kind: input — a stadium; call — a rectangle; map — a rectangle with a
double border; branch — a hexagon; value — a parallelogram; return — a stadium with a
thick border; handler — a grey rounded box.  Each kind has its own fill colour, and a
legend under the graph names the kinds and edge styles the picture uses.  Data edges
are solid, call edges dotted, may-call and hook edges dashed; every edge ends in an
arrowhead.
"""

from __future__ import annotations

from html import escape

from .layout import CHAR_W, FONT_SIZE, LINE_H, MARGIN, Box, Layout, Link

FONT = "ui-monospace, SFMono-Regular, Menlo, Consolas, 'DejaVu Sans Mono', monospace"

# kind -> (fill, stroke, what the legend calls it)
KIND_STYLE: dict[str, tuple[str, str, str]] = {
    "input": ("#e3f2e1", "#3c8d40", "input"),
    "call": ("#e3edf9", "#3a6ea5", "handler call"),
    "map": ("#fdebd3", "#c76e00", "map (one call per item)"),
    "branch": ("#efe3f6", "#7b3f9e", "branch (if / else)"),
    "value": ("#f5f5f0", "#8a8a70", "value"),
    "return": ("#dfe7ec", "#24323d", "return"),
    "handler": ("#eeeeee", "#999999", "reachable handler"),
}
# edge kind -> (stroke, dash pattern or "", legend text)
EDGE_STYLE: dict[str, tuple[str, str, str]] = {
    "data": ("#444444", "", "data"),
    "call": ("#777777", "2 3", "calls"),
    "may_call": ("#9c4f00", "7 4", "may call"),
    "hook": ("#7b3f9e", "7 4", "hook"),
}
LEGEND_ROW = 22.0


def legend_height(layout: Layout) -> float:
    kinds = {b.kind for b in layout.boxes.values()}
    edges = {link.kind for link in layout.links}
    return LEGEND_ROW * (2 if kinds and edges else 1) + MARGIN


def picture_size(layout: Layout) -> tuple[float, float]:
    """(width, height) of the whole picture: the graph, and the legend under it."""
    return (max(layout.width, _legend_width(layout) + 2 * MARGIN),
            layout.height + legend_height(layout))


def render_svg(layout: Layout) -> str:
    """The SVG document of ``layout`` (UTF-8 text, standalone)."""
    width, height = picture_size(layout)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="{escape(FONT)}" '
           f'font-size="{FONT_SIZE:.0f}">']
    if layout.title:
        out.append(f"<title>{escape(layout.title)}</title>")
    out.append("<defs>")
    for kind, (stroke, _, _) in EDGE_STYLE.items():
        out.append(f'<marker id="arrow-{kind}" viewBox="0 0 10 10" refX="9" refY="5" '
                   f'markerWidth="8" markerHeight="8" orient="auto-start-reverse">'
                   f'<path d="M0,0 L10,5 L0,10 z" fill="{stroke}"/></marker>')
    out.append("</defs>")
    out.append(f'<rect width="{width:.0f}" height="{height:.0f}" fill="#ffffff"/>')
    out.append('<g class="edges">')
    out.extend(_edge(link) for link in layout.links)
    out.append("</g>")
    out.append('<g class="nodes">')
    out.extend(_node(box) for box in layout.boxes.values())
    out.append("</g>")
    out.append(_legend(layout, layout.height))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def path_data(points: list[tuple[float, float]]) -> str:
    """An SVG path through ``points``: a straight line for two points, else a smooth
    curve (quadratic pieces through the midpoints of the control polygon)."""
    (x0, y0), rest = points[0], points[1:]
    d = [f"M{x0:.1f},{y0:.1f}"]
    if len(rest) == 1:
        d.append(f"L{rest[0][0]:.1f},{rest[0][1]:.1f}")
        return " ".join(d)
    for (ax, ay), (bx, by) in zip(rest[:-1], rest[1:], strict=True):
        d.append(f"Q{ax:.1f},{ay:.1f} {(ax + bx) / 2:.1f},{(ay + by) / 2:.1f}")
    lx, ly = rest[-1]
    d.append(f"L{lx:.1f},{ly:.1f}")
    return " ".join(d)


def _edge(link: Link) -> str:
    stroke, dash, _ = EDGE_STYLE.get(link.kind, EDGE_STYLE["data"])
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    parts = [f'<g class="edge {link.kind}" data-source="{escape(link.source)}" '
             f'data-target="{escape(link.target)}">',
             f'<path d="{path_data(link.points)}" fill="none" stroke="{stroke}" '
             f'stroke-width="1.4"{dash_attr} marker-end="url(#arrow-{link.kind})"/>']
    if link.label:
        x, y = _label_point(link.points)
        w = len(link.label) * CHAR_W * 0.85 + 6
        parts.append(f'<rect x="{x - w / 2:.1f}" y="{y - 8:.1f}" width="{w:.1f}" height="14" '
                     f'fill="#ffffff" opacity="0.85"/>')
        parts.append(f'<text x="{x:.1f}" y="{y + 3:.1f}" text-anchor="middle" '
                     f'font-size="{FONT_SIZE * 0.85:.1f}" fill="{stroke}">{escape(link.label)}</text>')
    parts.append("</g>")
    return "".join(parts)


def _label_point(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Half-way along the edge's first leg (near its source, where fans separate)."""
    (ax, ay), (bx, by) = points[0], points[1]
    return (ax + bx) / 2, (ay + by) / 2


def shape_points(box: Box) -> list[tuple[float, float]] | None:
    """The outline of a polygon-shaped step (branch, value), or None for a rectangle."""
    left, top, right, bottom = box.left, box.top, box.left + box.w, box.top + box.h
    if box.kind == "branch":
        tip = LINE_H
        return [(left, box.y), (left + tip, top), (right - tip, top), (right, box.y),
                (right - tip, bottom), (left + tip, bottom)]
    if box.kind == "value":
        slant = LINE_H
        return [(left + slant, top), (right, top), (right - slant, bottom), (left, bottom)]
    return None


def corner_radius(box: Box) -> float:
    if box.kind in ("input", "return"):
        return box.h / 2
    return 8.0 if box.kind == "handler" else 3.0


def _node(box: Box) -> str:
    fill, stroke, _ = KIND_STYLE.get(box.kind, KIND_STYLE["value"])
    width = 2.6 if box.kind == "return" else 1.3
    parts = [f'<g class="node {box.kind}" id="{escape(_svg_id(box.id))}">',
             f"<title>{escape(box.id)}</title>"]
    points = shape_points(box)
    if points is not None:
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(f'<polygon points="{pts}" fill="{fill}" stroke="{stroke}" stroke-width="{width}"/>')
    else:
        r = corner_radius(box)
        parts.append(f'<rect x="{box.left:.1f}" y="{box.top:.1f}" width="{box.w:.1f}" '
                     f'height="{box.h:.1f}" rx="{r:.1f}" fill="{fill}" stroke="{stroke}" '
                     f'stroke-width="{width}"/>')
        if box.kind == "map":
            parts.append(f'<rect x="{box.left + 4:.1f}" y="{box.top + 4:.1f}" '
                         f'width="{box.w - 8:.1f}" height="{box.h - 8:.1f}" rx="2" fill="none" '
                         f'stroke="{stroke}" stroke-width="1"/>')
    left, top, _, _ = box.text_extent()
    for i, line in enumerate(box.lines):
        y = top + LINE_H * i + LINE_H * 0.75
        parts.append(f'<text x="{left:.1f}" y="{y:.1f}" xml:space="preserve" fill="#1a1a1a">'
                     f"{escape(line)}</text>")
    parts.append("</g>")
    return "".join(parts)


def _svg_id(step_id: str) -> str:
    return "step-" + "".join(c if c.isalnum() or c in "-_" else "_" for c in step_id)


def _legend_items(layout: Layout) -> tuple[list[str], list[str]]:
    kinds = [k for k in KIND_STYLE if any(b.kind == k for b in layout.boxes.values())]
    edges = [k for k in EDGE_STYLE if any(link.kind == k for link in layout.links)]
    return kinds, edges


def _legend_width(layout: Layout) -> float:
    kinds, edges = _legend_items(layout)
    row1 = sum(30 + len(KIND_STYLE[k][2]) * CHAR_W + 18 for k in kinds)
    row2 = sum(40 + len(EDGE_STYLE[k][2]) * CHAR_W + 18 for k in edges)
    return max(row1, row2)


def _legend(layout: Layout, y0: float) -> str:
    kinds, edges = _legend_items(layout)
    parts = ['<g class="legend">']
    x, y = MARGIN, y0 + MARGIN / 2
    for k in kinds:
        fill, stroke, text = KIND_STYLE[k]
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="22" height="14" rx="3" fill="{fill}" '
                     f'stroke="{stroke}"/>')
        parts.append(f'<text x="{x + 28:.1f}" y="{y + 11:.1f}" fill="#333333">{escape(text)}</text>')
        x += 30 + len(text) * CHAR_W + 18
    x, y = MARGIN, y + (LEGEND_ROW if kinds else 0)
    for k in edges:
        stroke, dash, text = EDGE_STYLE[k]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(f'<line x1="{x:.1f}" y1="{y + 7:.1f}" x2="{x + 30:.1f}" y2="{y + 7:.1f}" '
                     f'stroke="{stroke}" stroke-width="1.4"{dash_attr} '
                     f'marker-end="url(#arrow-{k})"/>')
        parts.append(f'<text x="{x + 38:.1f}" y="{y + 11:.1f}" fill="#333333">{escape(text)}</text>')
        x += 40 + len(text) * CHAR_W + 18
    parts.append("</g>")
    return "".join(parts)
