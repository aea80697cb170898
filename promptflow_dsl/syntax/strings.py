"""Decoding of string-literal tokens into values with source origins.

Three spellings: ``"..."`` (one line, Python backslash escapes), ``r"..."`` (raw)
and ``\"\"\"...\"\"\"`` (multi-line raw text, dedented).  Each decoded string keeps,
per line of its value, the source (line, column) of that line's first
character, so that positions inside templates can be mapped back.
"""

from __future__ import annotations

import ast
import re
import warnings


class StringError(ValueError):
    """A string literal that cannot be decoded (bad escape).

    ``offset`` and ``length`` locate the escape inside the string's body, when known.
    """

    def __init__(self, message: str, offset: int | None = None, length: int = 1) -> None:
        super().__init__(message)
        self.offset = offset
        self.length = length


_CODEC_POS = re.compile(r"position (\d+)(?:-(\d+))?: (.*)$")


def decode_plain(token_text: str) -> tuple[str, list[str]]:
    """Decode a ``"..."`` token with Python's escape rules.

    Returns the value and a list of warnings (e.g. an unknown escape such as ``\\d``).
    Raises :class:`StringError` for an escape Python rejects (``\\x4``, ``\\N{bogus}``).
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = ast.literal_eval(token_text)
        except (SyntaxError, ValueError) as exc:
            msg = str(getattr(exc, "msg", None) or exc)
            m = _CODEC_POS.search(msg)
            if m:
                start = int(m.group(1))
                end = int(m.group(2) or start)
                reason = m.group(3).replace("\\xXX", "\\x").strip()
                raise StringError(f"bad escape in string: {reason}", start, end - start + 1) from None
            raise StringError(f"bad escape in string: {msg}") from None
    notes = []
    for w in caught:
        text = str(w.message)
        if "escape" in text:
            seq = text.split("'")[1] if "'" in text else ""
            notes.append(f"unknown escape sequence '{seq}' is kept as written; "
                         f"use r\"...\" for regular expressions or write '\\\\'")
    return value, notes


def decode_raw(token_text: str) -> str:
    """Decode an ``r"..."`` token: the characters between the quotes, unchanged."""
    return token_text[2:-1]


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def decode_text(token_text: str, line: int, col: int) -> tuple[str, tuple[tuple[int, int], ...]]:
    """Decode a ``\"\"\"...\"\"\"`` token starting at source (line, col).

    Like :func:`inspect.cleandoc`: leading whitespace of the first line is removed,
    the whitespace prefix common to the other non-blank lines is removed (tabs are
    kept, not expanded), and blank lines at the start and end are dropped.
    Returns the value and the origin (line, col) of each of its lines.
    """
    body = token_text[3:-3]
    raw_lines = body.split("\n")
    origins = [(line + i, (col + 3) if i == 0 else 1) for i in range(len(raw_lines))]
    lines = list(raw_lines)
    first = lines[0]
    stripped = first.lstrip()
    origins[0] = (origins[0][0], origins[0][1] + len(first) - len(stripped))
    lines[0] = stripped
    margin: str | None = None
    for ln in lines[1:]:
        if ln.strip():
            ind = _indent(ln)
            if margin is None:
                margin = ind
            else:
                k = 0
                while k < min(len(margin), len(ind)) and margin[k] == ind[k]:
                    k += 1
                margin = margin[:k]
    cut = len(margin or "")
    for i in range(1, len(lines)):
        ln = lines[i]
        if not ln.strip():
            lines[i] = ""
        else:
            lines[i] = ln[cut:]
            origins[i] = (origins[i][0], origins[i][1] + cut)
    while lines and not lines[0]:
        lines.pop(0)
        origins.pop(0)
    while lines and not lines[-1]:
        lines.pop()
        origins.pop()
    return "\n".join(lines), tuple(origins)
