"""Split a ``sketch`` template into literal text and typed holes.

A sketch template is Jinja2 text in which the model fills *holes*::

    Let's think step by step. [reasoning stop="\\n" max_tokens=80]
    Therefore the claim is [verdict in {"true", "false"}].

Syntax, outside the Jinja regions ``{{ ... }}``, ``{% ... %}`` and ``{# ... #}``
(which are copied verbatim, brackets included, up to their closer or the end
of the text):

* ``[`` directly followed by an identifier (``[A-Za-z_][A-Za-z0-9_]*``) and then
  ``]``, a space or ``:`` opens a hole; any other ``[`` is literal text
  (``[1, 2]``, ``[ x]``, ``[]``).  ``[[`` is a literal ``[``.
* After the name come options, in any order, each at most once, separated by
  whitespace (spaces, tabs, newlines); whitespace is also allowed around
  ``=``, ``:``, ``{``, ``,`` and ``}``:

  - ``stop="..."``: stop string, Python backslash escapes processed; or
    ``stop=["...", "..."]``: several stop strings (the first one found ends the
    value), one or more distinct non-empty strings, optional trailing comma;
  - ``keep_stop``: a flag (no value): the stop string that ended the value is
    kept at its end; needs ``stop=``;
  - ``min_chars=N`` / ``max_chars=N``: the value (stripped) has at least / at
    most ``N`` characters; text and regex holes only, ``min_chars <= max_chars``;
  - ``in {"a", "b"}``: choices, one or more distinct strings (escapes
    processed), optional trailing comma; not combinable with ``: int``,
    ``: float``, ``: bool`` or ``regex=``;
  - ``: TYPE``: one of ``str`` (default), ``int``, ``float``, ``bool``;
  - ``regex=r"..."`` (raw) or ``regex="..."`` (escapes processed): must compile
    with :mod:`re`;
  - ``max_tokens=N``: a positive integer.

* The hole ends at the first ``]`` outside an option string.

:func:`parse_template` never raises: problems become :class:`HoleError` values.
After an error the rest of that hole is skipped up to its ``]`` and parsing
goes on, so one call reports every problem it can, up to :data:`MAX_ERRORS`: the rest
are counted in one last error at the first of them.  A hole with errors is
still returned (with the options that parsed), so the segments always cover
the whole template.  ``{% raw %}`` blocks get no special treatment.
"""

from __future__ import annotations

import re
import threading
from bisect import bisect_right
from dataclasses import dataclass
from typing import Any

from .trigger_patterns import size_problem

__all__ = ["TYPES", "Hole", "HoleError", "Literal", "SketchTemplate", "jinja_source", "masked_source",
           "repeated_holes",
           "hole_kind", "offset_to_line_col", "parse_template"]

TYPES = ("str", "int", "float", "bool")

#: the most problems one template reports one by one
MAX_ERRORS = 100

_WS = " \t\r\n"
_JINJA = {"{{": "}}", "{%": "%}", "{#": "#}"}
_EXPECTED = "expected stop=, in {...}, : TYPE, regex= or max_tokens="
_TYPE_HINT = "int, float, bool or str"
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SPACES = re.compile(r"[ \t\r\n]*")
_PLAIN = re.compile(r"[^\[{]+")  # text that cannot start a hole, [[ or a Jinja region
_DIGITS = re.compile(r"[0-9]+")
_NEWLINE = re.compile(r"\n")
# One valid Python escape sequence (decoded with the unicode_escape codec).
_ESCAPE = re.compile(r'\\(?:[\n\\\'"abfnrtv]|[0-7]{1,3}|x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4}'
                     r"|U[0-9A-Fa-f]{8}|N\{[^}]*\})")
_BAD_ESCAPE = {k: f"truncated '\\{k}' escape; expected {n} hex digits"
               for k, n in (("x", 2), ("u", 4), ("U", 8))}
_BAD_ESCAPE["N"] = "malformed '\\N' escape; expected \\N{NAME}"


@dataclass(frozen=True)
class Literal:
    text: str  # literal text with [[ already turned into [
    start: int  # offset in the template where the segment begins
    end: int  # offset just past it


@dataclass(frozen=True)
class Hole:
    name: str
    start: int  # offset of the opening [
    end: int  # offset just past the closing ] (end of text if unterminated)
    stop: str | None = None
    choices: tuple[str, ...] | None = None
    type: str = "str"
    regex: str | None = None
    max_tokens: int | None = None
    name_start: int = 0  # offset of the name's first char
    stops: tuple[str, ...] | None = None  # several stop strings (``stop`` is the first), or None
    keep_stop: bool = False  # the stop string that ended the value is part of it
    min_chars: int | None = None
    max_chars: int | None = None


