"""A run context outside :func:`promptflow_dsl.runtime.arun`, for callers that use a
handler piece by piece (``pflow route explain``, ``pflow optimize``, benchmarks,
tests): :func:`open_context` sets up what ``arun`` would — the response cache in
its mode, a trace recorder, the model registry — and closes it on exit.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from ..check.program import CheckedProgram
from .cache import CacheMode, ResponseCache, default_cache_dir
from .context import RunConfig, RunContext
from .trace import TraceRecorder

__all__ = ["open_context"]


@contextlib.asynccontextmanager
async def open_context(program: CheckedProgram, config: RunConfig | None = None,
                       entry: str = "route", context_class: type | None = None
                       ) -> AsyncIterator[RunContext]:
    """A :class:`RunContext` (or ``context_class``) for ``program``, closed on exit."""
    config = config or RunConfig()
    cache = None
    if config.cache != CacheMode.OFF:
        cache = ResponseCache(config.cache_dir or default_cache_dir(program.root or Path.cwd()))
    cls = context_class or RunContext
    ctx = cls(program, config, TraceRecorder(program.entry.uri, entry, {}), cache)
    try:
        yield ctx
    finally:
        await ctx.aclose()
