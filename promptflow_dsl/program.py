"""The library facade's program: a checked program that can also be planned and run.

``promptflow_dsl.load`` and ``loads`` return a :class:`Program`.  The check stage
knows nothing of the stages after it, so planning and running are added here, at
the top, where every stage may be imported.
"""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any

from .check.program import CheckedProgram, HandlerInfo

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import AsyncIterator

    from .plan import Plan
    from .runtime import RunConfig, RunResult
    from .runtime.streaming import RunEvent

__all__ = ["Program"]


class Program(CheckedProgram):
    """A :class:`~promptflow_dsl.check.program.CheckedProgram` with ``plan``, ``run``,
    ``arun`` and ``stream``.

    A subclass rather than a wrapper: everything users read on a program
    (``handlers``, ``tests``, ``warnings``, ``sources``, ``handler(name)``...) is the
    checked program's own, and every later stage (planner, runtime, tests) takes a
    ``CheckedProgram``, so a ``Program`` goes to them as it is — no attribute is
    delegated and nothing needs unwrapping.  It adds no state: plans are cached by
    the plan stage (:func:`promptflow_dsl.plan.plan_for`), beside the program, never
    in it.
    """

    @classmethod
    def of(cls, checked: CheckedProgram) -> Program:
        """The checker's result as a :class:`Program` (its parts are shared, not copied)."""
        if isinstance(checked, cls):
            return checked
        return cls(**{f.name: getattr(checked, f.name) for f in fields(checked)})

    # ------------------------------------------------------------ planning

    def plan(self, name: str) -> Plan:
        """The execution plan of handler ``name``.

        Raises ``KeyError`` for an unknown handler and
        :class:`promptflow_dsl.plan.PlanError` for a cycle among data edges.
        """
        return self.plan_of(self.handler(name))

    def plan_of(self, handler: HandlerInfo) -> Plan:
        """The plan of ``handler``, built once per program (plans are never modified)."""
        from .plan import plan_for

        return plan_for(self, handler)

    # ------------------------------------------------------------ running

    def run(self, handler: str, /, config: RunConfig | None = None, **inputs: Any) -> RunResult:
        """Run ``handler`` with ``inputs``; returns a ``RunResult`` (``.value``, ``.trace``).

        Raises ``KeyError`` (unknown handler), ``promptflow_dsl.runtime.InputError``
        (bad inputs) or ``promptflow_dsl.runtime.RunFailed`` (the run failed).
        """
        from .runtime import run

        return run(self, handler, inputs, config)

    async def arun(self, handler: str, /, config: RunConfig | None = None,
                   **inputs: Any) -> RunResult:
        """Async :meth:`run`."""
        from .runtime import arun

        return await arun(self, handler, inputs, config)

    def stream(self, handler: str, /, config: RunConfig | None = None,
               **inputs: Any) -> AsyncIterator[RunEvent]:
        """Run ``handler`` as an async iterator of events, in the order they happen:
        ``StepStarted`` / ``StepFinished`` for every step, ``TextDelta`` for each piece
        of the text of a prompt with a ``str`` result as the model writes it, and
        ``Finished`` (``.value``, ``.trace``) last (``promptflow_dsl.runtime.streaming``).

        Raises, while iterating, what :meth:`arun` raises.  Breaking out of the loop
        cancels the run.
        """
        from .runtime.streaming import stream_run

        return stream_run(self, handler, inputs, config)
