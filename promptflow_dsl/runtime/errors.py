"""Errors a run can end with.

Every failure a user can cause while a program runs (a model that keeps failing,
a reply that never validates, a tool that raises, a bad input value) is a
:class:`RunError` that names the handler and the ``.pflow`` location; none of
them is an internal error.
"""

from __future__ import annotations

import traceback
from pathlib import Path

from ..diagnostics import Diagnostic, Span, error

_PACKAGE_DIR = str(Path(__file__).resolve().parent.parent)


class RunError(Exception):
    """A handler failed.  ``span`` is the ``.pflow`` location of the failing call (or
    declaration), ``handler`` its display name, ``chain`` the calls that led to it
    (outermost first, as (callee, call site)), ``detail`` extra text such as a tool's
    trimmed traceback.

    A failure inside a decomposition also keeps ``steps``, the decomposition steps
    that led to it (outermost first, e.g. ``step 2 (foreach) [letter] ... (item 1)``),
    and ``cause``, the failure itself without them (``None`` until a decomposer
    records its steps)."""

    def __init__(self, message: str, *, span: Span | None = None, handler: str | None = None,
                 detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.span = span
        self.handler = handler
        self.detail = detail
        self.chain: list[tuple[str, Span | None]] = []
        self.steps: list[str] = []
        self.cause: str | None = None

    def called_from(self, handler: str, span: Span | None) -> RunError:
        """Record that this failure happened in the call of ``handler`` made at ``span``."""
        self.chain.insert(0, (handler, span))
        return self

    def diagnostic(self) -> Diagnostic:
        notes = tuple((s, f"in this call of '{h}'") for h, s in reversed(self.chain) if s is not None)
        span = self.span or Span.point("<run>", 1, 1)
        return error(span, self.message, *notes)

    def __str__(self) -> str:
        where = f"{self.span}: " if self.span else ""
        return f"{where}{self.message}"


class ScriptRefused(RunError):
    """A test's stand-in for a model refused a call (the model is not mocked, its scripted
    replies ran out, a recording no longer matches): a mistake in the test, not a failure
    of the program, so ``try ... else`` never catches it."""


class InputError(ValueError):
    """An input value for the entry handler is missing, unknown or of the wrong type."""


def user_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` trimmed to the user's own frames (not pflow's, not asyncio's)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith(_PACKAGE_DIR)
              and "/asyncio/" not in f.filename and "/concurrent/" not in f.filename
              and not f.filename.startswith("<frozen")
              and not f.filename.endswith(("threading.py", "thread.py"))]
    lines = ["Traceback (most recent call last):"]
    lines.extend(line.rstrip("\n") for line in traceback.format_list(frames))
    lines.extend(line.rstrip("\n") for line in traceback.format_exception_only(type(exc), exc))
    return "\n".join(lines)