@dataclass(frozen=True)
class HoleError:
    message: str
    start: int
    end: int


@dataclass(frozen=True)
class SketchTemplate:
    segments: tuple[Literal | Hole, ...]
    errors: tuple[HoleError, ...]

    @property
    def holes(self) -> tuple[Hole, ...]:
        """The holes, in template order."""
        return tuple(s for s in self.segments if isinstance(s, Hole))


def parse_template(text: str) -> SketchTemplate:
    """Return the template's segments and errors; never raises.

    Every recognised hole is in ``segments``, even one with errors (carrying the
    options that parsed), so literal texts plus holes' source cover the text.
    """
    return _Parser(text).run()


def offset_to_line_col(text: str, offset: int) -> tuple[int, int]:
    """Return the 0-based (line, column) of ``offset`` in ``text``; never raises.

    Lines end at ``\\n``; the offset is clamped to ``0..len(text)``.  The line starts
    of the last few texts are kept, so locating every hole and error of a template
    costs one pass over it plus a binary search each (not a scan each).
    """
    offset = max(0, min(offset, len(text)))
    starts = line_starts(text)
    line = bisect_right(starts, offset) - 1
    return line, offset - starts[line]


_LINE_STARTS: dict[int, tuple[str, tuple[int, ...]]] = {}
_LINE_STARTS_KEPT = 16
_LINE_STARTS_LOCK = threading.Lock()


def line_starts(text: str) -> tuple[int, ...]:
    """The offset of the first character of each line of ``text`` (the first is 0).

    Kept for the last few text objects, found by identity: an equal text in another
    object is indexed again rather than compared character by character.
    """
    kept = _LINE_STARTS.get(id(text))
    if kept is not None and kept[0] is text:
        return kept[1]
    starts = (0, *(m.end() for m in _NEWLINE.finditer(text)))
    with _LINE_STARTS_LOCK:
        while len(_LINE_STARTS) >= _LINE_STARTS_KEPT:
            del _LINE_STARTS[next(iter(_LINE_STARTS))]
        _LINE_STARTS[id(text)] = (text, starts)
    return starts


class _Fail(Exception):
    """A hole error; ``resume`` is where skipping to the hole's ``]`` starts."""

    def __init__(self, message: str, start: int, end: int,
                 resume: int | None = None, eof: bool = False) -> None:
        super().__init__(message)
        self.error = HoleError(message, start, end)
        self.resume = start if resume is None else resume
        self.eof = eof  # an unterminated string already ran to the end of the text


