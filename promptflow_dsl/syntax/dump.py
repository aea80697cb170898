"""A stable, readable text form of an AST, for snapshot tests and debugging.

Each node prints as ``Kind@line:col`` followed by its fields, children indented
below.  Spans other than the start position are left out so the dump stays
short; values are printed with ``repr`` so strings show their escapes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .ast import Node

_SKIP = {"span", "name_span", "var_span", "metric_span", "origins"}


def dump(node: Any, indent: str = "") -> str:
    """Return the dump of ``node`` (an AST node, tuple of nodes or plain value)."""
    lines: list[str] = []
    _dump(node, indent, lines, label="")
    return "\n".join(lines)


def _dump(value: Any, indent: str, lines: list[str], label: str) -> None:
    head = f"{indent}{label}"
    if isinstance(value, Node):
        fields = [f for f in dataclasses.fields(value) if f.name not in _SKIP]
        simple = []
        nested = []
        for f in fields:
            v = getattr(value, f.name)
            if isinstance(v, Node) or (isinstance(v, tuple) and any(isinstance(x, Node) for x in v)):
                nested.append((f.name, v))
            else:
                simple.append(f"{f.name}={v!r}")
        span = value.span
        lines.append(f"{head}{type(value).__name__}@{span.line}:{span.col}"
                     + (" " + " ".join(simple) if simple else ""))
        for name, v in nested:
            if isinstance(v, tuple):
                lines.append(f"{indent}  {name}:")
                for item in v:
                    _dump(item, indent + "    ", lines, "- ")
            else:
                _dump(v, indent + "  ", lines, f"{name}: ")
    else:
        lines.append(f"{head}{value!r}")
