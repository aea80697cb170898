"""The bookkeeping of model calls: one :class:`Ledger` per trace step.

Every handler kind that calls models (prompts, hooked prompts, decomposers, route
experts and routers, sketches) records each call here, and the ledger writes the
step's accounting fields after every call, so a step that fails half-way still shows
what it spent:

- ``usage`` and ``cost``: summed over the step's calls with :meth:`Usage.add`
  (cost stays ``None`` while no call reported one);
- ``usage_unknown``: how many of the calls the cache did not answer got no token
  counts from the server (a stream whose server ignored
  ``stream_options.include_usage``, a stream closed early): their tokens and cost are
  not in ``usage``/``cost``, which then under-count, and say so (``None`` when every
  call reported its usage);
- ``calls``: the model calls the step made, cache hits included; ``cache_hits``:
  how many of them the response cache answered; ``cache_hit``: true when every call
  was a cache hit (``None`` before the first call);
- ``attempts``: the most attempts one question of the step needed (re-asks after an
  invalid reply);
- ``model``: the model id of the last call (or the one given up front).

:class:`HandlerRun` is the common state of one call of a handler that runs a loop of
its own (a sketch, a decomposition, a hooked generation): the run context, the
handler, its trace step, its display name, its ledger and :meth:`HandlerRun.event`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..models.base import Usage

if TYPE_CHECKING:  # pragma: no cover
    from ..check.program import HandlerInfo
    from .context import RunContext
    from .trace import Step, TraceRecorder


class Ledger:
    """What the model calls of one trace step spent (see the module docstring)."""

    def __init__(self, trace: TraceRecorder, step: Step, model: str | None = None) -> None:
        self.trace = trace
        self.step = step
        self.model = model
        self.usage = Usage()
        self.calls = 0
        self.cache_hits = 0
        self.usage_unknown = 0
        self.attempts = 1

    @property
    def cache_hit(self) -> bool | None:
        """Whether the cache answered every call (``None`` before any call)."""
        return self.cache_hits == self.calls if self.calls else None

    def record(self, usage: Usage | None, hit: bool, model: str | None = None, *,
               usage_unknown: bool = False) -> None:
        """One model call: its usage (``None``: not counted, e.g. a score request),
        whether the cache answered it, the model id it went to; ``usage_unknown``: the
        server did not report the call's tokens (counted in ``usage_unknown``, never
        taken as 0)."""
        self.calls += 1
        self.cache_hits += bool(hit)
        if usage_unknown and not hit:
            self.usage_unknown += 1
        if usage is not None:
            self.usage.add(usage)
        if model is not None:
            self.model = model
        self.write()

    def attempted(self, n: int) -> None:
        """One question of the step took ``n`` attempts."""
        if n > self.attempts:
            self.attempts = n
            self.write()

    def write(self) -> None:
        """Write the accounting fields to the step (done after every call)."""
        from .trace import TokenUsage

        step = self.step
        if self.usage_unknown and self.usage_unknown >= self.calls - self.cache_hits:
            step.usage = None  # no call the cache did not answer reported its tokens
        else:
            step.usage = TokenUsage(prompt_tokens=self.usage.prompt_tokens,
                                    completion_tokens=self.usage.completion_tokens)
        step.cost = self.usage.cost
        step.usage_unknown = self.usage_unknown or None
        step.calls = self.calls
        step.cache_hits = self.cache_hits
        step.cache_hit = self.cache_hit
        step.attempts = self.attempts
        if self.model is not None:
            step.model = self.trace.scrub(self.model)


class HandlerRun:
    """One call of a handler that runs a loop of its own: the run context, the handler,
    its trace step (with a :class:`Ledger`) and its name as the entry module spells it."""

    def __init__(self, ctx: RunContext, h: HandlerInfo, step: Step, model: str | None = None) -> None:
        self.ctx = ctx
        self.h = h
        self.step = step
        self.name = ctx.program.display_name(h.key)
        self.ledger = Ledger(ctx.trace, step, model)

    def event(self, type_: str, summary: str, **data: Any) -> None:
        """Append an event (``type``, a one-line ``summary``, data) to the step."""
        self.ctx.trace.event(self.step, type_, summary, **data)