class _Parser:
    def __init__(self, text: str) -> None:
        self.text, self.n = text, len(text)
        self.segments: list[Literal | Hole] = []
        self.errors: list[HoleError] = []
        self.names: set[str] = set()
        self.lit: list[str] = []
        self.lit_start = self.lit_end = 0

    # -- lexing helpers -----------------------------------------------------
    def skip_ws(self, i: int) -> int:
        return _SPACES.match(self.text, i).end()  # type: ignore[union-attr]

    def ident_end(self, i: int) -> int:
        m = _IDENT.match(self.text, i)
        return m.end() if m else i

    def span(self, i: int) -> tuple[int, int]:
        return i, min(i + 1, self.n)

    def string_end(self, i: int) -> int | None:
        """Offset past the string quoted at ``i`` (backslash escapes any char), or None."""
        quote, i = self.text[i], i + 1
        while i < self.n and self.text[i] != quote:
            i += 2 if self.text[i] == "\\" else 1
        return i + 1 if i < self.n else None

    # -- literal text and Jinja regions ---------------------------------------
    def run(self) -> SketchTemplate:
        text, i = self.text, 0
        while i < self.n:
            pair = text[i:i + 2]
            if pair in _JINJA:
                end = self.jinja_end(i + 2, _JINJA[pair], strings=pair != "{#")
                self.add_literal(text[i:end], i, end)
            elif pair == "[[":
                end = i + 2
                self.add_literal("[", i, end)
            elif pair[0] == "[" and self.opens_hole(i):
                end = self.parse_hole(i)
            else:
                m = _PLAIN.match(text, i + 1)
                end = m.end() if m else i + 1
                self.add_literal(text[i:end], i, end)
            i = end
        self.flush()
        self.errors.sort(key=lambda e: (e.start, e.end))
        if len(self.errors) > MAX_ERRORS:
            rest = self.errors[MAX_ERRORS:]
            self.errors[MAX_ERRORS:] = [HoleError(
                f"{len(rest)} more problems in this template (only the first {MAX_ERRORS} "
                f"are reported)", rest[0].start, rest[0].end)]
        return SketchTemplate(tuple(self.segments), tuple(self.errors))

    def jinja_end(self, i: int, closer: str, strings: bool) -> int:
        """Offset past ``closer``, skipping Jinja string literals; end of text if missing."""
        while i < self.n and not self.text.startswith(closer, i):
            i = (self.string_end(i) or self.n) if strings and self.text[i] in "'\"" else i + 1
        return min(i + 2, self.n)

    def opens_hole(self, i: int) -> bool:
        name_end = self.ident_end(i + 1)
        return i + 1 < name_end < self.n and self.text[name_end] in "] :"

    def add_literal(self, piece: str, start: int, end: int) -> None:
        if not self.lit:
            self.lit_start = start
        self.lit.append(piece)
        self.lit_end = end

    def flush(self) -> None:
        if self.lit:
            self.segments.append(Literal("".join(self.lit), self.lit_start, self.lit_end))
            self.lit = []

    # -- holes ----------------------------------------------------------------
    def parse_hole(self, start: int) -> int:
        """Parse the hole opening at ``start``, record it; return the offset past it."""
        self.flush()
        name_end = self.ident_end(start + 1)
        name = self.text[start + 1:name_end]
        opts: dict[str, Any] = {}
        spans: dict[str, tuple[int, int]] = {}
        try:
            end = self.parse_options(name_end, opts, spans)
        except _Fail as fail:
            if fail.error.start < self.n:  # at the end of text it is reported as unterminated
                self.errors.append(fail.error)
            closed = self.skip_to_close(fail.resume)
            end = self.n if closed is None else closed
            if closed is None:
                if not fail.eof:
                    self.errors.append(
                        HoleError(f"unterminated hole '{name}'; expected ']'", start, end))
        if name in self.names:
            self.errors.append(HoleError(f"duplicate hole name '{name}'", start + 1, name_end))
        self.names.add(name)
        if "choices" in opts:
            for key in ("type", "regex"):
                if key in opts and (key == "regex" or opts[key] != "str"):
                    label = "regex=" if key == "regex" else f": {opts[key]}"
                    self.errors.append(HoleError(
                        f"'in {{...}}' cannot be combined with '{label}'; choices are strings",
                        *max(spans["choices"], spans[key])))
        self.check_combinations(opts, spans)
        if "stop" in opts:
            stops = opts["stop"]
            opts["stop"] = stops[0]
            if len(stops) > 1:
                opts["stops"] = stops
        self.segments.append(Hole(name, start, end, name_start=start + 1, **opts))
        return end

    def check_combinations(self, opts: dict[str, Any], spans: dict[str, tuple[int, int]]) -> None:
        """Options that parse alone but not together (an error each, at the later option)."""
        if opts.get("keep_stop") and "stop" not in opts:
            self.errors.append(HoleError("'keep_stop' needs a stop string: add stop=\"...\"",
                                         *spans["keep_stop"]))
        typed = "choices" in opts or opts.get("type", "str") != "str"
        for key in ("min_chars", "max_chars"):
            if key in opts and typed:
                self.errors.append(HoleError(f"'{key}=' applies to text holes only (not to choices "
                                             f"or typed holes)", *spans[key]))
        lo, hi = opts.get("min_chars"), opts.get("max_chars")
        if lo is not None and hi is not None and lo > hi:
            self.errors.append(HoleError(f"min_chars={lo} is more than max_chars={hi}: no value "
                                         f"can have both", *max(spans["min_chars"], spans["max_chars"])))

    def skip_to_close(self, i: int) -> int | None:
        """Offset past the next ``]`` outside strings, or None if there is none."""
        while i < self.n and self.text[i] != "]":
            i = self.string_end(i) if self.text[i] == '"' else i + 1  # type: ignore[assignment]
            if i is None:
                return None
        return i + 1 if i < self.n else None

    def parse_options(self, i: int, opts: dict[str, Any],
                      spans: dict[str, tuple[int, int]]) -> int:
        """Parse options up to the closing ``]`` into ``opts``; return the offset past it."""
        text = self.text
        while True:
            i = start = self.skip_ws(i)
            if i >= self.n:
                raise _Fail("unterminated hole", i, i)
            word = text[i:self.ident_end(i)]
            if text[i] == "]":
                return i + 1
            if text[i] == ":":
                key, label, j = "type", ": TYPE", self.skip_ws(i + 1)
                i = self.ident_end(j)
                value: Any = text[j:i]
                if not value:
                    raise _Fail(f"expected a type name after ':' ({_TYPE_HINT})", *self.span(j))
                if value not in TYPES:
                    raise _Fail(f"unknown type '{value}'; expected {_TYPE_HINT}", j, i)
            elif word == "in":
                key, label = "choices", "in {...}"
                value, i = self.parse_choices(self.skip_ws(i + 2))
            elif word == "keep_stop":
                key, label, value, i = "keep_stop", "keep_stop", True, i + len(word)
            elif word in ("stop", "regex", "max_tokens", "min_chars", "max_chars"):
                key, label = word, word + "="
                j = self.skip_ws(i + len(word))
                if j >= self.n or text[j] != "=":
                    raise _Fail(f"expected '=' after '{word}'", *self.span(j))
                j = self.skip_ws(j + 1)
                if word == "stop":
                    value, i = self.parse_stops(j)
                elif word == "regex":
                    value, i = self.parse_regex(j)
                else:
                    value, i = self.parse_max_tokens(j, word)
            elif word:
                raise _Fail(f"unknown hole option '{word}'; {_EXPECTED}", i, i + len(word))
            else:
                raise _Fail(f"unexpected {text[i]!r} in hole; {_EXPECTED} or ']'", i, i + 1)
            if key in opts:
                raise _Fail(f"duplicate hole option '{label}'", start, i)
            opts[key], spans[key] = value, (start, i)
            if i < self.n and text[i] not in _WS + "]:":
                raise _Fail(f"expected whitespace or ']' after an option, found {text[i]!r}",
                            i, i + 1)

    def parse_regex(self, i: int) -> tuple[str, int]:
        raw = self.text.startswith("r", i)
        value, end = self.parse_string(i + raw, "after 'regex=' (r\"...\" or \"...\")", raw)
        try:
            re.compile(value)
        except Exception as exc:  # re.error; OverflowError/RecursionError on extreme input
            raise _Fail(f"invalid regex: {exc}", i, end, resume=end) from None
        problem = size_problem(value)
        if problem is not None:
            raise _Fail(f"regex too large to match with a bound: {problem}", i, end, resume=end)
        return value, end

    def parse_max_tokens(self, i: int, word: str = "max_tokens") -> tuple[int, int]:
        """A positive integer (``max_tokens=``, ``min_chars=``, ``max_chars=``)."""
        m = _DIGITS.match(self.text, i)
        end = m.end() if m else i
        if not m or (end < self.n and self.text[end] not in _WS + "]:"):
            raise _Fail(f"expected a positive integer after '{word}='", *self.span(end))
        digits = self.text[i:end].lstrip("0")
        if not digits:
            raise _Fail(f"{word} must be a positive integer, got 0", i, end)
        if len(digits) > 18:
            raise _Fail(f"{word} is too large", i, end)
        return int(digits), end

    def parse_stops(self, i: int) -> tuple[tuple[str, ...], int]:
        """``"..."`` or ``["...", "..."]``: one or more distinct, non-empty stop strings."""
        if i >= self.n or self.text[i] != "[":
            value, end = self.parse_string(i, "after 'stop='")
            if not value:
                raise _Fail("empty stop string", i, end, resume=end)
            return (value,), end
        bracket, values = i, list[str]()
        i = self.skip_ws(i + 1)
        while i >= self.n or self.text[i] != "]":
            value, end = self.parse_string(i, "in the list of stop strings")
            if not value:
                raise _Fail("empty stop string", i, end, resume=end)
            if value in values:
                raise _Fail(f"duplicate stop string {value!r}", i, end, resume=end)
            values.append(value)
            i = self.skip_ws(end)
            if i < self.n and self.text[i] == ",":
                i = self.skip_ws(i + 1)
            elif i >= self.n or self.text[i] != "]":
                raise _Fail("expected ',' or ']' in the list of stop strings", *self.span(i))
        if not values:
            raise _Fail("empty list of stop strings; expected at least one quoted string",
                        bracket, i + 1)
        return tuple(values), i + 1

    def parse_choices(self, i: int) -> tuple[tuple[str, ...], int]:
        if i >= self.n or self.text[i] != "{":
            raise _Fail("expected '{' after 'in'", *self.span(i))
        brace, values = i, list[str]()
        i = self.skip_ws(i + 1)
        while i >= self.n or self.text[i] != "}":
            value, end = self.parse_string(i, "in choice set")
            if value in values:
                raise _Fail(f"duplicate choice {value!r}", i, end, resume=end)
            values.append(value)
            i = self.skip_ws(end)
            if i < self.n and self.text[i] == ",":
                i = self.skip_ws(i + 1)
            elif i >= self.n or self.text[i] != "}":
                raise _Fail("expected ',' or '}' in choice set", *self.span(i))
        if not values:
            raise _Fail("empty choice set; expected at least one quoted string", brace, i + 1)
        return tuple(values), i + 1

    def parse_string(self, i: int, where: str, raw: bool = False) -> tuple[str, int]:
        """Parse the double-quoted string at ``i``; return (value, offset past it)."""
        if i >= self.n or self.text[i] != '"':
            raise _Fail(f"expected a double-quoted string {where}", *self.span(i))
        end = self.string_end(i)
        if end is None:
            raise _Fail("unterminated string; expected a closing '\"'", i, self.n, eof=True)
        return (self.text[i + 1:end - 1] if raw else self.unescape(i + 1, end - 1)), end

    def unescape(self, i: int, stop: int) -> str:
        """Decode ``text[i:stop]`` with Python's backslash escapes; invalid ones fail."""
        out = []
        while i < stop:
            j = self.text.find("\\", i, stop)
            if j == -1:
                out.append(self.text[i:stop])
                break
            out.append(self.text[i:j])
            m = _ESCAPE.match(self.text, j, stop)
            kind = self.text[j + 1]  # string_end guarantees a char after each backslash
            if not m:
                raise _Fail(_BAD_ESCAPE.get(kind, f"invalid escape sequence '\\{kind}'"),
                            j, j + 2, resume=stop + 1)
            try:  # octal by hand: the codec warns about values over 0o377 on 3.12+
                chunk = m.group()
                out.append(chr(int(chunk[1:], 8)) if kind in "01234567" else
                           chunk.encode("utf-8", "surrogatepass").decode("unicode_escape"))
            except UnicodeError as exc:  # unknown \N{name}, \U beyond U+10FFFF
                raise _Fail(f"invalid '\\{kind}' escape: {getattr(exc, 'reason', str(exc)).lower()}",
                            j, m.end(), resume=stop + 1) from None
            i = m.end()
        return "".join(out)


