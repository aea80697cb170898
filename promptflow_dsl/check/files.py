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

from ..diagnostics import Diagnostic, Span
from ..syntax.source import display_name, normalize, read_regular, shown_path
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
    return project.resolve_file(declaring, rel, span, "file")


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
    """The bytes of ``path``, never blocking on a FIFO or reading a device (raises
    :class:`FileProblem`)."""
    try:
        return read_regular(path)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise FileProblem(f"cannot read {shown_path(display_name(path))}: {reason}") from None


__all__ = ["FILE_BUILTINS", "FileProblem", "locate", "read_jsonl_file", "read_text_file"]
