"""Watching a run as it goes: :class:`RunObserver` and the recorder that calls it.

A run with observers (``RunConfig.observers``) records its trace with an
:class:`ObservedRecorder`, which tells every observer when a step starts and
finishes; the run context tells them about each model call (:class:`ModelCall`) and,
for a step an observer :meth:`~RunObserver.streams`, each piece of reply text as the
model generates it.  A run without observers uses the plain
:class:`~.trace.TraceRecorder` and pays nothing for this.

Observers are called on the event loop's thread (a step may also start or finish on
a tool's worker thread); they must be quick and must not raise — an exception from
an observer is logged and the run goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..models.base import GenParams
from .trace import Step, StepStatus, Trace, TraceRecorder

log = logging.getLogger("promptflow_dsl")

__all__ = ["ModelCall", "ObservedRecorder", "RunObserver", "notify"]


@dataclass(frozen=True)
class ModelCall:
    """One model call of a step, as the run context made it.

    ``operation`` is ``chat``, ``complete``, ``score`` or ``embed``; ``request`` the
    request's content (``messages``, ``prefix``, ``continuations`` or ``texts``, never a
    key or a server address); ``params`` the merged generation parameters (``None`` for
    score and embed); ``result`` the reply as the cache keeps it (``text``, ``model``,
    ``finish_reason``, ``usage``) or ``None`` when the call failed with ``error``;
    times are ``time.time_ns()``.
    """

    step: Step | None
    model_id: str
    operation: str
    request: Mapping[str, Any]
    params: GenParams | None
    result: Mapping[str, Any] | None
    cache_hit: bool
    started_ns: int
    ended_ns: int
    error: str | None = None


class RunObserver:
    """What a run tells its observers; every method does nothing unless overridden."""

    def for_run(self) -> RunObserver:
        """The observer of one run (itself by default).  An observer that keeps
        per-run state returns a fresh one: the rows of a dataset are runs of their own
        with one configuration."""
        return self

    def run_started(self, recorder: TraceRecorder) -> None:
        """The run began (its recorder holds the run id, entry and inputs)."""

    def step_started(self, step: Step) -> None:
        """A step began (``status`` is ``running``)."""

    def step_finished(self, step: Step) -> None:
        """A step ended; its fields (output, error, model, usage, latency) are final."""

    def model_called(self, call: ModelCall) -> None:
        """A model call ended (answered, from the cache, or failed)."""

    def streams(self, step: Step) -> bool:
        """Whether this observer wants the reply text of ``step`` as it is generated.

        Asked once per model call of a prompt whose result is ``str``; when any observer
        says yes the call is made as a stream (where the model can stream) and
        :meth:`text` receives each piece."""
        return False

    def text(self, step: Step, delta: str) -> None:
        """A piece of ``step``'s reply (a cached reply comes as one piece)."""

    def run_finished(self, trace: Trace) -> None:
        """The run ended; ``trace`` is its finished trace."""


def notify(observers: Iterable[RunObserver], method: str, *args: Any) -> None:
    """Call ``method`` on every observer; an observer that raises is logged, not fatal."""
    for observer in observers:
        try:
            getattr(observer, method)(*args)
        except Exception as exc:  # an observer must never break the run it watches
            log.warning("run observer %s.%s failed: %s: %s", type(observer).__name__, method,
                        type(exc).__name__, exc)


class ObservedRecorder(TraceRecorder):
    """A :class:`TraceRecorder` that tells ``observers`` about each step."""

    def __init__(self, *args: Any, observers: tuple[RunObserver, ...], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.observers = observers

    def start(self, handler: str, kind: str, parent: str | Step | None = None,
              inputs: Mapping[str, Any] | None = None, file: str | None = None,
              line: int | None = None, **fields: Any) -> Step:
        step = super().start(handler, kind, parent, inputs, file, line, **fields)
        notify(self.observers, "step_started", step)
        return step

    def finish(self, step: Step, status: StepStatus = "ok", *, output: Any = None,
               error: str | BaseException | None = None, **fields: Any) -> Step:
        done = super().finish(step, status, output=output, error=error, **fields)
        notify(self.observers, "step_finished", done)
        return done


def run_observers(config: Any) -> tuple[RunObserver, ...]:
    """The observers of a run with ``config`` (a ``RunConfig``): its own, and the
    OpenTelemetry exporter when ``config.otel`` is true, or is ``None`` and
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (only then is OpenTelemetry imported).

    Raises ``promptflow_dsl.telemetry.TelemetryUnavailable`` when ``config.otel`` is
    true and the ``otel`` extra is not installed; with only the variable set, that is
    a warning (once) and the run goes on without export."""
    import os

    found = tuple(config.observers)
    otel = config.otel
    if otel or (otel is None and os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")):
        from ..telemetry import TelemetryUnavailable, span_exporter

        try:
            found += (span_exporter(),)
        except TelemetryUnavailable as exc:
            if otel:
                raise
            global _warned
            if not _warned:
                _warned = True
                log.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but %s", exc)
    return found


_warned = False


def recorder_for(observers: tuple[RunObserver, ...], *args: Any, **kwargs: Any) -> TraceRecorder:
    """An :class:`ObservedRecorder` when there are observers (told the run started),
    else a plain :class:`TraceRecorder`."""
    if not observers:
        return TraceRecorder(*args, **kwargs)
    observers = tuple(o.for_run() for o in observers)
    recorder = ObservedRecorder(*args, observers=observers, **kwargs)
    notify(observers, "run_started", recorder)
    return recorder