def hole_kind(hole: Any) -> str:
    """``choice``, ``bool``, ``int``, ``float``, ``regex`` or ``str``."""
    if hole.choices:
        return "choice"
    if hole.type in ("bool", "int", "float"):
        return hole.type
    return "regex" if hole.regex is not None else "str"


_LOOP_TAG = re.compile(r"\{%[-+]?\s*(for|endfor)\b")


def repeated_holes(tpl: SketchTemplate) -> frozenset[str]:
    """The names of the holes inside a ``{% for %}`` block (filled once per iteration,
    so their value is a list).  Loop tags are counted in the literal text only."""
    depth, out = 0, set()
    for seg in tpl.segments:
        if isinstance(seg, Literal):
            for m in _LOOP_TAG.finditer(seg.text):
                depth = depth + 1 if m.group(1) == "for" else max(depth - 1, 0)
        elif depth > 0:
            out.add(seg.name)
    return frozenset(out)


def masked_source(text: str, tpl: SketchTemplate) -> str:
    """``text`` with each hole's source replaced by spaces (newlines kept), so Jinja can
    check the whole template while every offset stays where it was."""
    out, last = [], 0
    for h in tpl.holes:
        out.append(text[last:h.start])
        out.append(re.sub(r"[^\n]", " ", text[h.start:h.end]))
        last = h.end
    out.append(text[last:])
    return "".join(out)


def jinja_source(tpl: SketchTemplate, marker: Any) -> str:
    """The template as one Jinja source, each hole replaced by ``marker(index)``
    (``index`` of the hole among the segments); ``[[`` is already ``[``."""
    return "".join(seg.text if isinstance(seg, Literal) else marker(i)
                   for i, seg in enumerate(tpl.segments))
