"""Progress: plain lines for logs, a rich bar on terminals."""

from __future__ import annotations

import io

import pytest

from promptflow_dsl.datasets import PlainProgress, RichProgress, make_progress
from promptflow_dsl.datasets.progress import format_cost, format_count, format_duration


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_formats() -> None:
    assert [format_count(n) for n in (0, 999, 1000, 12_345, 999_949, 1_200_000)] == [
        "0", "999", "1.0k", "12.3k", "999.9k", "1.2M"]
    assert [format_duration(s) for s in (0, 4.24, 9.96, 45.4, 59.6, 725, 3900)] == [
        "0.0 s", "4.2 s", "10 s", "45 s", "1 min 0 s", "12 min 5 s", "1 h 5 min"]
    assert [format_cost(c) for c in (0, 0.0042, 0.41, 12.345)] == [
        "$0.00", "$0.0042", "$0.41", "$12.35"]


def test_plain_lines_every_interval_and_at_the_end() -> None:
    clock, out = Clock(), io.StringIO()
    p = PlainProgress(out, interval=5.0, clock=clock)
    p.start(total=5000)
    for i in range(1200):
        clock.now += 14.0845 / 1200
        p.advance(ok=i % 400 != 0, tokens=1000, cost=0.41 / 1200)
    p.refresh()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2  # at 5 s and 10 s
    assert lines[-1].startswith("pflow: ") and "/5000 rows" in lines[-1]
    clock.now = 100.0 + 12.0  # under 5 s since the last line: nothing
    p.refresh()
    assert len(out.getvalue().splitlines()) == 2
    clock.now = 100.0 + 20.0  # slow rows: refresh() alone prints
    p.refresh()
    assert out.getvalue().splitlines()[-1] == (
        "pflow: 1200/5000 rows, 3 failed, 60.0 rows/s, ETA 1 min 3 s, 1.2M tokens, $0.41")
    p.finish("interrupted")
    assert out.getvalue().splitlines()[-1] == (
        "pflow: 1200/5000 rows, 3 failed, 60.0 rows/s, interrupted after 20 s, 1.2M tokens, $0.41")


def test_exact_line_format() -> None:
    clock, out = Clock(), io.StringIO()
    p = PlainProgress(out, interval=1e9, clock=clock)
    p.start(total=5000)
    for i in range(1200):
        p.advance(ok=i >= 3, tokens=1000, cost=0.41 / 1200)
    clock.now += 1200 / 85.2
    assert p.counts.line("pflow") == (
        "pflow: 1200/5000 rows, 3 failed, 85.2 rows/s, ETA 45 s, 1.2M tokens, $0.41")
    assert out.getvalue() == ""


def test_resumed_runs_count_earlier_rows_but_not_in_the_rate() -> None:
    clock, out = Clock(), io.StringIO()
    p = PlainProgress(out, interval=1e9, clock=clock)
    p.start(total=100, done=90, failed=2)
    assert p.counts.line("pflow") == "pflow: 90/100 rows, 2 failed, 0.0 rows/s, ETA ?, 0 tokens"
    clock.now += 2
    p.advance(ok=True)
    p.advance(ok=True)
    p.finish()
    assert out.getvalue() == ("pflow: 92/100 rows, 2 failed, 1.0 rows/s, done in 2.0 s, "
                              "0 tokens\n")


def test_a_broken_stream_does_not_fail_the_run() -> None:
    out = io.StringIO()
    out.close()
    p = PlainProgress(out, interval=0)
    p.start(total=1)
    p.advance(ok=True)
    p.finish()


def test_make_progress_chooses_by_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(make_progress(io.StringIO()), PlainProgress)

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("TERM", "xterm")
    pytest.importorskip("rich")
    assert isinstance(make_progress(Tty()), RichProgress)
    monkeypatch.setenv("TERM", "dumb")
    assert isinstance(make_progress(Tty()), PlainProgress)


def test_rich_bar_renders() -> None:
    pytest.importorskip("rich")
    from rich.console import Console

    out = io.StringIO()
    clock = Clock()
    p = RichProgress(Console(file=out, force_terminal=True, width=120), clock=clock)
    p.start(total=10, done=2)
    for i in range(5):
        clock.now += 0.5
        p.advance(ok=i != 1, tokens=2000, cost=0.02)
        p.refresh()
    p.finish("complete")
    text = out.getvalue()
    assert "7/10" in text and "1 failed" in text and "10.0k tokens" in text
    assert "$0.10" in text and "done in 2.5 s" in text
