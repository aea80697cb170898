"""A run as a stream of events: :func:`stream_run` (``Program.stream``, ``pflow run
--stream``).

The run goes on in a task of its own; an observer (:class:`~.observe.RunObserver`)
puts what happens on a queue and the caller reads it as an async iterator of
:class:`StepStarted`, :class:`TextDelta`, :class:`StepFinished` and, last,
:class:`Finished` (the value and the trace).  A prompt whose result is ``str`` is
asked for as a stream when its text is wanted (``text_of``), so the pieces arrive
while the model writes; a cached reply comes as one piece.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..check.program import CheckedProgram
from .context import RunConfig
from .observe import RunObserver
from .trace import Step, Trace

__all__ = ["Finished", "RunEvent", "StepFinished", "StepStarted", "TextDelta", "stream_run"]


@dataclass(frozen=True)
class StepStarted:
    """A step began: a handler call (``kind`` its handler kind) or a part of one."""

    step_id: str
    parent: str | None
    handler: str
    kind: str


@dataclass(frozen=True)
class StepFinished:
    """A step ended with ``status`` (``ok``, ``failed``, ``skipped``, ``not_taken``)."""

    step_id: str
    parent: str | None
    handler: str
    kind: str
    status: str
    output: Any
    error: str | None
    latency_ms: float


@dataclass(frozen=True)
class TextDelta:
    """A piece of the reply text of step ``step_id`` (a prompt with a ``str`` result)."""

    step_id: str
    handler: str
    text: str


@dataclass(frozen=True)
class Finished:
    """The run ended well: the entry handler's ``value``, the run's ``trace`` and where
    it was written (``None``: not written)."""

    value: Any
    trace: Trace
    trace_path: Path | None = None


RunEvent = StepStarted | StepFinished | TextDelta | Finished


class _Feed(RunObserver):
    """Puts a run's events on a queue, from whatever thread they happen on."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any],
                 text_of: Callable[[Step], bool]) -> None:
        self.loop, self.queue, self.text_of = loop, queue, text_of

    def _put(self, event: Any) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self.queue.put_nowait(event)
        else:  # a tool's worker thread
            self.loop.call_soon_threadsafe(self.queue.put_nowait, event)

    def step_started(self, step: Step) -> None:
        self._put(StepStarted(step.id, step.parent, step.handler, step.kind))

    def step_finished(self, step: Step) -> None:
        self._put(StepFinished(step.id, step.parent, step.handler, step.kind, step.status,
                               step.output, step.error, step.latency_ms))

    def streams(self, step: Step) -> bool:
        return self.text_of(step)

    def text(self, step: Step, delta: str) -> None:
        self._put(TextDelta(step.id, step.handler, delta))


_END = object()


async def stream_run(program: CheckedProgram, handler: str, inputs: dict[str, Any] | None = None,
                     config: RunConfig | None = None,
                     text_of: Callable[[Step], bool] | None = None) -> AsyncIterator[RunEvent]:
    """Run ``handler`` and yield its events as they happen, :class:`Finished` last.

    ``text_of(step)`` says which steps' reply text to stream (default: the steps of
    prompts; only a prompt with a ``str`` result, without hooks, has text to stream).  Raises what :func:`promptflow_dsl.runtime.arun` raises
    (``KeyError``, ``InputError``, ``RunFailed``) after the events before the failure
    were yielded.  Leaving the iteration early cancels the run.
    """
    from . import arun

    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    feed = _Feed(loop, queue, text_of or (lambda step: step.kind == "prompt"))
    config = replace(config or RunConfig(), observers=(*(config.observers if config else ()), feed))

    async def body() -> Any:
        try:
            return await arun(program, handler, inputs, config)
        finally:
            queue.put_nowait(_END)

    task = asyncio.ensure_future(body())
    try:
        while True:
            event = await queue.get()
            if event is _END:
                break
            yield event
        while not queue.empty():  # events a worker thread posted after the end
            event = queue.get_nowait()
            if event is not _END:
                yield event
        result = await task  # raises the run's error
        yield Finished(result.value, result.trace, result.trace_path)
    finally:
        if not task.done():
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
