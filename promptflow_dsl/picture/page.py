"""A placed plan as one self-contained HTML page: the SVG inline, a small stylesheet,
no script and nothing fetched from the network."""

from __future__ import annotations

from html import escape

from .layout import Layout
from .svg import render_svg


def render_html(layout: Layout) -> str:
    """The HTML page of ``layout`` (UTF-8 text)."""
    title = escape(layout.title or "plan")
    svg = render_svg(layout)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{title}</title>\n"
        "<style>\n"
        "body { margin: 0; padding: 16px; background: #fafafa; color: #1a1a1a;\n"
        "       font: 14px system-ui, sans-serif; }\n"
        "h1 { font-size: 16px; font-weight: 600; margin: 0 0 12px; }\n"
        ".graph { overflow: auto; background: #fff; border: 1px solid #ddd; }\n"
        ".graph svg { display: block; }\n"
        ".node:hover rect, .node:hover polygon { stroke-width: 2.5; }\n"
        "</style>\n</head>\n<body>\n"
        f"<h1>{title}</h1>\n<div class=\"graph\">\n{svg}</div>\n</body>\n</html>\n"
    )
