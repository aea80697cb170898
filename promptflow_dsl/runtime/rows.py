"""Many top-level calls on one shared run context: the run side of datasets.

A :class:`RowRunner` opens what :func:`promptflow_dsl.runtime.arun` opens once — the
model registry, the response cache, the global ``concurrency`` limit and the
per-model limits — and shares it between any number of *rows*. Each row is a call of
its own: its own trace recorder, counters and sample indices (a forked
:class:`~promptflow_dsl.runtime.context.RunContext`), its trace written to disk the
moment the row ends (or not at all) and then dropped, so memory does not grow with
the number of rows. A row's failure (:class:`RunError`) is part of its
:class:`RowCall`, never raised: the other rows go on.

* :meth:`RowRunner.call` — one handler call with inputs bound from a row's columns
  (:func:`bind_row`: by parameter name, values converted to the parameter types);
* :meth:`RowRunner.evaluate` — one row of an ``eval`` (its ``run`` expression, then
  each metric; see :func:`eval_row`);
* :meth:`RowRunner.row` — the scope both are built on, for other row bodies.

:func:`eval_row` is also what ``evaluate(NAME)`` in a ``test`` block uses, on the
test's own context.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..lang.row_types import ABSENT, RowTypeError, cell_value
from ..lang.values import conform
from .context import RunConfig, RunContext
from .errors import InputError, RunError, ScriptRefused
from .observe import notify, recorder_for, run_observers
from .trace import (
    Totals,
    Trace,
    TraceRecorder,
    compute_totals,
    default_trace_dir,
    env_secrets,
    write_trace,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..check.program import CheckedProgram, EvalInfo, HandlerInfo

__all__ = ["EvalRow", "RowCall", "RowInputError", "RowRunner", "RowScope", "bind_row",
           "eval_row", "missing_parameters", "row_value"]

log = logging.getLogger("promptflow_dsl")


# ------------------------------------------------------------------ binding rows

class RowInputError(RunError):
    """A row that does not bind to the handler's parameters (a missing column, a value
    of the wrong type): the row fails before any call, without a ``.pflow`` location."""


def missing_parameters(h: HandlerInfo, columns: Mapping[str, Any] | list[str]) -> list[str]:
    """The required parameters of ``h`` (no default) that ``columns`` does not name.
    Never raises."""
    return [p.name for p in h.signature.params if p.required and p.name not in columns]


def bind_row(h: HandlerInfo, name: str, row: Mapping[str, Any], *,
             text_cells: bool = False) -> dict[str, Any]:
    """The inputs of handler ``h`` (called ``name``) from a dataset row: each parameter
    takes the column of its name (other columns are ignored) and a parameter with a
    default may have none. A JSONL value must fit the parameter's type as it is (the
    rules of handler boundaries); with ``text_cells`` (a CSV row) a cell is converted by
    the parameter's type as an eval's CSV cells are
    (:func:`~promptflow_dsl.lang.row_types.cell_value`): a text parameter takes the text,
    any other reads it as JSON (``3``, ``["a"]``), and an empty cell is ``none`` for an
    optional parameter, the default for one with a default, ``""`` for a text one.

    Raises :class:`InputError` for a missing column or a value that does not fit.
    """
    out: dict[str, Any] = {}
    for p in h.signature.params:
        if p.name not in row:
            if p.required:
                have = ", ".join(sorted(row)) or "none"
                raise InputError(f"no column '{p.name}' for parameter '{p.name}' of "
                                 f"{h.signature.show(name)} (columns: {have})")
            continue
        value = row[p.name]
        if text_cells and isinstance(value, str):
            try:
                value = cell_value(value, p.type, required=p.required)
            except RowTypeError as exc:
                raise InputError(f"input '{p.name}': {exc}") from None
            if value is ABSENT:
                continue
        try:
            out[p.name] = conform(value, p.type)
        except ValueError as exc:
            raise InputError(f"input '{p.name}' must be {p.type.show()}: {exc}") from None
    return out


# ------------------------------------------------------------------ results

def _located(error: RunError) -> str:
    """``file:line:col: message``, then one ``file:line:col: note: in this call of 'H'``
    per call site on the way (innermost first), then the detail (a tool's traceback)."""
    lines = [str(error)]
    lines += [f"{span}: note: in this call of '{handler}'"
              for handler, span in reversed(error.chain) if span is not None]
    if error.detail:
        lines.append(error.detail)
    return "\n".join(lines)


@dataclass
class RowCall:
    """What one row's call did.

    ``value`` is what the row's body returned (``None`` when it failed); ``error`` the
    :class:`RunError` it failed with; ``trace_id`` the id of the row's trace and
    ``trace_path`` where it was written (``None``: not written); ``totals`` the trace's
    totals (model calls, cache hits, and the tokens and cost of the calls the cache did
    not answer); ``latency`` the row's wall time in seconds; ``inputs`` the handler's
    inputs as bound from the row (:meth:`RowRunner.call`).
    """

    value: Any = None
    error: RunError | None = None
    trace_id: str = ""
    trace_path: Path | None = None
    totals: Totals = field(default_factory=Totals)
    latency: float = 0.0
    inputs: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """No error. Never raises."""
        return self.error is None

    @property
    def error_text(self) -> str | None:
        """The error located as ``file:line:col: message`` (with a note per call site and
        a tool's traceback on the lines after it), or ``None``. Never raises."""
        return None if self.error is None else _located(self.error)

    @property
    def tokens(self) -> int:
        """Prompt and completion tokens the row spent (cache hits cost none). Never raises."""
        return self.totals.prompt_tokens + self.totals.completion_tokens

    @property
    def cost(self) -> float | None:
        """USD the row spent, ``None`` when no call reported a cost. Never raises."""
        return self.totals.cost

    def usage(self) -> dict[str, int]:
        """``prompt_tokens``, ``completion_tokens``, ``calls``, ``cache_hits``, and
        ``usage_unknown`` (the calls whose server reported no token counts: the tokens
        are then at least these) when there were any. Never raises."""
        t = self.totals
        usage = {"prompt_tokens": t.prompt_tokens, "completion_tokens": t.completion_tokens,
                 "calls": t.calls, "cache_hits": t.cache_hits}
        if t.usage_unknown:
            usage["usage_unknown"] = t.usage_unknown
        return usage


@dataclass
class RowScope:
    """The inside of :meth:`RowRunner.row`: ``ctx`` runs the row's calls into its own
    trace; set ``output`` (what the trace records as the row's output) and ``failed``
    (an error text, when the row failed without raising) before the scope closes."""

    ctx: RunContext
    recorder: TraceRecorder
    output: Any = None
    failed: str | None = None
    result: RowCall | None = None  # set when the scope closed


# ------------------------------------------------------------------ eval rows

@dataclass
class EvalRow:
    """One row of an ``eval``: ``out`` (the value of its ``run``), each metric's value
    (``None``: not scored, also when the metric failed) and the located error text of
    each metric that failed."""

    out: Any = None
    metrics: dict[str, bool | int | float | None] = field(default_factory=dict)
    metric_errors: dict[str, str] = field(default_factory=dict)


def row_value(info: EvalInfo, row: Mapping[str, Any]) -> dict[str, Any]:
    """The dataset row as the eval's ``row``, by the rule the checker validated it with
    (:func:`promptflow_dsl.lang.row_types.row_value`: the row type's fields, other
    columns left out; CSV cells converted by the field types). Raises
    :class:`RowInputError` for a row that does not fit."""
    from ..lang.row_types import row_value as typed_row

    try:
        return typed_row(row, info.row_type, text_cells=info.data_format == "csv")
    except RowTypeError as exc:
        raise RowInputError(f"the row does not fit {info.row_type.show()}: {exc}") from None


def _metric_problem(name: str, value: Any) -> str | None:
    if value is None or isinstance(value, bool | int):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"metric '{name}' is {value}, not a finite number"
    return f"metric '{name}' is a {type(value).__name__}, not a bool, number or none"


async def eval_row(ctx: RunContext, info: EvalInfo, row: Mapping[str, Any]) -> EvalRow:
    """Run one row of the eval ``info`` on ``ctx``: the row made the eval's ``row``
    (:func:`row_value`), its ``run`` expression evaluated with ``row`` in scope, then
    each metric in order with ``row`` and ``out`` in scope.

    A metric that fails, or whose value is not a bool, a number or ``none``, is not
    scored (``None``) and its located error is kept in ``metric_errors``; the row
    itself stays ok. Raises :class:`RowInputError` when the row does not fit the row
    type and :class:`RunError` when its ``run`` fails (also :class:`ScriptRefused` from
    a metric: a test's stand-in refused a call, which is the test's mistake).
    """
    from .evaluate import Evaluator

    module = ctx.program.modules[info.module_key]
    evaluator = Evaluator(ctx, module)
    env: dict[str, Any] = {"row": row_value(info, row)}
    out = await evaluator.eval(info.run, env)
    env["out"] = out
    result = EvalRow(out=out)
    for metric in info.metrics:
        try:
            score = await evaluator.eval(metric.expr, dict(env))
        except ScriptRefused:
            raise
        except RunError as exc:
            result.metrics[metric.name] = None
            result.metric_errors[metric.name] = _located(exc)
            continue
        problem = _metric_problem(metric.name, score)
        if problem is not None:
            result.metrics[metric.name] = None
            result.metric_errors[metric.name] = f"{metric.span}: {problem}"
            continue
        result.metrics[metric.name] = score
    return result


# ------------------------------------------------------------------ the runner

class RowRunner:
    """Runs many rows on one shared context (see the module docstring).

    ``config`` is a :class:`RunConfig` as for a single run: its models, concurrency
    (the global limit of model and tool calls in flight, shared by all rows), cache
    mode and folders, backends. Row traces go to ``config.trace_dir`` (else the
    project's trace folder) unless ``config.write_trace`` is false. Use as an async
    context manager, or call :meth:`aclose`.
    """

    def __init__(self, program: CheckedProgram, config: RunConfig | None = None) -> None:
        from .cache import CacheMode, ResponseCache, default_cache_dir

        self.program = program
        self.config = config = config or RunConfig()
        root = program.root or Path.cwd()
        cache = None
        if config.cache != CacheMode.OFF:
            cache = ResponseCache(config.cache_dir or default_cache_dir(root))
        self.trace_dir: Path | None = (
            (config.trace_dir or default_trace_dir(root)) if config.write_trace else None)
        self._shared = RunContext(program, config, TraceRecorder(program.entry.uri, "rows"),
                                  cache)
        self._secrets = env_secrets()
        self._observers = run_observers(config)  # each row is a run of its own to them
        self._closed = False
        self._trace_errors = 0

    @property
    def models(self) -> dict[str, str]:
        """Model name → id, of the models the rows used so far. Never raises."""
        return dict(self._shared.registry.used)

    async def __aenter__(self) -> RowRunner:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the model backends and the cache. Never raises for a second call."""
        if not self._closed:
            self._closed = True
            await self._shared.aclose()

    @contextlib.asynccontextmanager
    async def row(self, entry: str, inputs: Mapping[str, Any]) -> AsyncIterator[RowScope]:
        """A scope for one row: its calls go through ``scope.ctx`` into a trace of their
        own (``entry`` and ``inputs`` are what the trace records), written when the scope
        closes. The scope's ``RowCall`` is available as ``scope.result`` after it closed.
        A :class:`RunError` raised inside propagates after the trace was written."""
        recorder = recorder_for(self._observers, self.program.entry.uri, entry, dict(inputs),
                                secrets=self._secrets)
        scope = RowScope(self._shared.fork(recorder), recorder)
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            yield scope
        except BaseException as exc:
            error = exc
            raise
        finally:
            failed = error is not None or scope.failed is not None
            if isinstance(error, RunError):
                text: str | None = str(error)
            elif error is not None:
                text = "interrupted before it finished" if isinstance(
                    error, asyncio.CancelledError | KeyboardInterrupt) else (
                    f"{type(error).__name__}: {error}")
            else:
                text = scope.failed
            path = None
            if self.trace_dir is None and not self._observers:  # nothing to write: the totals
                totals = compute_totals(recorder.steps)
            else:
                trace = recorder.to_trace(output=None if error is not None else scope.output,
                                          status="failed" if failed else "ok", error=text,
                                          models=self._shared.registry.used)
                totals = trace.totals
                path = self._write(trace)
                if self._observers:
                    notify(getattr(recorder, "observers", ()), "run_finished", trace)
            scope.result = RowCall(
                value=scope.output, trace_id=recorder.run_id if path is not None else "",
                trace_path=path, totals=totals, latency=time.perf_counter() - started)

    def _write(self, trace: Trace) -> Path | None:
        if self.trace_dir is None:
            return None
        try:
            return write_trace(trace, self.trace_dir, durable=False)
        except OSError as exc:  # a full disk must not fail the row
            self._trace_errors += 1
            if self._trace_errors == 1:
                log.warning("could not write a row's trace to %s: %s", self.trace_dir, exc)
            return None

    async def _body(self, entry: str, inputs: Mapping[str, Any],
                    body: Callable[[RowScope], Awaitable[Any]]) -> RowCall:
        failure: RunError | None = None
        scope: RowScope | None = None
        try:
            async with self.row(entry, inputs) as scope:
                scope.output = await body(scope)
        except RunError as exc:
            failure = exc
        assert scope is not None
        result = scope.result
        assert result is not None
        if failure is not None:
            result.value = None
            result.error = failure
        return result

    async def call(self, handler: str, row: Mapping[str, Any], *,
                   text_cells: bool = False) -> RowCall:
        """Call ``handler`` (as the entry module names it) with inputs bound from ``row``
        by :func:`bind_row` (``text_cells``: a CSV row). A row that does not bind, and a
        call that fails, give a :class:`RowCall` with the error (a binding error has no
        location). Raises ``KeyError`` for an unknown handler."""
        h = self.program.handler(handler)
        try:
            inputs = bind_row(h, handler, row, text_cells=text_cells)
        except InputError as exc:
            return RowCall(error=RowInputError(str(exc), handler=handler), inputs=dict(row))

        async def body(scope: RowScope) -> Any:
            return await scope.ctx.call(h.key, inputs, call_span=None, caller=None)

        result = await self._body(handler, inputs, body)
        result.inputs = inputs
        return result

    async def evaluate(self, info: EvalInfo, row: Mapping[str, Any]
                       ) -> tuple[RowCall, EvalRow | None]:
        """One row of the eval ``info``: the :class:`RowCall` (its ``value`` is ``out``;
        failed when the row does not fit the row type or its ``run`` failed) and the
        :class:`EvalRow` (``None`` when the row failed)."""
        holder: list[EvalRow] = []

        async def body(scope: RowScope) -> Any:
            got = await eval_row(scope.ctx, info, row)
            holder.append(got)
            return {"out": got.out, "metrics": got.metrics}

        result = await self._body(info.name, row, body)
        if holder:
            result.value = holder[0].out
            return result, holder[0]
        return result, None
