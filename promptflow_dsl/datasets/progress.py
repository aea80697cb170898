"""Progress of a dataset run: rows done/total, failed rows, rows/s, ETA, tokens, cost.

* :class:`PlainProgress` — for logs and pipes: one line every ``interval`` seconds
  and one at the end, like
  ``pflow: 1200/5000 rows, 3 failed, 85.2 rows/s, ETA 45 s, 1.2M tokens, $0.41``.
* :class:`RichProgress` — a live bar on a terminal (needs the ``rich`` package).
* :func:`make_progress` — the bar when the stream is a terminal and ``rich`` is
  installed, else the plain lines.

"Done" counts rows with a result line, ok or failed, including those recorded
before a resume; rows/s and the ETA use the rows of this session only. The runner
calls :meth:`start`, :meth:`advance` per finished row, :meth:`refresh` a few times a
second, and :meth:`finish`; none of them raises.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import IO, Any, Protocol

__all__ = ["NullProgress", "PlainProgress", "Progress", "ProgressCounts", "RichProgress",
           "format_cost", "format_count", "format_duration", "make_progress"]


class Progress(Protocol):
    """What the runner reports to. No method raises."""

    def start(self, total: int, done: int = 0, failed: int = 0) -> None:
        """A run of ``total`` rows begins; ``done``/``failed`` were recorded before."""

    def advance(self, ok: bool, tokens: int = 0, cost: float | None = None) -> None:
        """One more row has a line (ok or failed), with its tokens and cost."""

    def refresh(self) -> None:
        """Redraw if it is time to."""

    def finish(self, status: str = "complete") -> None:
        """The run ended with ``status`` (``complete``, ``interrupted``, ``stopped``)."""


def format_count(n: float) -> str:
    """``950``, ``12.3k``, ``1.2M``. Never raises."""
    if n < 1000:
        return f"{n:.0f}"
    if n < 1_000_000:
        return f"{n / 1000:.1f}k"
    return f"{n / 1_000_000:.1f}M"


def format_duration(seconds: float) -> str:
    """``4.2 s``, ``45 s``, ``12 min 5 s``, ``1 h 5 min``. Never raises."""
    if seconds < 9.95:
        return f"{max(seconds, 0.0):.1f} s"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


def format_cost(cost: float) -> str:
    """``$0.41``; four decimals under a cent (``$0.0042``). Never raises."""
    return f"${cost:.2f}" if cost >= 0.01 or cost == 0 else f"${cost:.4f}"


class ProgressCounts:
    """The counters and the text both reporters show."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        """Never raises."""
        self.clock = clock
        self.total = 0
        self.done = 0
        self.failed = 0
        self.session = 0
        self.tokens = 0
        self.cost: float | None = None
        self.started = clock()

    def start(self, total: int, done: int, failed: int) -> None:
        """Reset the counters for a run of ``total`` rows. Never raises."""
        self.total, self.done, self.failed = total, done, failed
        self.session = 0
        self.started = self.clock()

    def advance(self, ok: bool, tokens: int, cost: float | None) -> None:
        """Count one finished row. Never raises."""
        self.done += 1
        self.session += 1
        if not ok:
            self.failed += 1
        self.tokens += tokens
        if cost is not None:
            self.cost = (self.cost or 0.0) + cost

    @property
    def elapsed(self) -> float:
        """Seconds since :meth:`start`. Never raises."""
        return max(self.clock() - self.started, 0.0)

    @property
    def rate(self) -> float:
        """Rows of this session per second. Never raises."""
        elapsed = self.elapsed
        return self.session / elapsed if elapsed > 0 else 0.0

    def details(self, status: str | None = None) -> str:
        """``3 failed, 85.2 rows/s, ETA 45 s, 1.2M tokens, $0.41`` (the ETA replaced by
        ``done in 58 s`` / ``interrupted after 12 s`` / ``stopped after 3 s`` at the end).
        Never raises."""
        rate = self.rate
        parts = [f"{self.failed} failed", f"{rate:.1f} rows/s"]
        if status is None:
            remaining = max(self.total - self.done, 0)
            if not remaining:
                parts.append("ETA 0 s")
            else:
                parts.append(f"ETA {format_duration(remaining / rate)}" if rate > 0 else "ETA ?")
        else:
            verb = {"complete": "done in", "interrupted": "interrupted after",
                    "stopped": "stopped after"}.get(status, f"{status} after")
            parts.append(f"{verb} {format_duration(self.elapsed)}")
        parts.append(f"{format_count(self.tokens)} tokens")
        if self.cost is not None:
            parts.append(format_cost(self.cost))
        return ", ".join(parts)

    def line(self, prefix: str, status: str | None = None) -> str:
        """``PREFIX: done/total rows, ...``. Never raises."""
        return f"{prefix}: {self.done}/{self.total} rows, {self.details(status)}"


class NullProgress:
    """Reports nothing."""

    def start(self, total: int, done: int = 0, failed: int = 0) -> None:
        """Nothing. Never raises."""
        pass

    def advance(self, ok: bool, tokens: int = 0, cost: float | None = None) -> None:
        """Nothing. Never raises."""
        pass

    def refresh(self) -> None:
        """Nothing. Never raises."""
        pass

    def finish(self, status: str = "complete") -> None:
        """Nothing. Never raises."""
        pass


class PlainProgress:
    """One line every ``interval`` seconds while the run goes on (the runner refreshes
    a few times a second, so slow rows do not hold it back) and a last line at the end."""

    def __init__(self, stream: IO[str] | None = None, *, interval: float = 5.0,
                 prefix: str = "pflow", clock: Callable[[], float] = time.monotonic) -> None:
        """Never raises."""
        self.stream = stream
        self.interval = interval
        self.prefix = prefix
        self.counts = ProgressCounts(clock)
        self._last = clock()

    def _write(self, text: str) -> None:
        stream = self.stream or sys.stderr
        try:
            stream.write(text + "\n")
            stream.flush()
        except (OSError, ValueError):  # a closed or broken stream must not fail the run
            pass

    def start(self, total: int, done: int = 0, failed: int = 0) -> None:
        """Reset the counters. Never raises."""
        self.counts.start(total, done, failed)
        self._last = self.counts.clock()

    def advance(self, ok: bool, tokens: int = 0, cost: float | None = None) -> None:
        """Count a row; print a line if ``interval`` has passed. Never raises."""
        self.counts.advance(ok, tokens, cost)
        self.refresh()

    def refresh(self) -> None:
        """Print a line if ``interval`` has passed since the last one. Never raises."""
        now = self.counts.clock()
        if now - self._last >= self.interval:
            self._last = now
            self._write(self.counts.line(self.prefix))

    def finish(self, status: str = "complete") -> None:
        """Print the last line. Never raises (a broken stream is ignored)."""
        self._write(self.counts.line(self.prefix, status))


class RichProgress:
    """A live bar drawn with ``rich`` on ``console`` (by default a stderr console).

    Raises ``ImportError`` when ``rich`` is not installed.
    """

    def __init__(self, console: Any = None, *, prefix: str = "pflow",
                 clock: Callable[[], float] = time.monotonic) -> None:
        """Raises ``ImportError`` when ``rich`` is not installed."""
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.console = console or Console(stderr=True)
        self.counts = ProgressCounts(clock)
        self._bar = Progress(TextColumn(f"{prefix}"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("rows, {task.fields[info]}"), console=self.console,
                             auto_refresh=False, transient=False)
        self._task: Any = None

    def start(self, total: int, done: int = 0, failed: int = 0) -> None:
        """Show the bar. Never raises (a failure to draw turns the bar off)."""
        self.counts.start(total, done, failed)
        try:
            self._bar.start()
            self._task = self._bar.add_task("rows", total=total, completed=done,
                                            info=self.counts.details())
            self._bar.refresh()
        except Exception:  # noqa: BLE001 - drawing must never fail a run
            self._task = None

    def advance(self, ok: bool, tokens: int = 0, cost: float | None = None) -> None:
        """Count a row (drawn at the next refresh). Never raises."""
        self.counts.advance(ok, tokens, cost)

    def _draw(self, status: str | None = None) -> None:
        if self._task is None:
            return
        try:
            self._bar.update(self._task, completed=self.counts.done, total=self.counts.total,
                             info=self.counts.details(status))
            self._bar.refresh()
        except Exception:  # noqa: BLE001 - drawing must never fail a run
            self._task = None

    def refresh(self) -> None:
        """Redraw the bar. Never raises."""
        self._draw()

    def finish(self, status: str = "complete") -> None:
        """Draw the final state and stop the live display. Never raises."""
        self._draw(status)
        try:
            self._bar.stop()
        except Exception:  # noqa: BLE001 # pragma: no cover
            pass


def _rich_available() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def make_progress(stream: IO[str] | None = None, *, interval: float = 5.0,
                  prefix: str = "pflow") -> Progress:
    """A :class:`RichProgress` when ``stream`` (default stderr) is a terminal, ``TERM``
    is not ``dumb`` and ``rich`` is installed; otherwise a :class:`PlainProgress`.
    Never raises."""
    out = stream or sys.stderr
    try:
        tty = out.isatty()
    except (AttributeError, ValueError):
        tty = False
    if tty and os.environ.get("TERM") != "dumb" and _rich_available():
        from rich.console import Console

        return RichProgress(Console(file=out), prefix=prefix)
    return PlainProgress(out, interval=interval, prefix=prefix)
