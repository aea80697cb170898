"""Document formatting (``textDocument/formatting``): ``pflow fmt``'s layout as edits.

The edits replace only the lines that change (a line diff of the document against
its formatted text), so the editor keeps the cursor and marks on untouched lines.  A
document that does not parse gets no edits.  The editor's tab size and
spaces-or-tabs options are not used: the layout is always two spaces per level.
"""

from __future__ import annotations

import difflib

from lsprotocol import types as lsp

from ..fmt import FormatterBug, NotParsed, format_text
from .positions import utf16_col


def formatting_edits(text: str, uri: str = "<document>") -> list[lsp.TextEdit]:
    """The edits that turn ``text`` into its canonical layout; none when it already has
    it or does not parse (or if the formatter fails: the document is left as it is)."""
    try:
        formatted = format_text(text, uri)
    except (NotParsed, FormatterBug):
        return []
    if formatted == text:
        return []
    if "\r" in text or text.startswith("\ufeff"):
        # other line ends or a byte-order mark: one edit of the whole document
        return [lsp.TextEdit(lsp.Range(lsp.Position(0, 0), _position(text.split("\n"), text, -1)),
                             formatted)]
    old = text.splitlines(keepends=True)
    new = formatted.splitlines(keepends=True)
    lines = text.split("\n")
    edits = []
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        edits.append(lsp.TextEdit(lsp.Range(_position(lines, text, i1),
                                            _position(lines, text, i2)),
                                  "".join(new[j1:j2])))
    return edits


def _position(lines: list[str], text: str, index: int) -> lsp.Position:
    """The start of line ``index`` of ``text``; past its last line (or ``-1``): its end."""
    last = len(lines) - 1
    if 0 <= index <= last:
        return lsp.Position(index, 0)
    return lsp.Position(last, utf16_col(lines[last], len(lines[last])))
