"""Parsing a module one top-level declaration at a time, each cached by its text.

An edit touches one declaration; the others are found in the cache.  Each declaration
is parsed alone, preceded by as many newlines as there are lines above it, so every
span is the one a parse of the whole file gives, and the declarations are put back
together as one module.  Whenever anything is unusual — text before the first
declaration other than comments, a declaration that does not parse alone, any
diagnostic — the whole text is parsed as usual instead, so diagnostics are always
those of the whole file.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable

from ..diagnostics import Diagnostic, Span
from ..syntax import SourceFile, ast

Parse = Callable[[SourceFile], "tuple[ast.Module | None, list[Diagnostic]]"]


def decl_starts(text: str) -> list[int] | None:
    """The 0-based lines where top-level declarations start: a letter in column 0,
    outside brackets, strings and comments.  ``None`` when the text before the first
    one is not only blank lines and comments."""
    starts: list[int] = []
    depth = 0
    i, n, line = 0, len(text), 0
    at_line_start = True
    while i < n:
        ch = text[i]
        if at_line_start and depth == 0 and (ch.isalpha() or ch == "_"):
            starts.append(line)
        at_line_start = False
        if ch == "\n":
            line += 1
            at_line_start = True
        elif ch == "#":
            nl = text.find("\n", i)
            i = n if nl == -1 else nl
            continue
        elif ch == '"':
            end = _string_end(text, i)
            if end is None:
                return None
            line += text.count("\n", i, end)
            i = end
            continue
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif not starts and not ch.isspace():
            return None  # a token before the first declaration
        i += 1
    return starts


def _string_end(text: str, i: int) -> int | None:
    if text.startswith('"""', i):
        end = text.find('"""', i + 3)
        return None if end == -1 else end + 3
    j = i + 1
    while j < len(text) and text[j] not in '"\n':
        j += 2 if text[j] == "\\" else 1
    if j >= len(text) or text[j] != '"':
        return None
    return j + 1


class ChunkCache:
    """Parsed declarations keyed by (file name, first line, text digest)."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self.entries: OrderedDict[tuple[str, int, str], ast.Module] = OrderedDict()

    def parse(self, source: SourceFile, whole: Parse) -> tuple[ast.Module | None, list[Diagnostic]]:
        """``source`` parsed declaration by declaration (or whole, see the module doc)."""
        starts = decl_starts(source.text)
        if not starts or len(starts) < 2:
            return whole(source)
        lines = source.text.split("\n")
        decls: list[ast.Decl] = []
        first: Span | None = None
        last: Span | None = None
        for k, start in enumerate(starts):
            end = starts[k + 1] if k + 1 < len(starts) else len(lines)
            chunk = "\n".join(lines[start:end])
            key = (source.uri, start, hashlib.blake2b(chunk.encode("utf-8", "surrogatepass"),
                                                      digest_size=16).hexdigest())
            module = self.entries.get(key)
            if module is None:
                padded = SourceFile(source.uri, "\n" * start + chunk, source.path)
                module, diags = whole(padded)
                if module is None or diags:
                    return whole(source)
                self.entries[key] = module
                if len(self.entries) > self.size:
                    self.entries.popitem(last=False)
            else:
                self.entries.move_to_end(key)
            decls.extend(module.decls)
            first = first or module.span
            last = module.span
        assert first is not None and last is not None
        return ast.Module(first.to(last), source.uri, tuple(decls)), []
