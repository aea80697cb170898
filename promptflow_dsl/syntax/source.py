"""The load stage: read a ``.pflow`` file into a :class:`SourceFile`.

Source text is UTF-8; an initial byte-order mark is dropped and CRLF (or a lone
CR) is read as LF, inside strings too, before anything else sees the text.
"""

from __future__ import annotations

import os
import stat
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


#: the longest path (in bytes, encoded) and path component a program may name
PATH_MAX = 4096
NAME_MAX = 255


def path_problem(text: str) -> str | None:
    """Why ``text`` cannot name a file on any system pflow runs on, or ``None``: it holds
    a NUL character or a lone surrogate (``\\ud800``, which no file name encodes), or
    it, or one of its parts, is too long (more than 4096 / 255 bytes in UTF-8)."""
    if "\0" in text:
        return "holds a NUL character"
    for ch in text:
        if "\ud800" <= ch <= "\udfff":
            return f"holds a lone surrogate ({ch.encode('unicode_escape').decode('ascii')})"
    if len(text.encode("utf-8")) > PATH_MAX:
        return f"is too long (more than {PATH_MAX} bytes)"
    if any(len(part.encode("utf-8")) > NAME_MAX for part in text.replace("\\", "/").split("/")):
        return f"has a part that is too long (more than {NAME_MAX} bytes)"
    return None


def shown_path(text: str, limit: int = 80) -> str:
    """``text`` as messages show it: at most ``limit`` characters, control characters and
    surrogates escaped."""
    cut = text[:limit]
    out = "".join(ch if ch.isprintable() and not "\ud800" <= ch <= "\udfff"
                  else ch.encode("unicode_escape").decode("ascii") for ch in cut)
    return out + ("..." if len(text) > limit else "")


class NotRegularFile(OSError):
    """A path that names a FIFO, a device, a socket or a directory: reading it could block
    forever or never end, so it is refused (``kind`` says what it is)."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"is {kind}, not a regular file")
        self.kind = kind


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words ("a FIFO", "a directory", ...)."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


class FileTooLarge(OSError):
    """A regular file larger than the reader's limit."""


def read_regular(path: Path | str, limit: int | None = None) -> bytes:
    """The bytes of the regular file ``path``, read without ever blocking: the file is
    opened non-blocking and checked with ``fstat`` before a byte is read.

    Raises :class:`NotRegularFile` for a FIFO, device, socket or directory,
    :class:`FileTooLarge` when it has more than ``limit`` bytes, and ``OSError`` (or
    ``ValueError`` for a NUL in the path) when it cannot be opened.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFile(file_kind(info.st_mode))
        if limit is not None and info.st_size > limit:
            raise FileTooLarge(f"is larger than {limit} bytes ({info.st_size})")
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_source(path: Path, uri: str | None = None) -> tuple[SourceFile | None, Diagnostic | None]:
    """Read ``path``; returns the source or a diagnostic saying why it could not be read
    (missing, a directory, a FIFO or device, unreadable, not UTF-8)."""
    uri = uri or display_name(path)
    try:
        data = read_regular(path)
    except FileNotFoundError:
        return None, error(Span.point(uri, 1, 1), "no such file")
    except (IsADirectoryError, NotRegularFile) as exc:
        kind = exc.kind if isinstance(exc, NotRegularFile) else "a directory"
        return None, error(Span.point(uri, 1, 1), f"is {kind}, not a .pflow file")
    except OSError as exc:
        return None, error(Span.point(uri, 1, 1), f"cannot read file: {exc.strerror or exc}")
    except ValueError as exc:  # a NUL in the path
        return None, error(Span.point(uri, 1, 1), f"cannot read file: {exc}")
    text, diag = decode(data, uri)
    if text is None:
        return None, diag
    return SourceFile(uri, text, path), None
