"""GBNF grammars for sketch holes (llama.cpp's grammar format).

A hole's grammar describes its value — ``int``: an optional minus and digits;
``float``: a decimal number; ``bool``: ``true`` or ``false``; choices: one of
the strings; ``regex``: the expression through
:func:`promptflow_dsl.check.capabilities.regex_to_gbnf` (the subset that
converts; the checker warns about the rest) — then, when the value is continued
from raw text, the hole's *terminator* (its ``stop`` string, else the first
characters of the template text after it).  Ending the grammar with the
terminator makes generation end by itself: once the terminator is written the
grammar admits nothing more and llama.cpp emits end-of-generation, instead of
writing digits until ``max_tokens``.  A prefix whose trailing spaces were held
back (so that the model writes ``" 42"`` as it would naturally tokenize) gets an
optional leading space.

The runtime validates every value afterwards anyway (:mod:`.sketch`), so a
grammar that admits less than the constraint (ASCII ``\\d``) is safe.
"""

from __future__ import annotations

from typing import Any

from ..check.capabilities import (
    Unsupported,
    gbnf_class_char,
    gbnf_literal,
    hole_kind,
    regex_to_gbnf,
)

__all__ = ["INT_GBNF", "FLOAT_GBNF", "value_grammar", "hole_grammar", "free_text_grammar"]

INT_GBNF = '"-"? [0-9]+'
FLOAT_GBNF = '"-"? [0-9]+ ("." [0-9]+)?'


def value_grammar(hole: Any, choices: tuple[str, ...] | None = None) -> str | None:
    """The GBNF expression of a hole's value, or None when it has no grammar (plain
    text, or a regex outside the convertible subset)."""
    kind = hole_kind(hole)
    if kind == "int":
        return INT_GBNF
    if kind == "float":
        return FLOAT_GBNF
    if kind in ("choice", "bool"):
        options = choices or (hole.choices if kind == "choice" else ("true", "false"))
        return "(" + " | ".join(gbnf_literal(c) for c in options) + ")"
    if kind == "regex":
        try:
            return "(" + regex_to_gbnf(hole.regex) + ")"
        except Unsupported:
            return None
    return None


def hole_grammar(hole: Any, *, lead_space: bool = False, terminator: str | None = None,
                 choices: tuple[str, ...] | None = None) -> str | None:
    """A whole grammar (``root ::= ...``) for a hole, or None (see the module docstring)."""
    value = value_grammar(hole, choices)
    if value is None:
        return None
    parts = ['" "?'] if lead_space else []
    parts.append(value)
    if terminator:
        parts.append(gbnf_literal(terminator))
    return "root ::= " + " ".join(parts) + "\n"


def free_text_grammar(stop: str, *, lead_space: bool = False) -> str | None:
    """For a plain text hole continued from raw text and ended by a one-character
    ``stop``: at least one character that is neither whitespace nor the stop, then
    anything but the stop, then the stop.  Without it, a model that wants to start a
    new line after ``"step by step."`` hits a newline stop at once and the hole is
    empty.  Longer stops get no grammar (None)."""
    if len(stop) != 1:
        return None
    c = gbnf_class_char(stop)
    lead = '" "? ' if lead_space else ""
    return f"root ::= {lead}[^ \\t\\n{c}] [^{c}]* {gbnf_literal(stop)}\n"
