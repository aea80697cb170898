"""Source spans, diagnostics and the compile error type shared by every stage.

A :class:`Span` locates a piece of a ``.pflow`` file (1-based lines and columns,
columns counted in characters, a tab being one column).  A :class:`Diagnostic`
is one located message; :class:`CompileError` carries every diagnostic of a
failed compilation.  :func:`render` turns diagnostics into the
``file:line:col: error: message`` form with the source line and a caret
underline; it lives here, not in the exception, so that library users get
structured data and the CLI decides how to show it.  The value of an ``api_key``
written in a source line is masked wherever such a line is shown
(:func:`mask_secrets`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum


@dataclass(frozen=True, order=True)
class Span:
    """A range in a source file: from (line, col) up to, not including, (end_line, end_col)."""

    file: str
    line: int
    col: int
    end_line: int
    end_col: int

    @classmethod
    def point(cls, file: str, line: int, col: int, length: int = 1) -> Span:
        """A span of ``length`` characters on one line."""
        return cls(file, line, col, line, col + max(length, 1))

    def to(self, other: Span) -> Span:
        """The span covering ``self`` through ``other`` (same file)."""
        return Span(self.file, self.line, self.col, other.end_line, other.end_col)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


NO_SPAN = Span("<unknown>", 1, 1, 1, 2)


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Diagnostic:
    """One located message: an error stops compilation, a warning does not."""

    severity: Severity
    message: str
    span: Span
    notes: tuple[tuple[Span, str], ...] = field(default=())

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def sort_key(self) -> tuple:
        return (self.span.file, self.span.line, self.span.col, self.severity != Severity.ERROR,
                self.message)

    def headline(self) -> str:
        return f"{self.span}: {self.severity.value}: {self.message}"


def error(span: Span, message: str, *notes: tuple[Span, str]) -> Diagnostic:
    return Diagnostic(Severity.ERROR, message, span, tuple(notes))


def warning(span: Span, message: str, *notes: tuple[Span, str]) -> Diagnostic:
    return Diagnostic(Severity.WARNING, message, span, tuple(notes))


class CompileError(Exception):
    """Raised by :func:`promptflow_dsl.load` and friends when a program has errors.

    ``diagnostics`` holds every error (and warning) found, sorted by location;
    ``sources`` maps file names to their text so callers can :func:`render` them.
    """

    def __init__(self, diagnostics: Iterable[Diagnostic],
                 sources: Mapping[str, str] | None = None) -> None:
        self.diagnostics: list[Diagnostic] = sorted(diagnostics, key=Diagnostic.sort_key)
        self.sources: dict[str, str] = dict(sources or {})
        errors = [d for d in self.diagnostics if d.is_error]
        first = errors[0] if errors else (self.diagnostics[0] if self.diagnostics else None)
        summary = first.headline() if first else "compilation failed"
        more = len(errors) - 1
        if more > 0:
            summary += f" (and {more} more error{'s' if more > 1 else ''})"
        super().__init__(summary)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    def render(self, color: bool = False) -> str:
        return render(self.diagnostics, self.sources, color=color)


_MAX_LINE = 120

# the string literal after `api_key:` (or `"api_key":`, `api_key =`), up to its closing quote
_SECRET_VALUE = re.compile(r'(\b\w*api_key"?\s*[:=]\s*r?(?:"""|"))((?:\\.|[^"\\])*)',
                           re.IGNORECASE)


def mask_secrets(text: str) -> str:
    """``text`` with the string value of every ``api_key`` field in it replaced by as
    many ``*`` (so carets under the line stay in place)."""
    if "api_key" not in text.lower():
        return text
    return _SECRET_VALUE.sub(lambda m: m.group(1) + "*" * len(m.group(2)), text)


_COLORS = {"error": "\x1b[1;31m", "warning": "\x1b[1;33m", "note": "\x1b[1;36m"}
_RESET = "\x1b[0m"


class _ShownLines:
    """The source lines diagnostics show, split and masked once per file and line (so
    that many diagnostics on one long line cost one pass over it, not one each)."""

    def __init__(self, sources: Mapping[str, str]) -> None:
        self.sources = sources
        self.split: dict[str, list[str]] = {}
        self.shown: dict[tuple[str, int], str] = {}

    def line(self, file: str, number: int) -> str | None:
        """Line ``number`` (1-based) of ``file``, secrets masked and unprintable
        characters as ``?``; ``None`` when there is no such line."""
        key = (file, number)
        if key in self.shown:
            return self.shown[key]
        if file not in self.split:
            text = self.sources.get(file)
            if text is None:
                return None
            self.split[file] = text.split("\n")
        lines = self.split[file]
        if not 1 <= number <= len(lines):
            return None
        shown = "".join(ch if ch == "\t" or ch.isprintable() else "?"
                        for ch in mask_secrets(lines[number - 1]))
        self.shown[key] = shown
        return shown


def _caret_block(span: Span, sources: Mapping[str, str] | _ShownLines) -> list[str]:
    lines = sources if isinstance(sources, _ShownLines) else _ShownLines(sources)
    src = lines.line(span.file, span.line)
    if src is None:
        return []
    start = max(span.col - 1, 0)
    if span.end_line == span.line:
        end = max(span.end_col - 1, start + 1)
    else:
        end = max(len(src), start + 1)
    end = min(end, max(len(src), start + 1))
    if len(src) > _MAX_LINE:  # show a window of a long line around the span
        lo = max(0, start - _MAX_LINE // 3)
        hi = min(len(src), lo + _MAX_LINE)
        prefix = "..." if lo > 0 else ""
        suffix = "..." if hi < len(src) else ""
        src = prefix + src[lo:hi] + suffix
        start = start - lo + len(prefix)
        end = min(end - lo + len(prefix), len(src) - len(suffix))
        end = max(end, start + 1)
    # Keep the caret aligned under tabs by reusing the tab characters.
    pad = "".join("\t" if ch == "\t" else " " for ch in src[:start])
    return [f"  {src}", f"  {pad}{'^' + '~' * (end - start - 1)}"]


def render(diagnostics: Iterable[Diagnostic], sources: Mapping[str, str],
           color: bool = False) -> str:
    """Render diagnostics as ``file:line:col: severity: message`` plus source line and caret."""
    out: list[str] = []
    shown = _ShownLines(sources)
    for d in sorted(diagnostics, key=Diagnostic.sort_key):
        sev = d.severity.value
        label = f"{_COLORS[sev]}{sev}{_RESET}" if color else sev
        out.append(f"{d.span}: {label}: {mask_secrets(d.message)}")
        out.extend(_caret_block(d.span, shown))
        for span, msg in d.notes:
            note = f"{_COLORS['note']}note{_RESET}" if color else "note"
            out.append(f"{span}: {note}: {mask_secrets(msg)}")
            out.extend(_caret_block(span, shown))
    return "\n".join(out)


def summary_line(diagnostics: Iterable[Diagnostic]) -> str:
    ds = list(diagnostics)
    n_err = sum(1 for d in ds if d.is_error)
    n_warn = len(ds) - n_err
    parts = []
    if n_err:
        parts.append(f"{n_err} error{'s' if n_err != 1 else ''}")
    if n_warn:
        parts.append(f"{n_warn} warning{'s' if n_warn != 1 else ''}")
    return ", ".join(parts) if parts else "no problems"
