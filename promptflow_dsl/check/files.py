"""Files a program reads itself: the built-ins ``read_text(path)`` and ``read_jsonl(path)``.

A path is relative to the folder of the ``.pflow`` file that declares the call (never
to the current directory) and must name a regular file inside the project, the
standard library or an ``--allow-path`` folder: the rule for imports, prompt files
and demos (:meth:`Project.resolve_file`).  The checker applies it to a literal path;
the runtime applies the same function to any other path when the call runs.
Reading raises :class:`FileProblem`, whose message names the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..diagnostics import Diagnostic, Span, error
from ..syntax.source import display_name, normalize
from .jsonl import RowsError, iter_values
from .loader import Project

FILE_BUILTINS = frozenset({"read_text", "read_jsonl"})


class FileProblem(ValueError):
    """A file cannot be read as asked (not valid UTF-8, a bad JSON line)."""


def locate(project: Project, declaring: Path | None, rel: str, span: Span
           ) -> tuple[Path | None, Diagnostic | None]:
    """The file ``rel`` names for a program in ``declaring`` (``None`` for text loaded
    without a file: the project root), or a diagnostic at ``span`` saying why it cannot
    be read: outside the allowed folders, missing, a folder or another non-regular file."""
    path, diag = project.resolve_file(declaring, rel, span, "file")
    if path is not None and not path.is_file():
        return None, error(span, f"file '{rel}' is not a regular file")
    return path, diag


def read_text_file(path: Path) -> str:
    """The text of ``path``: UTF-8, a leading byte-order mark dropped, CRLF and CR read as LF."""
    data = _read(path)
    try:
        return normalize(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        raise FileProblem(f"{display_name(path)} is not valid UTF-8 text (byte "
                          f"0x{data[exc.start]:02x} on line {line}, offset {exc.start})") from None


def read_jsonl_file(path: Path) -> list[Any]:
    """One JSON value per non-blank line of ``path`` (an empty file gives ``[]``)."""
    text = read_text_file(path)
    try:
        return [value for _, value in iter_values(text)]
    except RowsError as exc:
        raise FileProblem(f"{display_name(path)}:{exc.line}: {exc.reason}") from None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise FileProblem(f"cannot read {display_name(path)}: {exc.strerror or exc}") from None


__all__ = ["FILE_BUILTINS", "FileProblem", "locate", "read_jsonl_file", "read_text_file"]
