"""Positions: pflow spans (1-based lines, 1-based columns counted in characters) and
LSP positions (0-based lines, 0-based columns in UTF-16 code units)."""

from __future__ import annotations

from ..diagnostics import Span


def utf16_col(line: str, chars: int) -> int:
    """The UTF-16 column of character column ``chars`` (0-based) of ``line``."""
    head = line[:chars]
    if head.isascii():
        return len(head)
    return len(head.encode("utf-16-le")) // 2


def char_col(line: str, units: int) -> int:
    """The character column (0-based) of UTF-16 column ``units`` of ``line``."""
    if line.isascii():
        return min(units, len(line))
    seen = 0
    for i, ch in enumerate(line):
        if seen >= units:
            return i
        seen += 2 if ord(ch) > 0xFFFF else 1
    return len(line)


class Lines:
    """A text split into lines, with the conversions between its spans, offsets and
    LSP positions."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines = text.split("\n")
        self.starts: list[int] = []
        pos = 0
        for line in self.lines:
            self.starts.append(pos)
            pos += len(line) + 1

    def line(self, index: int) -> str:
        return self.lines[index] if 0 <= index < len(self.lines) else ""

    def lsp_position(self, line: int, col: int) -> tuple[int, int]:
        """(line, character) in LSP units of the 1-based span position ``line``:``col``."""
        return line - 1, utf16_col(self.line(line - 1), max(col - 1, 0))

    def lsp_range(self, span: Span) -> tuple[tuple[int, int], tuple[int, int]]:
        return self.lsp_position(span.line, span.col), self.lsp_position(span.end_line, span.end_col)

    def offset(self, line: int, character: int) -> int:
        """The text offset of the LSP position (0-based line, UTF-16 character)."""
        if line >= len(self.lines):
            return len(self.text)
        text = self.lines[max(line, 0)]
        return self.starts[max(line, 0)] + char_col(text, character)

    def span_position(self, line: int, character: int) -> tuple[int, int]:
        """The 1-based (line, col) of the LSP position."""
        return line + 1, char_col(self.line(line), character) + 1


def contains(span: Span, line: int, col: int) -> bool:
    """Whether the 1-based position ``line``:``col`` is inside ``span`` (its end included,
    so a cursor right after a name is on it)."""
    if (line, col) < (span.line, span.col):
        return False
    return (line, col) <= (span.end_line, span.end_col)
