"""Rendering a sketch's template before its holes are filled (run stage).

The whole template is rendered by Jinja once, with the sketch's inputs, each hole
standing in as a marker; the rendered text is then split at the markers.  So a
``{% for %}`` or ``{% if %}`` may span holes: a hole inside a loop occurs once per
iteration (its instances are keyed ``name[0]``, ``name[1]``, ...), a hole in a
false ``{% if %}`` does not occur.  A literal that reads an earlier hole
(``{{ answer }}``) keeps a reference marker in its text, replaced by the hole's text
when the decoder reaches it (:func:`fill_refs`); the checker allows only a bare
``{{ name }}`` for it.  Markers carry a random nonce drawn per call, so no input
value can forge one, and text a model wrote is never rendered.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...lang.holes import Hole, SketchTemplate, jinja_source, repeated_holes
from ...lang.templates import template_env

_templates: dict[str, Any] = {}
_TEMPLATES_KEPT = 256


@dataclass(frozen=True)
class HoleAt:
    """One occurrence of a hole in the rendered sketch."""

    hole: Hole
    key: str  # the hole's name, or name[i] for the i-th iteration of a loop
    index: int | None  # the iteration, for a hole inside a loop


class _Ref:
    """What a literal sees for a hole's name: a marker the decoder replaces."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __str__(self) -> str:
        return self.marker


class Markers:
    """The hole and reference markers of one call (a fresh nonce each)."""

    def __init__(self) -> None:
        self.nonce = secrets.token_hex(8)
        self.hole_re = re.compile(f"\x00{self.nonce}h([0-9]+)\x00")
        self.ref_re = re.compile(f"\x00{self.nonce}r([A-Za-z_][A-Za-z0-9_]*)\x00")

    def hole(self, index: int) -> str:
        return f"\x00{self.nonce}h{index}\x00"

    def ref(self, name: str) -> str:
        return f"\x00{self.nonce}r{name}\x00"


def render_template(tpl: SketchTemplate, variables: dict[str, Any],
                    markers: Markers) -> list[str | HoleAt]:
    """The sketch's literal texts (non-empty, possibly with reference markers) and hole
    occurrences, in order.  Raises whatever Jinja raises while rendering."""
    source = jinja_source(tpl, lambda i: f"{{{{ {_HOLE_FN}({i}) }}}}")
    tpl_obj = _templates.get(source)
    if tpl_obj is None:
        if len(_templates) >= _TEMPLATES_KEPT:
            _templates.pop(next(iter(_templates)))
        tpl_obj = _templates[source] = template_env().from_string(source)
    refs = {h.name: _Ref(markers.ref(h.name)) for h in tpl.holes if h.name not in variables}
    text = tpl_obj.render(**refs, **variables, **{_HOLE_FN: markers.hole})
    repeated = repeated_holes(tpl)
    seen: dict[str, int] = {}
    out: list[str | HoleAt] = []
    last = 0
    for m in markers.hole_re.finditer(text):
        if m.start() > last:
            out.append(text[last:m.start()])
        seg = tpl.segments[int(m.group(1))]
        assert isinstance(seg, Hole)
        if seg.name in repeated:
            k = seen.get(seg.name, 0)
            seen[seg.name] = k + 1
            out.append(HoleAt(seg, f"{seg.name}[{k}]", k))
        else:
            out.append(HoleAt(seg, seg.name, None))
        last = m.end()
    if last < len(text):
        out.append(text[last:])
    return out


#: the name the hole markers are called by in the Jinja source (not a valid .pflow name)
_HOLE_FN = "__pflow_hole__"


def fill_refs(text: str, markers: Markers, lookup: Callable[[str], str]) -> str:
    """``text`` with each reference marker replaced by ``lookup(hole name)``."""
    if "\x00" not in text:
        return text
    return markers.ref_re.sub(lambda m: lookup(m.group(1)), text)


def static_head(text: str) -> str:
    """The part of a literal before its first reference marker."""
    i = text.find("\x00")
    return text if i < 0 else text[:i]
