"""A placed plan as PNG, drawn with matplotlib's Agg canvas from the same layout as the
SVG (same boxes, shapes, colours, edge styles and legend), one pixel per layout unit
at 100 dpi times ``scale``."""

from __future__ import annotations

import io
from typing import Any

from .layout import CHAR_W, FONT_SIZE, INSTALL, LINE_H, MARGIN, Layout, MissingExtra
from .svg import EDGE_STYLE, KIND_STYLE, corner_radius, picture_size, shape_points

DPI = 100.0


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingExtra("matplotlib", INSTALL) from None
    return Figure


def render_png(layout: Layout, scale: float = 1.5) -> bytes:
    """The PNG image of ``layout``.  Raises :class:`MissingExtra` without matplotlib."""
    figure_class = _pyplot()
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Polygon
    from matplotlib.path import Path as MPath

    width, height = picture_size(layout)
    fig = figure_class(figsize=(width / DPI, height / DPI), dpi=DPI * scale)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)  # y grows downwards, as in the SVG
    ax.axis("off")
    points_per_unit = 72.0 / DPI  # font sizes are in points; layout units are pixels
    size = FONT_SIZE * points_per_unit
    font: dict[str, Any] = {"family": "monospace", "size": size}
    for link in layout.links:
        stroke, dash, _ = EDGE_STYLE.get(link.kind, EDGE_STYLE["data"])
        codes = [MPath.MOVETO] + [MPath.LINETO] * (len(link.points) - 1)
        style = (0, tuple(float(x) for x in dash.split())) if dash else "solid"
        ax.add_patch(FancyArrowPatch(path=MPath(link.points, codes), arrowstyle="-|>",
                                     mutation_scale=10, color=stroke, linewidth=1.2,
                                     linestyle=style))
        if link.label:
            (x0, y0), (x1, y1) = link.points[0], link.points[1]
            ax.text((x0 + x1) / 2, (y0 + y1) / 2, link.label, ha="center", va="center",
                    color=stroke, fontdict={**font, "size": size * 0.85},
                    bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 1})
    for box in layout.boxes.values():
        fill, stroke, _ = KIND_STYLE.get(box.kind, KIND_STYLE["value"])
        lw = 2.2 if box.kind == "return" else 1.1
        outline = shape_points(box)
        if outline is not None:
            ax.add_patch(Polygon(outline, closed=True, facecolor=fill, edgecolor=stroke, linewidth=lw))
        else:
            r = min(corner_radius(box), box.h / 2 - 0.5)
            ax.add_patch(FancyBboxPatch((box.left + r, box.top + r), box.w - 2 * r, box.h - 2 * r,
                                        boxstyle=f"round,pad={r}", facecolor=fill,
                                        edgecolor=stroke, linewidth=lw))
            if box.kind == "map":
                ax.add_patch(FancyBboxPatch((box.left + 4, box.top + 4), box.w - 8, box.h - 8,
                                            boxstyle="square,pad=0", facecolor="none",
                                            edgecolor=stroke, linewidth=0.8))
        left, top, _, _ = box.text_extent()
        for i, line in enumerate(box.lines):
            ax.text(left, top + LINE_H * (i + 0.5), line, ha="left", va="center",
                    fontdict=font, color="#1a1a1a")
    _legend(ax, layout, font)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI * scale, facecolor="white")
    return buf.getvalue()


def _legend(ax: Any, layout: Layout, font: dict[str, Any]) -> None:
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    kinds = [k for k in KIND_STYLE if any(b.kind == k for b in layout.boxes.values())]
    edges = [k for k in EDGE_STYLE if any(link.kind == k for link in layout.links)]
    x, y = MARGIN, layout.height + MARGIN / 2
    for k in kinds:
        fill, stroke, text = KIND_STYLE[k]
        ax.add_patch(FancyBboxPatch((x, y), 22, 14, boxstyle="round,pad=0", facecolor=fill,
                                    edgecolor=stroke))
        ax.text(x + 28, y + 7, text, va="center", fontdict=font, color="#333333")
        x += 30 + len(text) * CHAR_W + 18
    x, y = MARGIN, y + (22 if kinds else 0)
    for k in edges:
        stroke, dash, text = EDGE_STYLE[k]
        style = (0, tuple(float(v) for v in dash.split())) if dash else "solid"
        ax.add_patch(FancyArrowPatch((x, y + 7), (x + 30, y + 7), arrowstyle="-|>",
                                     mutation_scale=10, color=stroke, linestyle=style))
        ax.text(x + 38, y + 7, text, va="center", fontdict=font, color="#333333")
        x += 40 + len(text) * CHAR_W + 18
