"""Running ``test "name" { ... }`` blocks.

Each test starts from fresh counters and mocks with the cache off, and runs
sequentially and deterministically: statements in the order written; inside a
call, flow statements in topological order (written order as tie-break),
fan-out items in list order, each call finished before the next starts.
``mock model M replies [...]`` queues replies for every call of model ``M``;
``mock model M for H replies [...]`` queues them for the calls handler ``H``
makes, taken first.  A model the test does not mock is an error, except
``echo`` and in ``live`` tests.  ``expect`` failures report the ``.pflow`` line
and both sides of the comparison.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ..check.program import CheckedModule, CheckedProgram, TestInfo
from ..diagnostics import Diagnostic, Span, error
from ..lang.values import dumps
from ..models.base import Backend, Capabilities
from ..runtime.cache import CacheMode
from ..runtime.context import RunConfig, RunContext
from ..runtime.errors import RunError
from ..runtime.evaluate import Evaluator
from ..runtime.sync import run_sync
from ..runtime.trace import TraceRecorder
from ..syntax import ast
from .mocks import ScriptedBackend, UnmockedModel

__all__ = ["TestOutcome", "run_test", "run_test_async", "show_value"]


@dataclass
class TestOutcome:
    """What one test block did.  ``status`` is passed | failed | skipped."""

    name: str
    file: str
    line: int
    status: str
    message: str = ""
    diagnostic: Diagnostic | None = None
    detail: str | None = None
    duration: float = 0.0
    live: bool = False
    calls: dict[str, int] = field(default_factory=dict)

    __test__ = False

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"


def show_value(v: Any) -> str:
    """A value as it reads in a failure message (JSON; strings quoted)."""
    text = dumps(v) if not isinstance(v, str) else dumps(v)
    return text if len(text) <= 300 else text[:297] + "..."


class _Failed(Exception):
    def __init__(self, span: Span, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.span = span
        self.message = message
        self.detail = detail


def handler_key(program: CheckedProgram, module: CheckedModule, ref: ast.Ref) -> str:
    """The key of the handler a (checked) reference names."""
    if len(ref.parts) == 2:
        return program.modules[module.imports[ref.parts[0]]].handlers[ref.parts[1]].key
    return module.handlers[ref.parts[0]].key


class TestRun:
    """The state of one test: its mocks, its run context and its variables."""

    __test__ = False

    def __init__(self, program: CheckedProgram, test: TestInfo, *,
                 backends: dict[str, Backend] | None = None, mode: str = "replay",
                 recording: list[dict[str, Any]] | None = None) -> None:
        self.program = program
        self.test = test
        self.module = program.modules[test.module_key]
        self.scripted: dict[str, ScriptedBackend] = {}
        self.mode = mode
        self.recording = recording  # calls recorded earlier (replay) or being recorded
        self.config = RunConfig(sequential=True, cache=CacheMode.OFF, write_trace=False,
                                backends=dict(backends or {}), intercept=self._intercept)
        if test.decl.live and mode == "record":
            self.config.wrap = self._record
        self.ctx = RunContext(program, self.config, TraceRecorder(test.module_key, test.name),
                              None)
        self.evaluator: Evaluator = _TestEvaluator(self)
        self.env: dict[str, Any] = {}

    def _intercept(self, name: str, model_id: str) -> Backend | None:
        if model_id == "echo":
            return None
        if not self.test.decl.live:
            return UnmockedModel(name, self.test.name)
        if self.mode == "replay" and self.recording is not None:
            from .replay import Replayer

            replayer = self.config.backends.get(name)
            if replayer is None:
                replayer = Replayer(name, self.test.name, self.recording, Capabilities(
                    **(self.capabilities.get(name) or {})))
                self.config.backends[name] = replayer
            return replayer
        return None

    @property
    def capabilities(self) -> dict[str, dict[str, bool]]:
        caps = [c for c in (self.recording or []) if c.get("kind") == "capabilities"]
        return {c["model"]: c["reply"] for c in caps}

    def _record(self, name: str, backend: Backend) -> Backend:
        from .replay import Recorder

        assert self.recording is not None
        self.recording.append({"model": name, "kind": "capabilities", "request": "",
                               "reply": backend.capabilities.as_dict()})
        return Recorder(name, backend, self.recording)

    def model(self, name: str) -> ScriptedBackend:
        backend = self.scripted.get(name)
        if backend is None:
            backend = self.scripted[name] = ScriptedBackend(name)
            self.config.backends[name] = backend
        return backend

    async def run(self) -> None:
        for st in self.test.decl.body:
            await self.statement(st)

    async def evaluate(self, key: str) -> dict[str, Any]:
        """``evaluate(NAME)``: every row of the eval with key ``key`` run in this test
        (its mocks, its counters, sequentially, no run folder, no trace file), as
        ``{rows, failed, metrics: {NAME: mean or none}}``. A row whose ``run`` fails, or
        that does not fit the row type, counts as failed; a metric that fails is not
        scored. Raises :class:`RunError` when a mocked model refuses a call (the test's
        own mistake), which fails the test."""
        from ..datasets.rows import iter_row_items
        from ..runtime.errors import ScriptRefused
        from ..runtime.rows import eval_row

        info = self.program.all_evals()[key]
        rows = failed = 0
        sums: dict[str, float] = {m.name: 0.0 for m in info.metrics}
        scored: dict[str, int] = {m.name: 0 for m in info.metrics}
        for _line, row in iter_row_items(info.data):
            if row is None:
                continue
            rows += 1
            if not isinstance(row, dict):  # a DatasetError: a row that cannot be read
                failed += 1
                continue
            try:
                got = await eval_row(self.ctx, info, row)
            except ScriptRefused:
                raise
            except RunError:
                failed += 1
                continue
            for name, value in got.metrics.items():
                if value is not None:
                    sums[name] += float(value)
                    scored[name] += 1
        metrics = {name: (sums[name] / scored[name] if scored[name] else None)
                   for name in sums}
        return {"rows": rows, "failed": failed, "metrics": metrics}

    async def value(self, e: ast.Expr) -> Any:
        try:
            return await self.evaluator.eval(e, self.env)
        except RunError as exc:
            raise _Failed(exc.span or e.span, exc.message, exc.detail) from None

    async def statement(self, st: ast.Node) -> None:
        if isinstance(st, ast.Assign):
            self.env[st.name] = await self.value(st.value)
        elif isinstance(st, ast.MockModel):
            replies = await self.value(st.replies)
            handler = None
            if st.handler is not None:
                handler = self.program.display_name(handler_key(self.program, self.module,
                                                                st.handler))
            self.model(st.model.dotted).add([str(r) for r in replies], handler=handler)
        elif isinstance(st, ast.MockHandler):
            key = handler_key(self.program, self.module, st.target)
            self.config.mocked[key] = await self.value(st.value)
        elif isinstance(st, ast.ExpectError):
            await self.expect_error(st)
        elif isinstance(st, ast.Expect):
            await self.expect(st)

    async def expect(self, st: ast.Expect) -> None:
        e = st.expr
        if isinstance(e, ast.Compare):
            left, right = await self.value(e.left), await self.value(e.right)
            from ..runtime.evaluate import _COMPARE

            try:
                ok = bool(_COMPARE[e.op](left, right))
            except TypeError:
                ok = False
            if not ok:
                raise _Failed(st.span, f"expect failed: {show_value(left)} {e.op} "
                                       f"{show_value(right)} is false")
            return
        v = await self.value(e)
        if not v:
            raise _Failed(st.span, f"expect failed: the value is {show_value(v)}")

    async def expect_error(self, st: ast.ExpectError) -> None:
        wanted = await self.value(st.text)
        try:
            got = await self.evaluator.eval(st.call, self.env)
        except RunError as exc:
            text = exc.message + ("\n" + exc.detail if exc.detail else "")
            if str(wanted) not in text:
                raise _Failed(st.span, f"expect error failed: the error does not contain "
                                       f"{show_value(wanted)}; it was: {exc.message}") from None
            return
        raise _Failed(st.span, f"expect error failed: the call returned {show_value(got)} "
                               f"instead of failing")


class _TestEvaluator(Evaluator):
    """The evaluator of a test block: ``evaluate(NAME)`` runs the eval in the test."""

    def __init__(self, run: TestRun) -> None:
        super().__init__(run.ctx, run.module)
        self.run = run

    async def _Call(self, e: ast.Call, env: dict[str, Any]) -> Any:
        res = self.module.resolutions.get(e.span)
        if res is not None and res.kind == "eval":
            return await self.run.evaluate(res.target)
        return await super()._Call(e, env)


async def run_test_async(program: CheckedProgram, test: TestInfo, *,
                         backends: dict[str, Backend] | None = None, mode: str = "replay",
                         recording: list[dict[str, Any]] | None = None) -> TestOutcome:
    """Run one test block; never raises for a test that fails (see the outcome).

    ``mode`` says what a ``live`` test does: ``replay`` serves ``recording`` (skipped
    when there is none), ``record`` calls the real models and appends every call to
    ``recording``, ``live`` calls the real models without recording.
    """
    decl = test.decl
    outcome = TestOutcome(test.name, decl.span.file, decl.span.line, "passed", live=decl.live)
    if decl.live and mode == "replay" and recording is None:
        outcome.status = "skipped"
        outcome.message = "live test without a recording: run `pflow test --record` (or --live)"
        return outcome
    started = time.perf_counter()
    run = TestRun(program, test, backends=backends, mode=mode, recording=recording)
    try:
        await run.run()
    except _Failed as f:
        outcome.status = "failed"
        outcome.message = f.message
        outcome.diagnostic = error(f.span, f.message)
        outcome.detail = f.detail
    finally:
        await run.ctx.aclose()
    outcome.duration = time.perf_counter() - started
    outcome.calls = {program.display_name(k): n for k, n in run.ctx.calls.items()}
    return outcome


def run_test(program: CheckedProgram, test: TestInfo, **kw: Any) -> TestOutcome:
    """Synchronous :func:`run_test_async`."""
    return run_sync(run_test_async(program, test, **kw))
