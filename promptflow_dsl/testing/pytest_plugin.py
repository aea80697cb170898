"""pytest plugin: ``test`` blocks of ``*.pflow`` files become pytest items.

Registered through the ``pytest11`` entry point, so ``pytest`` alone collects
every ``*.pflow`` file under its paths (``-k``, ``-x``, ``--junitxml`` and
parallel plugins work as for Python tests).  A failure is reported at the
``.pflow`` line of the failing ``expect``, not as a traceback of the
interpreter; a file that does not compile is a collection error showing its
diagnostics.  Options: ``--pflow-record`` / ``--pflow-live`` (what ``live``
tests do, as for ``pflow test``) and the ini flag ``pflow_collect = false`` to
turn collection off.  The ``pflow`` fixture gives Python tests a
:class:`~promptflow_dsl.testing.harness.Harness` factory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ..runtime.sync import run_sync


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pflow", "promptflow-dsl .pflow tests")
    group.addoption("--pflow-record", action="store_true",
                    help="run `live` pflow tests against real models and record their replies")
    group.addoption("--pflow-live", action="store_true",
                    help="run `live` pflow tests against real models without recording")
    parser.addini("pflow_collect", "collect test blocks from *.pflow files", type="bool",
                  default=True)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix == ".pflow" and parent.config.getini("pflow_collect"):
        return PflowFile.from_parent(parent, path=file_path)
    return None


class PflowCompileFailure(Exception):
    """A .pflow file collected by pytest does not compile."""


class PflowTestFailure(Exception):
    """A pflow test block failed; carries its outcome and the program's sources."""

    def __init__(self, outcome: Any, sources: dict[str, str]) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome
        self.sources = sources


def _mode(config: pytest.Config) -> str:
    if config.getoption("pflow_record"):
        return "record"
    if config.getoption("pflow_live"):
        return "live"
    return "replay"


class PflowFile(pytest.File):
    def collect(self) -> Any:
        from ..check import check_file
        from ..diagnostics import CompileError
        from .replay import ReplayFile, replay_path

        try:
            program = check_file(Path(self.path))
        except CompileError as exc:
            raise PflowCompileFailure(exc.render()) from None
        self.program = program
        self.recordings = ReplayFile(replay_path(self.path))
        for test in program.tests:
            yield PflowItem.from_parent(self, name=test.name, test=test)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, PflowCompileFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


class PflowItem(pytest.Item):
    def __init__(self, *, test: Any, **kw: Any) -> None:
        super().__init__(**kw)
        self.test = test
        # a .pflow test takes no fixtures; plugins written for functions read this
        # (pytest-lsp's call wrapper fails on an item without it)
        self.funcargs: dict[str, Any] = {}
        if test.decl.live:
            self.add_marker(pytest.mark.pflow_live)

    def runtest(self) -> None:
        from .runner import run_test_async

        parent: PflowFile = self.parent  # type: ignore[assignment]
        mode = _mode(self.config)
        recording = parent.recordings.tests.get(self.test.name)
        if mode == "record" and self.test.decl.live:
            recording = []
        outcome = run_sync(run_test_async(parent.program, self.test, mode=mode,
                                             recording=recording))
        if outcome.status == "skipped":
            pytest.skip(outcome.message)
        if not outcome.passed:
            raise PflowTestFailure(outcome, parent.program.sources)
        if mode == "record" and self.test.decl.live and recording is not None:
            parent.recordings.tests[self.test.name] = recording
            parent.recordings.save()

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, PflowTestFailure):
            from .session import render_outcome

            return render_outcome(excinfo.value.outcome, excinfo.value.sources)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.test.decl.span.line - 1, f"pflow test \"{self.test.name}\""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "pflow_live: a `live` pflow test (calls real models)")


@pytest.fixture
def pflow() -> Any:
    """Load programs for testing from Python: ``h = pflow("app.pflow")`` returns a
    :class:`~promptflow_dsl.testing.harness.Harness` (mock models and handlers, run
    handlers, read counters)."""
    from .harness import Harness

    return Harness.load
