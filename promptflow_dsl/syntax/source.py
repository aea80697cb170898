"""The load stage: read a ``.pflow`` file into a :class:`SourceFile`.

Source text is UTF-8; an initial byte-order mark is dropped and CRLF (or a lone
CR) is read as LF, inside strings too, before anything else sees the text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..diagnostics import Diagnostic, Span, error


@dataclass(frozen=True)
class SourceFile:
    """A loaded source file: ``uri`` is the name shown in diagnostics."""

    uri: str
    text: str
    path: Path | None = None


def normalize(text: str) -> str:
    """Drop a leading BOM and turn CRLF / CR line endings into LF."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def decode(data: bytes, uri: str) -> tuple[str | None, Diagnostic | None]:
    """Decode UTF-8 bytes; on failure return a diagnostic located at the bad byte."""
    try:
        return normalize(data.decode("utf-8")), None
    except UnicodeDecodeError as exc:
        before = data[: exc.start].decode("utf-8", errors="replace")
        line = before.count("\n") + 1
        col = len(before) - (before.rfind("\n") + 1) + 1
        return None, error(Span.point(uri, line, col),
                           f"file is not valid UTF-8 text (byte 0x{data[exc.start]:02x} "
                           f"at offset {exc.start})")


def display_name(path: Path, base: Path | None = None) -> str:
    """The name a file is shown under: relative to ``base`` (default: the cwd) when inside it."""
    base = base or Path.cwd()
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)


def read_source(path: Path, uri: str | None = None) -> tuple[SourceFile | None, Diagnostic | None]:
    """Read ``path``; returns the source or a diagnostic saying why it could not be read."""
    uri = uri or display_name(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, error(Span.point(uri, 1, 1), "no such file")
    except IsADirectoryError:
        return None, error(Span.point(uri, 1, 1), "is a directory, not a .pflow file")
    except OSError as exc:
        return None, error(Span.point(uri, 1, 1), f"cannot read file: {exc.strerror or exc}")
    text, diag = decode(data, uri)
    if text is None:
        return None, diag
    return SourceFile(uri, text, path), None
