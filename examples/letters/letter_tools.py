"""Task-specific tools for letters.pflow: read the position and the delimiter asked for."""

from __future__ import annotations

import re

_POSITION = re.compile(r"\bposition\s+(\d+)\b", re.IGNORECASE)
_USING = re.compile(r"\busing\s+(a space|a comma|a semicolon|a newline|nothing)\b", re.IGNORECASE)
_DELIMITERS = {"a space": " ", "a comma": ",", "a semicolon": ";", "a newline": "\n", "nothing": ""}


def position(question: str) -> int:
    """The letter position a question asks for: '... at position 2 of ...' -> 2 (1-based)."""
    m = _POSITION.search(question)
    if m is None:
        raise ValueError(f"no 'position N' in the question: {question!r}")
    k = int(m.group(1))
    if k < 1:
        raise ValueError(f"positions count from 1, got position {k}")
    return k


def delimiter(question: str) -> str:
    """The delimiter a question asks for: '... using a comma.' -> ','; a space by default."""
    m = _USING.search(question)
    return _DELIMITERS[m.group(1).lower()] if m else " "
