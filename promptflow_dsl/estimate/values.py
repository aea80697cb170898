"""Values as the estimator sees them: known, or unknown with a size.

A :class:`Known` value came from the data, a default or a constant, and prompts that
read it are rendered with it exactly. An :class:`Unknown` value is only known by its
type and its size when a template writes it: ``typical`` tokens (the low end) and at
most ``bound`` tokens (the high end; ``None``: no bound is known). A model's reply is
unknown with its typical length and its ``max_tokens``; an input without data, or a
tool's result, is unknown with size 0 and no bound.

Templates are rendered with a *placeholder* in place of each unknown value — the
smallest value of its type (:func:`placeholder`: ``""``, ``0``, ``[]``, a record of
placeholders) — and each reference to it in the template adds its size
(:func:`references`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ..lang.types import (
    BoolType,
    DictType,
    FloatType,
    IntType,
    ListType,
    LiteralType,
    NoneType_,
    OptionalType,
    RecordType,
    Type,
)

#: a typical str reply, in tokens (capped at the call's max_tokens)
TYPICAL_TEXT_TOKENS = 100
#: words in each string of a sample JSON value (the typical size of a structured reply)
SAMPLE_WORDS = 8
#: items of each list in a sample JSON value
SAMPLE_ITEMS = 3


@dataclass(frozen=True)
class Known:
    value: Any


@dataclass(frozen=True)
class Unknown:
    type: Type
    typical: int = 0
    bound: int | None = None


Value = Known | Unknown


def unknown_input(t: Type) -> Unknown:
    """An input nothing is known about: size 0 at the low end, no bound."""
    return Unknown(t, 0, None)


@dataclass(frozen=True)
class _Shape:
    """How large an example value is: its text, list length, literal and numbers."""

    text: str
    items: int
    pick: Any  # min or max: which literal value, by length
    number: int
    real: float


_SMALLEST = _Shape("", 0, min, 0, 0.0)
_TYPICAL = _Shape(" ".join(["word"] * SAMPLE_WORDS), SAMPLE_ITEMS, max, 1234, 0.75)


def _example(t: Type, shape: _Shape) -> Any:
    if isinstance(t, OptionalType):
        return _example(t.inner, shape)
    if isinstance(t, RecordType):
        return {f.name: _example(f.type, shape) for f in t.fields}
    if isinstance(t, ListType):
        return [_example(t.item, shape) for _ in range(shape.items)]
    if isinstance(t, DictType):
        return {f"key{i + 1}": _example(t.value, shape) for i in range(shape.items)}
    if isinstance(t, LiteralType):
        return shape.pick(t.values, key=len)
    if isinstance(t, BoolType):
        return False
    if isinstance(t, IntType):
        return shape.number
    if isinstance(t, FloatType):
        return shape.real
    if isinstance(t, NoneType_):
        return None
    return shape.text  # str, any


def placeholder(t: Type) -> Any:
    """The smallest value of type ``t`` (for rendering a template that reads an unknown
    value): ``""``, ``0``, ``[]``, the shortest literal, a record of placeholders."""
    return _example(t, _SMALLEST)


def sample(t: Type) -> Any:
    """A value of type ``t`` of typical size: strings of :data:`SAMPLE_WORDS` words, lists
    of :data:`SAMPLE_ITEMS` items, the longest literal (for the typical size of a
    structured reply)."""
    return _example(t, _TYPICAL)


@lru_cache(maxsize=512)
def _name_counts(source: str) -> dict[str, int]:
    """How often each variable name is read in a Jinja template (attribute names after
    a dot are not variables)."""
    from ..lang.templates import template_env

    counts: dict[str, int] = {}
    after_dot = False
    inside = False
    try:
        for _, kind, value in template_env().lex(source):
            if kind == "whitespace":
                continue
            if kind in ("variable_begin", "block_begin"):
                inside = True
            elif kind in ("variable_end", "block_end"):
                inside = False
            elif inside and kind == "name" and not after_dot:
                counts[value] = counts.get(value, 0) + 1
            after_dot = kind == "operator" and value == "."
    except Exception:  # noqa: BLE001 - the checker accepted it; a lexer surprise counts nothing
        return {}
    return counts


def references(source: str, names: set[str] | frozenset[str]) -> dict[str, int]:
    """``{name: how often the template reads it}`` for the given names."""
    counts = _name_counts(source)
    return {n: counts[n] for n in names if counts.get(n)}


@lru_cache(maxsize=512)
def literal_text(source: str) -> str:
    """The template's text outside any ``{{ }}``, ``{% %}`` and block (what every rendering
    contains): a lower bound when the template cannot be rendered with placeholders."""
    from ..lang.templates import template_env

    openers = {"for", "if", "macro", "call", "filter", "block", "with", "raw", "set",
               "autoescape", "trans"}
    out: list[str] = []
    depth = 0
    in_block = False
    first = False
    assigned = False
    opener = ""
    try:
        for _, kind, value in template_env().lex(source):
            if kind == "data" and depth == 0:
                out.append(value)
            elif kind == "block_begin":
                in_block, first, assigned, opener = True, True, False, ""
            elif kind == "name" and in_block and first:
                first = False
                if value.startswith("end"):
                    depth = max(0, depth - 1)
                elif value in openers:
                    opener = value
            elif kind == "operator" and value == "=" and in_block:
                assigned = True
            elif kind == "block_end":
                if opener and not (opener == "set" and assigned):
                    depth += 1
                in_block = False
    except Exception:  # noqa: BLE001
        return ""
    return "".join(out)
