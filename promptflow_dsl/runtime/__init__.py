"""Stage run: a checked program + an entry handler + inputs → a value and a trace.

``arun`` / ``run`` are the library entry points (``promptflow_dsl.Program.run`` and
``.arun`` call them).  Inputs are validated against the handler's parameters
first (:class:`InputError`); a failed run raises :class:`RunFailed` carrying the
error and the trace.  The trace is written (atomically) whether the run
succeeds, fails or is interrupted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..check.program import CheckedProgram, HandlerInfo
from ..lang.jsondata import to_data
from ..lang.values import conform
from .context import RunConfig, RunContext
from .errors import InputError, RunError
from .observe import notify, recorder_for, run_observers
from .sync import run_sync
from .trace import Trace, default_trace_dir, write_trace

log = logging.getLogger("promptflow_dsl")

__all__ = ["RunConfig", "RunResult", "RunFailed", "InputError", "RunError", "arun", "run",
           "prepare_inputs"]


@dataclass
class RunResult:
    """The value the entry handler returned, the run's trace and where it was written."""

    value: Any
    trace: Trace
    trace_path: Path | None


class RunFailed(RunError):
    """The run failed; ``error`` is the first failure, ``trace`` the run's trace."""

    def __init__(self, error: RunError, trace: Trace, trace_path: Path | None) -> None:
        super().__init__(error.message, span=error.span, handler=error.handler, detail=error.detail)
        self.chain = list(error.chain)
        self.error = error
        self.trace = trace
        self.trace_path = trace_path


def prepare_inputs(h: HandlerInfo, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Check entry inputs: unknown names, missing required ones, and types.

    Returns them as plain values.  Raises :class:`InputError` with a clear message.
    """
    params = {p.name: p for p in h.signature.params}
    unknown = sorted(set(inputs) - set(params))
    if unknown:
        raise InputError(f"{name} has no parameter {', '.join(repr(u) for u in unknown)} "
                         f"(parameters: {', '.join(params) or 'none'})")
    missing = [p.name for p in h.signature.params if p.required and p.name not in inputs]
    if missing:
        sig = h.signature.show(name)
        raise InputError(f"missing input {', '.join(repr(m) for m in missing)} for {sig}")
    out = {}
    for k, v in inputs.items():
        try:  # bounded JSON data first: every later walk of the value is then safe
            out[k] = conform(to_data(v), params[k].type)
        except ValueError as exc:
            raise InputError(f"input '{k}' must be {params[k].type.show()}: {exc}") from None
    return out


def _project_root(program: CheckedProgram) -> Path:
    return program.root or Path.cwd()


async def arun(program: CheckedProgram, handler: str, inputs: dict[str, Any] | None = None,
               config: RunConfig | None = None) -> RunResult:
    """Run ``handler`` of ``program`` with ``inputs``.

    Raises ``KeyError`` for an unknown handler, :class:`InputError` for bad inputs
    and :class:`RunFailed` when the run fails.
    """
    from .cache import CacheMode, ResponseCache, default_cache_dir

    config = config or RunConfig()
    h = program.handler(handler)
    values = prepare_inputs(h, handler, dict(inputs or {}))
    root = _project_root(program)
    observers = run_observers(config)
    recorder = recorder_for(observers, program.entry.uri, handler, values)
    cache = None
    if config.cache != CacheMode.OFF:
        cache = ResponseCache(config.cache_dir or default_cache_dir(root))
    ctx = RunContext(program, config, recorder, cache)
    trace_dir = config.trace_dir or default_trace_dir(root)
    value: Any = None
    failure: RunError | None = None
    finished = False
    try:
        value = await ctx.call(h.key, values, call_span=None, caller=None)
        finished = True
    except RunError as exc:
        failure = exc
    finally:
        models = {name: mid for name, mid in ctx.registry.used.items()}
        ok = finished and failure is None
        error = str(failure) if failure else (None if ok else "interrupted before it finished")
        trace = recorder.to_trace(output=value if ok else None, status="ok" if ok else "failed",
                                  error=error, models=models)
        if observers:
            notify(getattr(recorder, "observers", ()), "run_finished", trace)
        path = None
        if config.write_trace:
            try:
                path = write_trace(trace, trace_dir)
            except OSError as exc:  # a full disk must not hide the run's own outcome
                log.warning("could not write the trace to %s: %s", trace_dir, exc)
        await ctx.aclose()
    if failure is not None:
        raise RunFailed(failure, trace, path)
    return RunResult(value, trace, path)


def run(program: CheckedProgram, handler: str, inputs: dict[str, Any] | None = None,
        config: RunConfig | None = None) -> RunResult:
    """Synchronous :func:`arun` (on a loop of its own; see :func:`run_sync`)."""
    return run_sync(arun(program, handler, inputs, config))
