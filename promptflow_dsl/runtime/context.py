"""The run context: configuration and the shared services of one run.

A :class:`RunContext` owns what every handler call of a run shares: the model
registry, the response cache, the trace recorder, the global and per-model
concurrency limits and the call counters.  ``call`` dispatches a handler call by
kind and records it in the trace; a failure becomes a :class:`RunError` that
names the handler and the ``.pflow`` line.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from ..check.program import CheckedModule, CheckedProgram, HandlerInfo, ModelInfo, Resolved
from ..diagnostics import Span
from ..kinds import registry
from ..lang.jsondata import NotJSONData, fix_text, to_data
from ..lang.values import conform
from ..models.base import (
    Backend,
    CapabilityError,
    GenParams,
    Message,
    ModelError,
    Reply,
    Scored,
    ScriptError,
)
from ..syntax import ast
from .cache import CacheMode, ResponseCache, cache_key
from .errors import RunError, ScriptRefused
from .trace import Step, TraceRecorder, env_secrets, mask, merge_secrets

if TYPE_CHECKING:  # pragma: no cover
    from ..plan import Plan

#: the trace step of the handler call (or sub-step) running in this task: a model call
#: answered by a fallback model says so on it
_current_step: contextvars.ContextVar[Step | None] = contextvars.ContextVar("pflow_step", default=None)


def falls_back(exc: ModelError) -> bool:
    """Whether a model's failure lets its ``fallbacks`` try: a transport error that
    survived the retries (429, 5xx, a time-out, a refused or broken connection, a stream
    cut off), never a refusal of the request (4xx), a missing capability or a test's
    stand-in refusing."""
    return exc.retryable and not isinstance(exc, (CapabilityError, ScriptError))


@dataclass
class RunConfig:
    """How to run: model overrides, limits, cache and trace settings.

    ``models`` maps a model name to the id to use instead (``{"default": ID}`` is what
    ``--model ID`` does); ``backends`` maps a model id (or name) to a ready backend
    instance, which is how tests plug in scripted models.
    """

    models: dict[str, str] = field(default_factory=dict)
    concurrency: int = 64
    cache: CacheMode = CacheMode.DEFAULT
    cache_dir: Path | None = None
    trace_dir: Path | None = None
    write_trace: bool = True
    timeout: float = 120.0
    max_attempts: int = 4
    backends: dict[str, Backend] = field(default_factory=dict)
    sequential: bool = False
    progress: Callable[[int, int], None] | None = None  # (calls finished, calls running)
    mocked: dict[str, Any] = field(default_factory=dict)  # handler key -> constant result
    # (model name, model id) -> a backend to use instead of the real one, or None; tests use
    # it to refuse models they did not mock.
    intercept: Callable[[str, str], Backend | None] | None = None
    # (model name, backend) -> the backend to use; `pflow test --record` wraps real models.
    wrap: Callable[[str, Backend], Backend] | None = None
    # watch the run as it goes (observe.RunObserver: steps, model calls, streamed text)
    observers: tuple[Any, ...] = ()
    # export OpenTelemetry spans: True / False, or None to follow OTEL_EXPORTER_OTLP_ENDPOINT
    otel: bool | None = None


def declared_models(program: CheckedProgram) -> dict[str, dict[str, ModelInfo]]:
    """What the checker recorded about models, as the model registry takes it: per module
    key, every model name the module can use (its own, and ``alias.name`` for the models
    of each module it imports) with its declaration."""
    out: dict[str, dict[str, ModelInfo]] = {}
    for key, module in program.modules.items():
        names = dict(module.models)
        for alias, imported in module.imports.items():
            other = program.modules.get(imported)
            if other is not None:
                names.update({f"{alias}.{n}": info for n, info in other.models.items()})
        out[key] = names
    return out


def sent_secrets(program: CheckedProgram, environ: Mapping[str, str] | None = None
                 ) -> tuple[str, ...]:
    """Every key value a run of ``program`` may send to a model: each model's
    ``api_key``, the value of its ``api_key_env``, an ``api_key`` in a handler's
    settings, and the secret-looking environment variables (``OPENAI_API_KEY``...,
    :func:`~.trace.env_secrets`).  Error messages and traces mask them wherever they
    occur, whatever a server echoes back.  Never raises."""
    env = os.environ if environ is None else environ
    found: list[str] = list(env_secrets(env))
    for models in declared_models(program).values():
        for info in models.values():
            key = info.params.get("api_key")
            if isinstance(key, str):
                found.append(key)
            var = info.params.get("api_key_env")
            if isinstance(var, str) and env.get(var):
                found.append(env[var])
    for h in program.all_handlers().values():
        params = getattr(h.details, "params", None)
        key = params.get("api_key") if isinstance(params, Mapping) else None
        if isinstance(key, str):
            found.append(key)
    return merge_secrets(found)


class KindRun(Protocol):
    """``kinds/<kind>/run.py``: how a handler of the kind runs."""

    async def run(self, ctx: RunContext, h: HandlerInfo, inputs: dict[str, Any], step: Step) -> Any:
        """Run ``h`` on validated ``inputs`` as trace step ``step``; returns its value
        (validated against the return type by the caller).  Raises :class:`RunError`."""
        ...


@dataclass
class SubStep:
    """A step opened with :meth:`RunContext.substep`; set ``output`` before it closes."""

    step: Step
    output: Any = None


class RunContext:
    """Shared state of one run.  Create with :meth:`open`, finish with :meth:`close`."""

    def __init__(self, program: CheckedProgram, config: RunConfig, trace: TraceRecorder,
                 cache: ResponseCache | None) -> None:
        from ..models.registry import ModelRegistry, RegistrySettings

        self.program = program
        self.config = config
        self.trace = trace
        self.cache = cache
        self.sequential = config.sequential
        self.registry = ModelRegistry(declared_models(program), RegistrySettings(
            overrides=config.models, backends=config.backends, intercept=config.intercept,
            wrap=config.wrap, timeout=config.timeout, max_attempts=config.max_attempts))
        self.limit = asyncio.Semaphore(max(1, config.concurrency))
        self.calls: Counter[str] = Counter()  # handler key -> number of calls
        self.routed: dict[str, str] = {}
        self.hook_fires: Counter[str] = Counter()
        self._samples: Counter[str] = Counter()
        self._handlers = program.all_handlers()
        self._plans: dict[str, Plan] = {}
        self._running = 0
        self._finished = 0
        self.secrets = sent_secrets(program)  # masked in every error and trace of the run
        trace.add_secrets(self.secrets)

    # ------------------------------------------------------------ handler calls

    def handler(self, key: str) -> HandlerInfo:
        return self._handlers[key]

    @property
    def observers(self) -> tuple[Any, ...]:
        """The run's observers (those of an ``ObservedRecorder``; none otherwise)."""
        return getattr(self.trace, "observers", ())

    async def call_by_position(self, key: str, values: list[Any], names: list[str | None], *,
                               call: ast.Call | None, caller: str | None,
                               module: CheckedModule | None = None) -> Any:
        """Bind positional and keyword argument values to ``key``'s parameters and call it."""
        h = self.handler(key)
        args: dict[str, Any] = {}
        params = h.signature.params
        for i, (v, n) in enumerate(zip(values, names, strict=True)):
            args[n if n is not None else params[i].name] = v
        return await self.call(key, args, call_span=call.span if call else None, caller=caller)

    async def call(self, key: str, args: dict[str, Any], *, call_span: Span | None,
                   caller: str | None) -> Any:
        """Call handler ``key`` with argument values by name (defaults filled in here).

        Raises :class:`RunError` naming the handler when the call fails.
        """
        h = self.handler(key)
        name = self.program.display_name(key)
        inputs = await self._bind(h, args, name, call_span)
        self.calls[key] += 1
        decl = h.decl
        step = self.trace.start(name, h.kind, caller, inputs, decl.span.file, decl.span.line)
        if key in self.config.mocked:
            result = self._check_result(h, self.config.mocked[key], name)
            self.trace.event(step, "mock", f"mocked: returns {result!r}")
            self.trace.finish(step, "ok", output=result, latency_ms=0.0)
            return result
        started = time.perf_counter()
        self._report(+1, 0)
        token = _current_step.set(step)
        try:
            result = await self._dispatch(h, inputs, step)
            result = self._check_result(h, result, name)
        except RunError as exc:
            self.trace.finish(step, "failed", error=str(exc.message),
                              latency_ms=(time.perf_counter() - started) * 1000)
            if call_span is not None:
                exc.called_from(name, call_span)
            raise
        except asyncio.CancelledError:  # a sibling failed, or the run was stopped
            self.trace.finish(step, "failed", error="cancelled before it finished",
                              latency_ms=(time.perf_counter() - started) * 1000)
            raise
        finally:
            _current_step.reset(token)
            self._report(-1, 1)
        self.trace.finish(step, "ok", output=result,
                          latency_ms=(time.perf_counter() - started) * 1000)
        return result

    @contextmanager
    def substep(self, handler: str, kind: str, parent: str | None, inputs: dict[str, Any],
                file: str | None = None, line: int | None = None) -> Iterator[SubStep]:
        """A trace step of a part of a handler call that is no handler call itself (a
        route's router or expert, an explanation): started on entry, finished ``ok`` with
        the ``output`` set on the yielded :class:`SubStep`, or ``failed`` with the message
        of a :class:`RunError` raised inside (which propagates)."""
        step = self.trace.start(handler, kind, parent, inputs, file, line)
        sub = SubStep(step)
        token = _current_step.set(step)
        try:
            yield sub
        except RunError as exc:
            self.trace.finish(step, "failed", error=exc.message)
            raise
        finally:
            _current_step.reset(token)
        self.trace.finish(step, "ok", output=sub.output)

    def _report(self, running: int, finished: int) -> None:
        self._running += running
        self._finished += finished
        if self.config.progress is not None:
            self.config.progress(self._finished, self._running)

    async def _bind(self, h: HandlerInfo, args: dict[str, Any], name: str,
                    call_span: Span | None) -> dict[str, Any]:
        from .evaluate import Evaluator

        out: dict[str, Any] = {}
        for p in h.signature.params:
            if p.name in args:
                value = args[p.name]
            elif p.default is not None:
                value = await Evaluator(self, self.program.module_of(h.key)).eval(p.default, {})
            else:
                raise RunError(f"missing argument '{p.name}' for {name}", span=call_span,
                               handler=name)
            try:
                out[p.name] = conform(to_data(value), p.type)
            except ValueError as exc:
                raise RunError(f"argument '{p.name}' of {name}: {exc}", span=call_span,
                               handler=name) from None
        return out

    def _check_result(self, h: HandlerInfo, result: Any, name: str) -> Any:
        try:
            result = to_data(result)
        except NotJSONData as exc:
            raise RunError(f"{h.kind} '{name}' returned a value that is not JSON data: {exc}",
                           span=h.decl.name_span, handler=name) from None
        try:
            return conform(result, h.signature.returns)
        except ValueError as exc:
            raise RunError(f"{h.kind} '{name}' returned a value that is not "
                           f"{h.signature.returns.show()}: {exc}", span=h.decl.name_span,
                           handler=name) from None

    async def _dispatch(self, h: HandlerInfo, inputs: dict[str, Any], step: Step) -> Any:
        found = registry.stage_module(h.kind, "run")
        if found is None:
            raise RunError(f"{h.kind} handlers cannot run yet in this version of pflow "
                           f"('{self.program.display_name(h.key)}')", span=h.decl.name_span)
        return await cast(KindRun, found).run(self, h, inputs, step)

    # ------------------------------------------------------------ models

    def annotate(self, step: Step, **fields: Any) -> None:
        """Set fields of a running step (messages, reply, model...), scrubbed of secrets."""
        from .trace import TokenUsage

        for name, value in fields.items():
            if name == "usage" and isinstance(value, dict):
                value = TokenUsage(**value)
            else:
                value = self.trace.scrub(value)
            setattr(step, name, value)

    def plan_of(self, h: HandlerInfo) -> Plan:
        """The plan of handler ``h`` (built once per program, kept for this run)."""
        plan = self._plans.get(h.key)
        if plan is None:
            from ..plan import plan_for

            plan = self._plans[h.key] = plan_for(self.program, h)
        return plan

    def backend_for(self, h: HandlerInfo, model_name: str | None) -> tuple[str, Backend, dict[str, Any]]:
        """(model id, backend, declared model parameters) for a model used by handler ``h``."""
        return self.registry.resolve(self.program.module_of(h.key).key, model_name)

    def _fallback_chain(self, h: HandlerInfo, model_name: str | None) -> list[str]:
        return self.registry.chain(self.program.module_of(h.key).key, model_name)

    def _fell_back(self, failed: list[tuple[str, str, ModelError]], name: str, model_id: str) -> None:
        """Note on the running step that model ``name`` answered after ``failed`` did not."""
        step = _current_step.get()
        if step is None:
            return
        step.answered_by = name
        tried = ", ".join(f"'{n}'" for n, _, _ in failed)
        self.trace.event(step, "fallback", f"model {tried} failed; '{name}' ({model_id}) answered",
                         answered_by=name, model=model_id,
                         failed=[{"model": n, "id": i, "error": str(e).removeprefix(f"{e.model}: ")}
                                 for n, i, e in failed])

    def _model_failed(self, h: HandlerInfo, model_id: str, exc: ModelError,
                      failed: list[tuple[str, str, ModelError]]) -> RunError:
        name = self.program.display_name(h.key)
        detail = str(exc).removeprefix(f"{exc.model}: ")
        before = "".join(f"; before it, fallback from model '{i}' after: "
                         f"{str(e).removeprefix(f'{e.model}: ')}" for _, i, e in failed)
        # a server may echo the key it was sent ("Incorrect API key provided: sk-..."):
        # every key this run sends is masked by value
        return RunError(mask(f"model '{model_id}' failed for {h.kind} '{name}': {detail}{before}",
                             self.secrets), span=h.decl.name_span, handler=name)

    async def _model_call(self, h: HandlerInfo, model_name: str | None, kind: str,
                          payload: dict[str, Any], params: GenParams | None,
                          call: Callable[[Backend, GenParams | None], Any]
                          ) -> tuple[dict[str, Any], bool, str]:
        """One model call for handler ``h`` through the cache, the limits and the backend;
        when the model fails with a transport error after its retries, its ``fallbacks``
        are tried in order (:meth:`ModelRegistry.chain`), each with its own cache entries,
        and the step notes which one answered.

        ``call(backend, merged_params)`` returns the JSON-able result to cache.  Returns
        (result, cache hit, id of the model that answered).  Raises :class:`RunError`
        when the model (and every fallback) fails.
        """
        chain = self._fallback_chain(h, model_name)
        failed: list[tuple[str, str, ModelError]] = []
        for i, candidate in enumerate(chain):
            model_id = self.backend_for(h, candidate)[0]
            try:
                if self.observers:
                    data, hit = await self._observed_call(h, candidate, model_id, kind, payload,
                                                          params, call)
                else:
                    data, hit = await self._one_model_call(h, candidate, kind, payload, params,
                                                           call)
            except ScriptError as exc:
                raise ScriptRefused(str(exc.args[0]), span=h.decl.name_span,
                                    handler=self.program.display_name(h.key)) from None
            except ModelError as exc:
                if falls_back(exc) and i + 1 < len(chain):
                    failed.append((candidate, model_id, exc))
                    continue
                raise self._model_failed(h, model_id, exc, failed) from None
            if failed:
                self._fell_back(failed, candidate, model_id)
            return data, hit, model_id
        raise AssertionError("unreachable: the chain holds the model itself")  # pragma: no cover

    async def _observed_call(self, h: HandlerInfo, model_name: str, model_id: str, kind: str,
                             payload: dict[str, Any], params: GenParams | None,
                             call: Callable[[Backend, GenParams | None], Any]
                             ) -> tuple[dict[str, Any], bool]:
        """:meth:`_one_model_call`, then the observers hear of it (answered or failed)."""
        from .observe import ModelCall, notify

        merged = None
        if params is not None:
            merged = self.registry.gen_params(self.backend_for(h, model_name)[2], params)
        request: dict[str, Any] = {k: payload[k] for k in ("messages", "prefix", "continuations",
                                                           "texts") if k in payload}
        started = time.time_ns()
        try:
            data, hit = await self._one_model_call(h, model_name, kind, payload, params, call)
        except ModelError as exc:
            notify(self.observers, "model_called", ModelCall(
                _current_step.get(), model_id, kind, request, merged, None, False, started,
                time.time_ns(), mask(str(exc), self.secrets)))
            raise
        notify(self.observers, "model_called", ModelCall(
            _current_step.get(), model_id, kind, request, merged, data, hit, started,
            time.time_ns()))
        return data, hit

    async def _one_model_call(self, h: HandlerInfo, model_name: str, kind: str,
                              payload: dict[str, Any], params: GenParams | None,
                              call: Callable[[Backend, GenParams | None], Any]
                              ) -> tuple[dict[str, Any], bool]:
        """One model's call through the cache, the limits and its backend.  Raises
        :class:`ModelError` (and :class:`ScriptError`) as the backend does."""
        model_id, backend, model_params = self.backend_for(h, model_name)
        merged = self.registry.gen_params(model_params, params) if params is not None else None
        if merged is not None:
            payload = {**payload, "params": merged.cache_view()}
        if model_params.get("api_base"):  # two servers behind one model id are two models
            payload = {**payload, "api_base": str(model_params["api_base"])}
        sample = self._sample(model_id, payload, merged) if merged is not None else 0

        async def compute() -> dict[str, Any]:
            # Backends own their transport (timeouts, retries with backoff).
            async with self.limit, self.registry.model_limit(model_id):
                return await call(backend, merged)

        use_cache = self.cache is not None and h.details.cache
        if use_cache:
            assert self.cache is not None
            key = cache_key(model_id, kind, payload, sample)
            return await self.cache.get_or_compute(key, compute, self.config.cache)
        return await compute(), False

    @staticmethod
    def _reply_data(reply: Reply) -> dict[str, Any]:
        # a lone surrogate (a JSON reply may escape one) becomes U+FFFD before anything
        # reads, caches or traces the text
        return {"text": fix_text(reply.text), "model": reply.model,
                "finish_reason": reply.finish_reason,
                "usage": {"prompt_tokens": reply.usage.prompt_tokens,
                          "completion_tokens": reply.usage.completion_tokens,
                          "cost": reply.usage.cost}}

    @staticmethod
    def _reply_of(data: dict[str, Any], model_id: str) -> Reply:
        from ..models.base import Usage

        return Reply(data["text"], data.get("model") or model_id, Usage(**data.get("usage") or {}),
                     data.get("finish_reason"))

    async def generate(self, h: HandlerInfo, model_name: str | None, messages: list[Message],
                       params: GenParams) -> tuple[Reply, bool, str]:
        """One chat call for handler ``h``.  Returns (reply, cache hit, model id).

        Raises :class:`RunError` when the model fails for good.
        """
        step = _current_step.get()
        watchers = self._text_watchers(h, step)
        streamed = False

        async def call(backend: Backend, merged: GenParams | None) -> dict[str, Any]:
            nonlocal streamed
            assert merged is not None
            if watchers and backend.capabilities.streaming and merged.json_schema is None \
                    and merged.grammar is None:
                streamed = True
                return self._reply_data(await self._stream_chat(backend, messages, merged,
                                                                watchers, step))
            return self._reply_data(await backend.chat(messages, merged))

        data, hit, model_id = await self._model_call(
            h, model_name, "chat", {"messages": [m.as_dict() for m in messages]}, params, call)
        if watchers and not streamed and data["text"]:  # a cached (or unstreamable) reply
            self._tell_text(watchers, step, data["text"])
        return self._reply_of(data, model_id), hit, model_id

    def _text_watchers(self, h: HandlerInfo, step: Step | None) -> tuple[Any, ...]:
        """The observers that want ``step``'s reply text as it comes (a ``str`` result)."""
        if not self.observers or step is None:
            return ()
        from ..lang.types import STR

        if h.signature.returns != STR:
            return ()
        return tuple(o for o in self.observers if o.streams(step))

    @staticmethod
    def _tell_text(watchers: tuple[Any, ...], step: Step | None, text: str) -> None:
        from .observe import notify

        notify(watchers, "text", step, text)

    async def _stream_chat(self, backend: Backend, messages: list[Message], params: GenParams,
                           watchers: tuple[Any, ...], step: Step | None) -> Reply:
        """A chat reply read as a stream, each piece passed to ``watchers`` as it arrives.
        Raises ``ModelError`` as the backend's stream does."""
        from ..models.base import Usage

        parts: list[str] = []
        usage: Usage | None = None
        finish: str | None = None
        events = backend.stream(messages, None, params)
        try:
            async for event in events:
                if event.text:
                    parts.append(event.text)
                    self._tell_text(watchers, step, event.text)
                usage = event.usage or usage
                finish = event.finish_reason or finish
        finally:
            closer = getattr(events, "aclose", None)
            if closer is not None:
                await closer()
        return Reply("".join(parts), backend.model_id, usage or Usage(), finish)

    async def complete(self, h: HandlerInfo, model_name: str | None, prefix: str,
                       params: GenParams) -> tuple[Reply, bool, str]:
        """Continue ``prefix`` (raw completion, or the backend's documented emulation).

        Returns (reply, cache hit, model id).  Raises :class:`RunError`.
        """
        async def call(backend: Backend, merged: GenParams | None) -> dict[str, Any]:
            assert merged is not None
            return self._reply_data(await backend.complete(prefix, merged))

        data, hit, model_id = await self._model_call(h, model_name, "complete",
                                                     {"prefix": prefix}, params, call)
        return self._reply_of(data, model_id), hit, model_id

    async def score(self, h: HandlerInfo, model_name: str | None, prefix: str,
                    continuations: list[str]) -> tuple[list[Scored], bool, str]:
        """Log-probabilities of each continuation of ``prefix``.  Raises :class:`RunError`
        (also when the model has no log-probabilities: check ``capabilities`` first)."""
        async def call(backend: Backend, merged: GenParams | None) -> dict[str, Any]:
            rows = await backend.score(prefix, continuations)
            return {"scores": [{"text": r.text, "logprob": r.logprob, "tokens": r.tokens}
                               for r in rows]}

        data, hit, model_id = await self._model_call(
            h, model_name, "score", {"prefix": prefix, "continuations": continuations}, None, call)
        return [Scored(r["text"], r["logprob"], r["tokens"]) for r in data["scores"]], hit, model_id

    async def embed(self, h: HandlerInfo, model_name: str | None, texts: list[str]
                    ) -> tuple[list[list[float]], bool, str]:
        """Embeddings of ``texts`` with model ``model_name``.  Raises :class:`RunError`."""
        async def call(backend: Backend, merged: GenParams | None) -> dict[str, Any]:
            return {"vectors": await backend.embed(texts)}

        data, hit, model_id = await self._model_call(h, model_name, "embed", {"texts": texts},
                                                     None, call)
        return data["vectors"], hit, model_id

    def _sample(self, model_id: str, payload: dict[str, Any], params: GenParams | None) -> int:
        """The n-th identical request of this run at temperature > 0 gets sample index n."""
        if params is None or not params.temperature:
            return 0
        k = cache_key(model_id, "chat", payload, 0)
        n = self._samples[k]
        self._samples[k] += 1
        return n

    async def stream_uncached(self, h: HandlerInfo, model_name: str | None, params: GenParams,
                              open_stream: Callable[[Backend, GenParams], Any]) -> Any:
        """Stream one generation for handler ``h`` (an async iterator of ``StreamEvent``).

        ``open_stream(backend, merged_params)`` opens the backend's stream. Never read
        from or written to the response cache: a consumer (the hook loop) may cut the
        stream short, and a cut stream must never pass for a whole reply. The global
        and per-model limits are held while the stream is awaited (opening it, waiting
        for each event), not while the consumer works on an event, so a consumer may
        call other handlers meanwhile without deadlocking on a slot. Closing the
        iterator (``aclose``) closes the backend's stream (the local model stops and is
        freed). Raises :class:`RunError` when the model fails.
        """
        name = self.program.display_name(h.key)
        chain = self._fallback_chain(h, model_name)
        failed: list[tuple[str, str, ModelError]] = []
        for i, candidate in enumerate(chain):
            model_id, backend, model_params = self.backend_for(h, candidate)
            merged = self.registry.gen_params(model_params, params)
            events = open_stream(backend, merged)
            delivered = False
            try:
                while True:
                    try:
                        async with self.limit, self.registry.model_limit(model_id):
                            event = await events.__anext__()
                    except StopAsyncIteration:
                        return
                    except ScriptError as exc:
                        raise ScriptRefused(str(exc.args[0]), span=h.decl.name_span,
                                            handler=name) from None
                    except ModelError as exc:
                        # a fallback can stand in only while nothing was delivered
                        if not delivered and falls_back(exc) and i + 1 < len(chain):
                            failed.append((candidate, model_id, exc))
                            break
                        raise self._model_failed(h, model_id, exc, failed) from None
                    if not delivered and failed:
                        self._fell_back(failed, candidate, model_id)
                    delivered = True
                    yield event
            finally:
                closer = getattr(events, "aclose", None)
                if closer is not None:
                    await closer()

    # ------------------------------------------------------------ test counters

    def counter(self, call: ast.Call, res: Resolved) -> Any:
        assert isinstance(call.func, ast.Name)
        if call.func.name == "calls":
            return self.calls[res.target]
        if call.func.name == "hook_fires":
            return self.hook_fires[res.target]
        return self.routed.get(res.target)

    def fork(self, trace: TraceRecorder) -> RunContext:
        """A context for another top-level call (a dataset row) that shares this one's
        services — the model registry, the response cache, the global and per-model
        limits, the folded plans — but records into ``trace`` and keeps its own counters
        and sample indices, as if the call were a run of its own. Close only the
        original (:meth:`aclose`), never a fork. Never raises."""
        import copy

        ctx = copy.copy(self)
        ctx.trace = trace
        trace.add_secrets(self.secrets)
        ctx.calls = Counter()
        ctx.routed = {}
        ctx.hook_fires = Counter()
        ctx._samples = Counter()
        ctx._running = ctx._finished = 0
        return ctx

    async def aclose(self) -> None:
        await self.registry.aclose()
        if self.cache is not None:
            self.cache.close()
