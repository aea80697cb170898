"""GBNF grammars for constrained decoding (llama.cpp's grammar format): the subset of
regular expressions that becomes a grammar, and the grammar of a sketch hole.

A hole's grammar describes its value — ``int``: an optional minus and digits;
``float``: a decimal number; ``bool``: ``true`` or ``false``; choices: one of
the strings; ``regex``: the expression through :func:`regex_to_gbnf` (the
subset that converts; the checker warns about the rest) — then, when the value is continued
from raw text, the hole's *terminator* (its ``stop`` string, else the first
characters of the template text after it).  Ending the grammar with the
terminator makes generation end by itself: once the terminator is written the
grammar admits nothing more and llama.cpp emits end-of-generation, instead of
writing digits until ``max_tokens``.  A prefix whose trailing spaces were held
back (so that the model writes ``" 42"`` as it would naturally tokenize) gets an
optional leading space.

The runtime validates every value afterwards anyway, so a grammar that admits less than the constraint (ASCII ``\\d``) is safe.
"""

from __future__ import annotations

import re
from typing import Any

from .holes import hole_kind

__all__ = ["INT_GBNF", "FLOAT_GBNF", "value_grammar", "hole_grammar", "free_text_grammar",
           "Unsupported", "regex_to_gbnf", "gbnf_literal", "gbnf_class_char"]

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


# ------------------------------------------------------------------ regex -> GBNF


class Unsupported(ValueError):
    """A regular expression outside the subset that becomes a grammar (the message says why)."""


_MAX_EXPANSION = 64  # bounded repeats {m,n} are written out; larger counts are not converted
_MAX_GRAMMAR = 20_000


def gbnf_literal(text: str) -> str:
    """``text`` as a quoted GBNF string."""
    return '"' + "".join(_escape(ch, '"\\') for ch in text) + '"'


def gbnf_class_char(ch: str) -> str:
    """``ch`` written for the inside of a GBNF character class."""
    return _escape(ch, _CLASS_SPECIALS)


_CLASS_SPECIALS = "]\\-^["


def _escape(ch: str, specials: str) -> str:
    if ch in "-^" and ch in specials:  # llama.cpp knows no \- or \^ escape
        return f"\\x{ord(ch):02X}"
    if ch in specials:
        return "\\" + ch
    if ch == "\n":
        return "\\n"
    if ch == "\t":
        return "\\t"
    if ch == "\r":
        return "\\r"
    if ord(ch) < 0x20 or ord(ch) == 0x7F:
        return f"\\x{ord(ch):02X}"
    return ch


