"""``pflow fmt``'s formatter: one canonical layout for ``.pflow`` source (see README.md).

:func:`format_text` is the entry point.  It formats only text that parses, and it
changes only the whitespace between tokens: every token, every comment and the exact
text of every string (quotes, escapes, raw and triple-quoted forms) come back as
written.
"""

from __future__ import annotations

from ..diagnostics import Diagnostic
from ..syntax import SourceFile, normalize, parse_module
from .layout import layout
from .tokens import COMMENT, LexError, Token, code_tokens, lex

__all__ = ["NotParsed", "FormatterBug", "format_text", "lex", "Token", "LexError"]


class NotParsed(Exception):
    """Raised by :func:`format_text` for text that does not parse; carries the
    located syntax error (``diagnostic``)."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.headline())
        self.diagnostic = diagnostic


class FormatterBug(RuntimeError):
    """Raised by :func:`format_text` when the formatted text would not have the same
    tokens and comments as the input (a bug in the formatter; nothing is written)."""


def format_text(text: str, uri: str = "<text>") -> str:
    """The canonical layout of ``text`` (BOM dropped, line ends LF, one final newline).

    Raises :class:`NotParsed` when ``text`` has a syntax error and
    :class:`FormatterBug` if the result would differ from ``text`` in anything but
    whitespace.
    """
    text = normalize(text)
    module, diagnostics = parse_module(SourceFile(uri, text))
    if module is None:
        raise NotParsed(diagnostics[0])
    tokens = lex(text)
    result = layout(tokens)
    _verify(tokens, result)
    return result


def _verify(tokens: list[Token], result: str) -> None:
    try:
        after = lex(result)
    except LexError as exc:
        raise FormatterBug(f"the formatted text does not lex: {exc}") from None
    if code_tokens(after) != code_tokens(tokens):
        raise FormatterBug("the formatted text has other tokens than the input")
    before_comments = [t.text.rstrip() for t in tokens if t.kind == COMMENT]
    if [t.text for t in after if t.kind == COMMENT] != before_comments:
        raise FormatterBug("the formatted text has other comments than the input")
