"""The shell of every report page: one self-contained HTML file.

Styles and scripts are package data files (``assets/``) read when a page is built
and written inline; the page's data is one JSON blob in a
``<script type="application/json">`` element, escaped so that no text in it can end
the element or break the script. A Content-Security-Policy forbids every network
request: the page loads nothing from anywhere.
"""

from __future__ import annotations

import functools
import html
import json
import math
from importlib import resources
from typing import Any

CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
       "img-src data:")

_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                 "\u2028": "\\u2028", "\u2029": "\\u2029"}
_JSON_TABLE = str.maketrans(_JSON_ESCAPES)


def esc(value: Any) -> str:
    """``value`` as HTML text (``&``, ``<``, ``>`` and both quotes escaped)."""
    return html.escape(str(value), quote=True)


@functools.cache
def asset(name: str) -> str:
    """The text of the package data file ``assets/NAME``.

    Raises ``FileNotFoundError`` when the package was installed without it."""
    return (resources.files(__package__) / "assets" / name).read_text(encoding="utf-8")


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by its name (JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def script_json(data: Any) -> str:
    """``data`` as JSON that is safe inside a ``<script>`` element: ``<``, ``>``,
    ``&``, U+2028 and U+2029 are written as ``\\uXXXX`` escapes (so ``</script>`` or
    ``<!--`` in a value cannot end the element), NaN and infinities as strings."""
    try:
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False,
                          default=str)
    except ValueError:
        text = json.dumps(_finite(data), ensure_ascii=False, separators=(",", ":"),
                          allow_nan=False, default=str)
    return text.translate(_JSON_TABLE)


def page(title: str, body: str, *, data: Any = None, styles: tuple[str, ...] = ("base.css",),
         scripts: tuple[str, ...] = (), body_class: str = "") -> str:
    """A whole HTML document: ``title`` (escaped here), ``body`` (HTML the caller has
    escaped), the named asset styles and scripts inline, and ``data`` (when given) as
    the JSON of ``<script id="pflow-data" type="application/json">``."""
    parts = ["<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
             f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">",
             "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
             "<link rel=\"icon\" href=\"data:,\">",
             f"<title>{esc(title)}</title>"]
    parts += [f"<style>\n{asset(s)}\n</style>" for s in styles]
    parts.append(f"</head><body class=\"{esc(body_class)}\">" if body_class else "</head><body>")
    parts.append(body)
    if data is not None:
        parts.append(f"<script id=\"pflow-data\" type=\"application/json\">{script_json(data)}"
                     "</script>")
    parts += [f"<script>\n{asset(s)}\n</script>" for s in scripts]
    parts.append("</body></html>\n")
    return "\n".join(parts)
