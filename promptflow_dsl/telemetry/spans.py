"""The run observer that turns a run into OpenTelemetry spans.

One trace per run: a root span ``pflow.run ENTRY``, a span per step (``KIND
HANDLER``: the entry call, the calls it makes, nested as they were called) and a
span per model call (``chat MODEL``, ``text_completion MODEL``, ...) under the step
that made it.  Spans start and end at the times the trace records.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

from ..runtime.observe import ModelCall, RunObserver
from ..runtime.trace import Step, Trace, TraceRecorder
from .attributes import (
    model_call_attributes,
    model_call_name,
    run_attributes,
    step_attributes,
    step_end_attributes,
    to_json,
)


def _ns(when: dt.datetime) -> int:
    return int(when.timestamp() * 1_000_000_000)


class SpanExporter(RunObserver):
    """Makes the spans of each run with ``tracer_provider``'s tracer; one instance may
    watch many runs (the rows of a dataset), each gets its own :class:`RunSpans`."""

    def __init__(self, tracer_provider: Any) -> None:
        self.provider = tracer_provider
        self.tracer = tracer_provider.get_tracer("promptflow_dsl")

    def for_run(self) -> RunSpans:
        return RunSpans(self.tracer)


class RunSpans(RunObserver):
    """The spans of one run."""

    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer
        self.root: Any = None
        self.recorder: TraceRecorder | None = None
        self.spans: dict[str, Any] = {}
        self.lock = threading.Lock()

    def _scrub(self, value: Any) -> Any:
        return self.recorder.scrub(value) if self.recorder is not None else value

    def _context(self, parent: Any) -> Any:
        from opentelemetry import trace

        return trace.set_span_in_context(parent) if parent is not None else None

    def run_started(self, recorder: TraceRecorder) -> None:
        self.recorder = recorder
        # the inputs are set when the run ends: the run's keys are known to the scrubber
        # only once its context is open, after this
        self.root = self.tracer.start_span(
            f"pflow.run {recorder.entry}", start_time=_ns(recorder.started_at),
            attributes={"openinference.span.kind": "CHAIN", "pflow.run_id": recorder.run_id,
                        "pflow.entry": recorder.entry})

    def step_started(self, step: Step) -> None:
        with self.lock:
            parent = self.spans.get(step.parent or "", self.root)
        span = self.tracer.start_span(f"{step.kind} {step.handler}", context=self._context(parent),
                                      start_time=_ns(step.started_at),
                                      attributes=step_attributes(step))
        with self.lock:
            self.spans[step.id] = span

    def step_finished(self, step: Step) -> None:
        from opentelemetry.trace import Status, StatusCode

        with self.lock:
            span = self.spans.get(step.id)
        if span is None:
            return
        span.set_attributes(step_end_attributes(step))
        if step.status == "failed":
            span.set_status(Status(StatusCode.ERROR, step.error or "failed"))
        elif step.status == "ok":
            span.set_status(Status(StatusCode.OK))
        end = _ns(step.started_at) + int(step.latency_ms * 1_000_000)
        span.end(end_time=max(end, _ns(step.started_at)))

    def model_called(self, call: ModelCall) -> None:
        from opentelemetry.trace import SpanKind, Status, StatusCode

        with self.lock:
            parent = self.spans.get(call.step.id, self.root) if call.step else self.root
        span = self.tracer.start_span(model_call_name(call), context=self._context(parent),
                                      kind=SpanKind.CLIENT, start_time=call.started_ns,
                                      attributes=model_call_attributes(call, self._scrub))
        if call.error is not None:
            span.set_status(Status(StatusCode.ERROR, self._scrub(call.error)))
        span.end(end_time=call.ended_ns)

    def run_finished(self, trace: Trace) -> None:
        from opentelemetry.trace import Status, StatusCode

        if self.root is None:
            return
        with self.lock:
            open_spans = [s for s in self.spans.values() if s.is_recording()]
        for span in open_spans:  # a step that never finished (the run was cut short)
            span.set_status(Status(StatusCode.ERROR, "did not finish"))
            span.end()
        self.root.set_attributes(run_attributes(trace.run_id, trace.program, trace.entry,
                                                trace.inputs, self._scrub))
        if trace.status == "ok":
            text = trace.output if isinstance(trace.output, str) else to_json(trace.output)
            mime = "text/plain" if isinstance(trace.output, str) else "application/json"
            self.root.set_attributes({"output.value": text, "output.mime_type": mime,
                                      "pflow.status": "ok"})
            self.root.set_status(Status(StatusCode.OK))
        else:
            self.root.set_attributes({"pflow.status": "failed"})
            self.root.set_status(Status(StatusCode.ERROR, trace.error or "failed"))
        t = trace.totals
        self.root.set_attributes({"pflow.model_calls": t.calls, "pflow.cache_hits": t.cache_hits,
                                  "llm.token_count.prompt": t.prompt_tokens,
                                  "llm.token_count.completion": t.completion_tokens,
                                  "llm.token_count.total": t.prompt_tokens + t.completion_tokens})
        self.root.end(end_time=_ns(trace.finished_at))
