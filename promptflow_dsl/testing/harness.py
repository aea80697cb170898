"""Testing a ``.pflow`` program from Python, with the semantics of a ``test`` block.

Example (the ``pflow`` fixture comes with the pytest plugin)::

    def test_triage(pflow):
        h = pflow("examples/review_triage/triage.pflow")
        h.mock_model("default", ['{"label": "negative", "reason": "battery"}',
                                 "We are sorry."])
        h.mock_handler("common.bullets", "- NEGATIVE")
        out = h.run("triage", review="The battery died.")
        assert out["label"] == "negative"
        assert h.calls("classify") == 1

Calls run sequentially and deterministically, the cache is off, and a model the
harness does not mock is an error (``echo`` excepted) unless ``live=True``.
Every call starts from the mocks set so far; :meth:`reset` clears mocks and
counters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..check.program import CheckedProgram, TestInfo
from ..runtime.errors import RunError
from ..runtime.sync import run_sync
from ..syntax import ast
from .runner import TestRun


class Harness:
    """A program under test: mocks, handler calls and counters."""

    __test__ = False

    def __init__(self, program: CheckedProgram, *, live: bool = False) -> None:
        self.program = program
        self.live = live
        self.reset()

    @classmethod
    def load(cls, path: str | Path, *, live: bool = False) -> Harness:
        """Load and check ``path``.  Raises :class:`promptflow_dsl.CompileError`."""
        from ..check import check_file

        return cls(check_file(Path(path)), live=live)

    def reset(self) -> None:
        """Forget every mock and counter."""
        decl = ast.TestDecl(self.program.entry.module.span, "<python>",
                            self.program.entry.module.span, self.live, ())
        self._run = TestRun(self.program, TestInfo("<python>", self.program.entry.key, decl))

    def mock_model(self, model: str, replies: list[str], *, handler: str | None = None) -> Harness:
        """Queue scripted replies for model ``model`` (for the calls of ``handler`` only,
        when given).  Returns the harness, for chaining."""
        if handler is not None:
            handler = self.program.display_name(self.program.handler(handler).key)
        self._run.model(model).add([str(r) for r in replies], handler=handler)
        return self

    def mock_handler(self, handler: str, value: Any) -> Harness:
        """Make every call of ``handler`` return ``value`` without running it."""
        self._run.config.mocked[self.program.handler(handler).key] = value
        return self

    def run(self, handler: str, /, **inputs: Any) -> Any:
        """Call ``handler`` with ``inputs`` and return its value.

        Raises :class:`promptflow_dsl.runtime.InputError` for bad inputs and
        :class:`promptflow_dsl.runtime.RunError` when the call fails.
        """
        return run_sync(self.arun(handler, **inputs))

    async def arun(self, handler: str, /, **inputs: Any) -> Any:
        from ..runtime import prepare_inputs

        h = self.program.handler(handler)
        values = prepare_inputs(h, handler, inputs)
        try:
            return await self._run.ctx.call(h.key, values, call_span=None, caller=None)
        finally:
            await self._run.ctx.registry.aclose()

    def evaluate(self, name: str) -> dict[str, Any]:
        """Run the eval ``name`` under the mocks set so far, as ``evaluate(NAME)`` does in a
        test block: ``{"rows": N, "failed": N, "metrics": {NAME: mean or None}}``.

        Raises ``KeyError`` for an unknown eval and :class:`RunError` when a mocked model
        refuses a call.
        """
        return run_sync(self.aevaluate(name))

    async def aevaluate(self, name: str) -> dict[str, Any]:
        """:meth:`evaluate` for async code."""
        info = self.program.eval(name)
        try:
            return await self._run.evaluate(info.key)
        finally:
            await self._run.ctx.registry.aclose()

    def calls(self, handler: str) -> int:
        """How many times ``handler`` was called (a retried prompt counts once)."""
        return self._run.ctx.calls[self.program.handler(handler).key]

    def model_calls(self, model: str) -> list[Any]:
        """The calls the scripted model ``model`` received (messages, handler, reply)."""
        backend = self._run.scripted.get(model)
        return list(backend.calls) if backend is not None else []

    @property
    def trace(self) -> Any:
        return self._run.ctx.trace.to_trace()


__all__ = ["Harness", "RunError"]
