"""Finding ``.pflow`` files and selecting their tests (``pflow test FILE|DIR -k PATTERN``).

The file discovery itself lives in :mod:`promptflow_dsl.check.loader` (``pflow check``
shares it without loading the test runner); it is re-exported here.
"""

from __future__ import annotations

from ..check.loader import SKIP_DIRS, pflow_files

__all__ = ["SKIP_DIRS", "matches", "pflow_files"]


def matches(pattern: str | None, file: str, name: str) -> bool:
    """pytest-like ``-k``: words joined by ``and`` / ``or`` / ``not`` and parentheses, each
    word a case-insensitive substring of ``file::name``.  A malformed pattern is taken as
    one plain substring."""
    if not pattern:
        return True
    subject = f"{file}::{name}".lower()
    tokens = pattern.replace("(", " ( ").replace(")", " ) ").split()
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def atom() -> bool:
        t = take()
        if t == "(":
            v = either()
            if take() != ")":
                raise ValueError
            return v
        if t in ("and", "or", ")"):
            raise ValueError
        return t.lower() in subject

    def negation() -> bool:
        if peek() == "not":
            take()
            return not negation()
        return atom()

    def both() -> bool:
        v = negation()
        while peek() == "and":
            take()
            v = negation() and v
        return v

    def either() -> bool:
        v = both()
        while peek() == "or":
            take()
            v = both() or v
        return v

    try:
        result = either()
        if pos != len(tokens):
            raise ValueError
        return result
    except (ValueError, IndexError):
        return pattern.lower() in subject
