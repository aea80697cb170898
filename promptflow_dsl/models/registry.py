"""From a model name in a ``.pflow`` module to a backend instance.

A handler names a model (``model fast``) or uses ``default``; the name resolves
in the handler's own module to a declared id (``default`` is ``local/smollm2``
when no module declares it).  The run configuration may replace the id of a
name (``--model ID`` replaces ``default``, ``--model NAME=ID`` a named one,
keeping the declared parameters) or supply a ready backend (tests).  Built-in
ids: ``echo`` and ``local/smollm2``; any other id goes to litellm.  A backend given
in the configuration is looked up by model name first, then by id.

Generation parameters are merged: the model declaration's, then the handler's
``params``.  ``api_base``, ``api_key`` and ``api_key_env`` configure the backend
(one backend per id, ``api_base`` and key); a handler's ``params`` may carry its own
``api_key``, which rides along with each of its calls (``GenParams.extra``) and wins.
A model parameter ``concurrency`` caps the calls in flight to that model.

The registry resolves no names itself: the runtime passes what the checker recorded
(:class:`DeclaredModels`: per module, each model name the module can use — its own
declarations and ``alias.name`` for an imported module's — with its id and
parameters) and the run configuration's part (:class:`RegistrySettings`), both plain
data.  Nothing here imports the checker or the runtime.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .base import Backend, GenParams

LOCAL_ID = "local/smollm2"
_BACKEND_KEYS = ("api_base", "api_key_env", "completion", "concurrency", "client", "timeout",
                 "num_retries", "fallbacks")
_GEN_FIELDS = ("temperature", "max_tokens", "top_p", "seed")


def local_backend(n_ctx: Any = None) -> Backend:
    """The process-wide embedded model with context window ``n_ctx`` (None: the default,
    2,048 tokens): one instance, and one owner thread, per window size for the whole
    process (``local.shared_backend``)."""
    from .local import shared_backend

    return shared_backend(n_ctx)


class DeclaredModel(Protocol):
    """A model declaration as the checker resolved it (``check.program.ModelInfo`` is one)."""

    @property
    def model_id(self) -> str: ...

    @property
    def params(self) -> Mapping[str, Any]: ...

    # ``embed: bool`` — declared as an embedding model (read with ``getattr``, default false)


# module key -> model name as written in that module (``fast``, ``alias.fast``) -> declaration
DeclaredModels = Mapping[str, Mapping[str, DeclaredModel]]


@dataclass(frozen=True)
class RegistrySettings:
    """The run configuration's part in choosing backends (the runtime's ``RunConfig``
    fields of the same meaning; the mappings are shared, not copied, so backends a test
    adds during the run are seen)."""

    overrides: Mapping[str, str] = field(default_factory=dict)  # model name -> id (--model)
    backends: Mapping[str, Backend] = field(default_factory=dict)  # name or id -> backend
    # (model name, model id) -> a backend to use instead of the real one, or None
    intercept: Callable[[str, str], Backend | None] | None = None
    # (model name, backend) -> the backend to use (recording wraps real models)
    wrap: Callable[[str, Backend], Backend] | None = None
    timeout: float = 120.0
    max_attempts: int = 4


class ModelRegistry:
    """Backends of one run, created on first use and closed by :meth:`aclose`."""

    def __init__(self, declared: DeclaredModels, settings: RegistrySettings) -> None:
        self.declared = declared
        self.settings = settings
        self._backends: dict[tuple[Any, ...], Backend] = {}
        self._limits: dict[str, asyncio.Semaphore] = {}
        self._owned: list[Backend] = []
        self.used: dict[str, str] = {}  # model name -> id actually used (for the trace)

    def resolve(self, module_key: str, name: str | None) -> tuple[str, Backend, dict[str, Any]]:
        """(model id, backend, declared parameters) for model ``name`` as written in the
        module ``module_key``."""
        name = name or "default"
        info = self.declared.get(module_key, {}).get(name)
        model_id = self.settings.overrides.get(name) or (info.model_id if info else LOCAL_ID)
        params = dict(info.params) if info else {}
        self.used[name] = model_id
        given = self.settings.backends.get(name) or self.settings.backends.get(model_id)
        if given is None and self.settings.intercept is not None:
            given = self.settings.intercept(name, model_id)
        if given is not None:
            return model_id, given, params
        # a declaration says whether the model embeds, not its id (`bge-m3` is an embedder)
        made_with = {**params, "embeddings": True} if getattr(info, "embed", False) else \
            ({"embeddings": False, **params} if info is not None else params)
        # one backend per id and settings: declarations that differ in anything (server, key,
        # client, time-out, retries, capability flags...) get backends of their own
        cache_key = (model_id, json.dumps(made_with, sort_keys=True, default=str))
        backend = self._backends.get(cache_key)
        if backend is None:
            backend = self._create(model_id, made_with)
            if self.settings.wrap is not None:
                backend = self.settings.wrap(name, backend)
            self._backends[cache_key] = backend
        if "concurrency" in params and model_id not in self._limits:
            self._limits[model_id] = asyncio.Semaphore(max(1, int(params["concurrency"])))
        return model_id, backend, params

    def chain(self, module_key: str, name: str | None) -> list[str]:
        """The model names a call to ``name`` may try, in order: the model itself, then its
        ``fallbacks`` (each followed by its own, depth first, every name once). Names are
        as the module ``module_key`` writes them (a fallback of ``alias.fast`` is
        ``alias.NAME``: fallbacks name models of the declaring module)."""
        out: list[str] = []

        def add(n: str) -> None:
            if n in out:
                return
            out.append(n)
            info = self.declared.get(module_key, {}).get(n)
            fallbacks = info.params.get("fallbacks") if info is not None else None
            if not isinstance(fallbacks, (list, tuple)):
                return
            prefix = n.rsplit(".", 1)[0] + "." if "." in n else ""
            for f in fallbacks:
                if isinstance(f, str) and f:
                    add(prefix + f)

        add(name or "default")
        return out

    def _create(self, model_id: str, params: dict[str, Any]) -> Backend:
        if model_id == "echo":
            from .echo import EchoBackend

            return EchoBackend()
        if model_id == LOCAL_ID:
            return local_backend(params.get("n_ctx"))
        from .openai_http import OpenAIHTTPBackend, uses_fast_path
        from .remote import LiteLLMBackend

        # The model's own `timeout` / `num_retries` parameters win over the run's defaults.
        timeout = None if "timeout" in params else self.settings.timeout
        attempts = None if "num_retries" in params else self.settings.max_attempts
        cls = OpenAIHTTPBackend if uses_fast_path(model_id, params) else LiteLLMBackend
        backend = cls(model_id, params, api_base=params.get("api_base"), timeout=timeout,
                      max_attempts=attempts)
        self._owned.append(backend)
        return backend

    def gen_params(self, model_params: dict[str, Any], handler: GenParams) -> GenParams:
        """Model declaration parameters, overridden by the handler's ``params``."""
        # the declaration's key went to the backend; a handler's own key rides along with the call
        merged: dict[str, Any] = {k: v for k, v in model_params.items()
                                  if k not in _BACKEND_KEYS and k != "api_key"}
        merged.update({k: v for k, v in handler.extra.items() if k not in _BACKEND_KEYS})
        fields: dict[str, Any] = {k: merged.pop(k) for k in _GEN_FIELDS if k in merged}
        stop = merged.pop("stop", None)
        if stop is not None:
            fields["stop"] = (stop,) if isinstance(stop, str) else tuple(stop)
        if handler.stop:
            fields["stop"] = handler.stop
        for k in ("temperature", "max_tokens", "top_p", "seed"):
            v = getattr(handler, k)
            if v is not None:
                fields[k] = v
        return GenParams(json_schema=handler.json_schema, grammar=handler.grammar, extra=merged,
                         **fields)

    @contextlib.asynccontextmanager
    async def model_limit(self, model_id: str) -> AsyncIterator[None]:
        sem = self._limits.get(model_id)
        if sem is None:
            yield
            return
        async with sem:
            yield

    async def aclose(self) -> None:
        for b in self._owned:
            with contextlib.suppress(Exception):
                await b.aclose()
        # litellm's HTTP clients are process-wide: closing them here would cut the requests
        # of other runs in flight in this process, so they are left to the process's end.
        self._owned.clear()