def regex_to_gbnf(pattern: str) -> str:
    """A GBNF expression whose language is the strings ``re.fullmatch(pattern, s)`` accepts.

    The subset: literals, ``.``, classes (ranges, negation, ``\\d \\w \\s`` inside and
    out; ``\\D \\W \\S`` alone), ``? * +`` and ``{m,n}`` (greedy or lazy: the same
    language under a full match), alternation, groups, and ``^``/``$`` at the ends.
    ``\\d`` and ``\\w`` become their ASCII forms (a subset of Python's, so every
    grammar output still matches; the runtime validates anyway).  Anything else —
    flags, back-references, look-arounds, ``\\b``, atomic or possessive groups —
    raises :class:`Unsupported`.
    """
    import re._constants as c
    import re._parser as p

    try:
        tree = p.parse(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        raise Unsupported(f"invalid regex: {exc}") from None
    flags = tree.state.flags & (re.IGNORECASE | re.DOTALL | re.MULTILINE | re.ASCII)
    if flags & ~(re.MULTILINE | re.ASCII):
        raise Unsupported("flags such as (?i) or (?s) are not supported")
    items = list(tree)
    if items and items[0] == (c.AT, c.AT_BEGINNING):
        items = items[1:]
    if items and items[-1] in ((c.AT, c.AT_END), (c.AT, c.AT_END_STRING)):
        items = items[:-1]
    out = _Converter(c).seq(items)
    if len(out) > _MAX_GRAMMAR:
        raise Unsupported("the grammar would be too large")
    return out or '""'


class _Converter:
    def __init__(self, c: Any) -> None:
        self.c = c
        self.categories = {
            c.CATEGORY_DIGIT: "0-9", c.CATEGORY_WORD: "0-9A-Za-z_",
            c.CATEGORY_SPACE: " \\t\\n\\r\\x0B\\x0C"}
        self.negated = {c.CATEGORY_NOT_DIGIT: c.CATEGORY_DIGIT, c.CATEGORY_NOT_WORD: c.CATEGORY_WORD,
                        c.CATEGORY_NOT_SPACE: c.CATEGORY_SPACE}

    def seq(self, items: Any) -> str:
        parts: list[str] = []
        literal = ""
        for op, av in items:
            if op is self.c.LITERAL:
                literal += chr(av)
                continue
            if literal:
                parts.append(gbnf_literal(literal))
                literal = ""
            parts.append(self.item(op, av))
        if literal:
            parts.append(gbnf_literal(literal))
        return " ".join(parts)

    def group(self, items: Any) -> str:
        body = self.seq(items)
        return f"({body})" if body else '""'

    def item(self, op: Any, av: Any) -> str:
        c = self.c
        if op is c.NOT_LITERAL:
            return "[^" + _escape(chr(av), _CLASS_SPECIALS) + "]"
        if op is c.ANY:
            return "[^\\n]"
        if op is c.IN:
            return self.klass(av)
        if op is c.SUBPATTERN:
            _, add, remove, sub = av
            if add or remove:
                raise Unsupported("inline flags in a group are not supported")
            return self.group(sub)
        if op is c.BRANCH:
            return "(" + " | ".join(self.seq(alt) or '""' for alt in av[1]) + ")"
        if op in (c.MAX_REPEAT, c.MIN_REPEAT):
            return self.repeat(*av)
        if op is c.AT:
            shown = {c.AT_BOUNDARY: "\\b", c.AT_NON_BOUNDARY: "\\B", c.AT_BEGINNING: "^",
                     c.AT_END: "$", c.AT_BEGINNING_STRING: "\\A", c.AT_END_STRING: "\\Z"}
            raise Unsupported(f"the anchor {shown.get(av, av)} is only supported as a leading ^ "
                              f"or a trailing $")
        name = {c.GROUPREF: "back-references", c.ASSERT: "look-arounds", c.ASSERT_NOT: "look-arounds"}
        raise Unsupported(f"{name.get(op, str(op).lower())} are not supported")

    def klass(self, items: Any) -> str:
        c = self.c
        negate = bool(items) and items[0][0] is c.NEGATE
        body = items[1:] if negate else items
        if len(body) == 1 and body[0][0] is c.CATEGORY and body[0][1] in self.negated:
            if negate:
                raise Unsupported("a negated class of a negated category")
            return "[^" + self.categories[self.negated[body[0][1]]] + "]"
        chars = []
        for op, av in body:
            if op is c.LITERAL:
                chars.append(_escape(chr(av), _CLASS_SPECIALS))
            elif op is c.RANGE:
                lo, hi = (_escape(chr(x), _CLASS_SPECIALS) for x in av)
                chars.append(f"{lo}-{hi}")
            elif op is c.CATEGORY and av in self.categories:
                chars.append(self.categories[av])
            else:
                raise Unsupported("\\D, \\W or \\S inside a character class")
        if not chars:
            raise Unsupported("an empty character class")
        return "[" + ("^" if negate else "") + "".join(chars) + "]"

    def repeat(self, lo: int, hi: Any, sub: Any) -> str:
        c = self.c
        if len(sub) == 1 and sub[0][0] is c.LITERAL:
            inner = gbnf_literal(chr(sub[0][1]))
        elif len(sub) == 1 and sub[0][0] in (c.IN, c.ANY, c.NOT_LITERAL):
            inner = self.item(*sub[0])
        else:
            inner = self.group(sub)
        unbounded = hi == self.c.MAXREPEAT
        if lo > _MAX_EXPANSION or (not unbounded and hi > _MAX_EXPANSION):
            raise Unsupported(f"repeat counts above {_MAX_EXPANSION}")
        if unbounded:
            if lo == 0:
                return f"{inner}*"
            return " ".join([inner] * (lo - 1) + [f"{inner}+"])
        parts = [inner] * lo
        optional = ""
        for _ in range(hi - lo):
            optional = f"({inner} {optional})?" if optional else f"{inner}?"
        if optional:
            parts.append(optional)
        return " ".join(parts) if parts else '""'
