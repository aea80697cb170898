"""JSONL files of rows (demos of a prompt or an expert, training and evaluation sets).

One parser serves the checker (which reports a diagnostic at the declaration) and the
command line (which reports the file): :func:`parse_rows` raises :class:`RowsError`
whose message each caller puts after the file's name.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any


class RowsError(ValueError):
    """What is wrong with a JSONL file: ``line 3: not valid JSON (...)``, ``has no rows``.

    ``line`` and ``reason`` hold the two parts of a message about one line."""

    def __init__(self, message: str, *, line: int | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.reason = reason


def iter_values(text: str) -> Iterator[tuple[int, Any]]:
    """(line number, JSON value) for each non-blank line of ``text``; lines end at ``\n``
    only, so a JSON string may hold any other line separator (U+2028...).

    Raises :class:`RowsError` at the first line that is not valid JSON.
    """
    for i, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            reason = f"not valid JSON ({exc.msg})"
            raise RowsError(f"line {i}: {reason}", line=i, reason=reason) from None
        yield i, value


def parse_rows(text: str, *, need_io: bool) -> list[dict[str, Any]]:
    """The JSON objects on the non-blank lines of ``text``.

    With ``need_io`` every row needs an ``"input"`` string and an ``"output"``.
    Raises :class:`RowsError` for the first bad line, or when there is no row.
    """
    rows = []
    for i, row in iter_values(text):
        if not isinstance(row, dict):
            raise RowsError(f"line {i}: each line must be a JSON object")
        if need_io and ("input" not in row or "output" not in row):
            raise RowsError(f'line {i}: a demo row needs "input" and "output"')
        if need_io and not isinstance(row["input"], str):
            raise RowsError(f'line {i}: "input" must be a string')
        rows.append(row)
    if not rows:
        raise RowsError("has no rows")
    return rows
