"""The token pass of the formatter: source text → tokens, comments kept.

The grammar ignores whitespace and comments, so the formatter works on the token
stream: it may change the whitespace between two tokens and nothing else.  The token
patterns are the grammar's terminals (``grammar/pflow.lark``), tried in the same
order of priority: long strings, raw strings, strings, numbers, names, then
punctuation; a comment runs from ``#`` to the end of its line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: token kinds
STRING = "string"
NUMBER = "number"
WORD = "word"
PUNCT = "punct"
COMMENT = "comment"

_PATTERN = re.compile(r"""
    (?P<ws>[ \t\f\r\n]+)
  | (?P<comment>\#[^\n]*)
  | (?P<string>\"\"\"[\s\S]*?\"\"\"|r"(?:\\.|[^"\\\n])*"|"(?:\\.|[^"\\\n])*")
  | (?P<number>\d+\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|\d+)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>->|==|!=|<=|>=|[{}()\[\],:.=<>+\-*/%|?])
""", re.VERBOSE)


class LexError(ValueError):
    """Raised by :func:`lex` for text that is no token of the language (at ``offset``)."""

    def __init__(self, offset: int, line: int, col: int) -> None:
        super().__init__(f"{line}:{col}: no token of the language starts here")
        self.offset, self.line, self.col = offset, line, col


@dataclass(slots=True)
class Token:
    """One token: its kind, exact text, 1-based line and column, and the newlines in
    the whitespace just before it (``newlines``)."""

    kind: str
    text: str
    line: int
    col: int
    newlines: int

    @property
    def is_opener(self) -> bool:
        return self.kind == PUNCT and self.text in "{(["

    @property
    def is_closer(self) -> bool:
        return self.kind == PUNCT and self.text in "})]"


def lex(text: str) -> list[Token]:
    """The tokens of ``text``, comments included, whitespace dropped.

    Raises :class:`LexError` at the first character no token pattern matches (an
    unterminated string, a stray ``!`` or ``$``).
    """
    tokens: list[Token] = []
    pos, line, line_start, newlines = 0, 1, 0, 0
    size = len(text)
    while pos < size:
        m = _PATTERN.match(text, pos)
        if m is None:
            raise LexError(pos, line, pos - line_start + 1)
        kind = m.lastgroup
        value = m.group()
        if kind == "ws":
            count = value.count("\n")
            newlines += count
        else:
            assert kind is not None
            tokens.append(Token(kind, value, line, pos - line_start + 1, newlines))
            newlines = 0
            count = value.count("\n")
        if count:
            line += count
            line_start = pos + value.rindex("\n") + 1
        pos = m.end()
    return tokens


def code_tokens(tokens: list[Token]) -> list[tuple[str, str]]:
    """The kind and text of every token but comments: what formatting must not change."""
    return [(t.kind, t.text) for t in tokens if t.kind != COMMENT]
