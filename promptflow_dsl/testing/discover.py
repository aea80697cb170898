"""Finding ``.pflow`` files and selecting their tests (``pflow test FILE|DIR -k PATTERN``)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".pflow-cache", ".tox",
             "build", "dist"}


def pflow_files(paths: Iterable[str | Path]) -> list[Path]:
    """Every ``.pflow`` file named or under a named folder (sorted, hidden folders skipped).

    Raises ``FileNotFoundError`` for a path that does not exist.
    """
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise FileNotFoundError(str(raw))
        if p.is_file():
            out.append(p)
            continue
        for f in sorted(p.rglob("*.pflow")):
            rel = f.relative_to(p).parts[:-1]
            if any(part in SKIP_DIRS or part.startswith(".") for part in rel):
                continue
            out.append(f)
    seen: set[Path] = set()
    unique = []
    for f in out:
        r = f.resolve()
        if r not in seen:
            seen.add(r)
            unique.append(f)
    return unique


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
