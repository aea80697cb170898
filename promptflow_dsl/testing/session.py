"""A test session over files: load each program, run its selected tests, keep the
recordings of ``live`` tests, and render results for the terminal.

Used by ``pflow test``; the pytest plugin uses :func:`run_test_async` per item.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..check.program import CheckedProgram
from ..diagnostics import CompileError, render
from ..runtime.sync import run_sync
from .discover import matches
from .replay import ReplayFile, replay_path
from .runner import TestOutcome, run_test_async


@dataclass
class FileResult:
    path: Path
    outcomes: list[TestOutcome] = field(default_factory=list)
    compile_error: CompileError | None = None
    sources: dict[str, str] = field(default_factory=dict)
    total_tests: int = 0
    warnings: int = 0  # the program's check warnings (`pflow check` shows them)


def load_program(path: Path, allow: tuple[Path, ...] = ()) -> CheckedProgram:
    """Raises :class:`CompileError`."""
    from ..check import check_file

    return check_file(Path(path), tuple(Path(p) for p in allow))


async def run_file(path: Path, pattern: str | None = None, mode: str = "replay",
                   allow: tuple[Path, ...] = ()) -> FileResult:
    """Run the tests of one file that match ``pattern``.  Never raises for user errors."""
    result = FileResult(path)
    try:
        program = load_program(path, allow)
    except CompileError as exc:
        result.compile_error = exc
        result.sources = exc.sources
        return result
    result.sources = program.sources
    result.total_tests = len(program.tests)
    result.warnings = len(program.warnings)
    try:
        recordings = ReplayFile(replay_path(path))
    except ValueError as exc:
        from ..diagnostics import Span, error

        result.compile_error = CompileError([error(Span.point(str(path), 1, 1), str(exc))])
        return result
    changed = False
    for test in program.tests:
        if not matches(pattern, program.entry.uri, test.name):
            continue
        recording = recordings.tests.get(test.name)
        if mode == "record" and test.decl.live:
            recording = []
        outcome = await run_test_async(program, test, mode=mode, recording=recording)
        if mode == "record" and test.decl.live and outcome.passed and recording is not None:
            recordings.tests[test.name] = recording
            changed = True
        result.outcomes.append(outcome)
    if changed:
        recordings.save()
    return result


def run_files(paths: list[Path], pattern: str | None = None, mode: str = "replay",
              allow: tuple[Path, ...] = ()) -> Iterator[FileResult]:
    """Run every file in turn (results are yielded as each file finishes)."""
    for p in paths:
        yield run_sync(run_file(p, pattern, mode, allow))


_MARK = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}


def render_outcome(o: TestOutcome, sources: dict[str, str], color: bool = False) -> str:
    mark = _MARK[o.status]
    if color:
        code = {"passed": "32", "failed": "31", "skipped": "33"}[o.status]
        mark = f"\x1b[1;{code}m{mark}\x1b[0m"
    line = f"{mark} {o.location} \"{o.name}\" ({o.duration * 1000:.0f} ms)"
    if o.status == "skipped":
        return f"{line}: {o.message}"
    if o.status == "failed":
        parts = [line]
        if o.diagnostic is not None:
            parts.append(_indent(render([o.diagnostic], sources, color=color)))
        if o.detail:
            parts.append(_indent(o.detail))
        return "\n".join(parts)
    return line


def _indent(text: str) -> str:
    return "\n".join("    " + ln for ln in text.splitlines())
