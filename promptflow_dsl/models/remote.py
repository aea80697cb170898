"""Remote models through litellm: :class:`LiteLLMBackend`.

litellm is imported lazily, on the first call (it costs seconds), with its cost map
read locally (``LITELLM_LOCAL_MODEL_COST_MAP``) and its optional work off:
telemetry, callbacks, verbose logging, debug info and its own retries (our
:mod:`~promptflow_dsl.models.transport` retries). Unsupported provider parameters
are dropped (``litellm.drop_params``).

Capabilities, per model id (see :func:`capabilities_for`); a model parameter named
like a :class:`Capabilities` field (``completion: true``, ``prefill: true``,
``json_schema: false``, ...) overrides the table:

=====================================  ====  ==========  =======  ======  ========  ===========
model                                  chat  completion  prefill  stream  logprobs  json_schema
=====================================  ====  ==========  =======  ======  ========  ===========
``openai/…`` (no ``api_base``)         ✓     –           –        ✓       – [1]     ✓ [2]
``text-completion-openai/…``           ✓     ✓           –        ✓       ✓         –
``openai/…`` etc. with ``api_base``    ✓     if declared –        ✓       = compl.  if declared
``anthropic/…``, ``claude-…``          ✓     –           ✓        ✓       –         [2]
``mistral/…``, ``deepseek/…``          ✓     –           –        ✓       –         [2]
anything else                          ✓     –           –        ✓       –         [2]
``…embed…`` models                     –     –           –        –       –         –  (embeddings)
=====================================  ====  ==========  =======  ======  ========  ===========

[1] OpenAI chat models return log-probabilities of *generated* tokens
(``chat_logprobs``), which cannot score a given continuation, so ``logprobs`` (the
``score`` capability) is off; pass ``logprobs: true`` in params to get them
through anyway. [2] ``LiteLLMBackend.capabilities`` asks
``litellm.supports_response_schema(model)`` (guarded; computed once, on first use);
where it cannot answer, and in ``capabilities_for`` without litellm (the front end
never imports it), true for the OpenAI chat families (gpt-4o, gpt-4.1, gpt-5,
o1/o3/o4).
Every row has ``json_schema_object_only``: hosted APIs take a response schema only
with an object at the root, so other return types are asked for by instructions.

Operations: ``chat`` → ``litellm.acompletion``; ``complete`` →
``litellm.atext_completion`` when completion-capable, else
:func:`~promptflow_dsl.models.emulate.continue_via_chat`; ``stream`` →
``acompletion(stream=True, stream_options={"include_usage": True})`` (a prefix is
continued through the chat emulation); ``score`` → text completion with ``echo`` and
``logprobs`` (``max_tokens`` 1, never 0), else :class:`CapabilityError`; ``embed`` →
``litellm.aembedding``. API keys come from the environment as litellm expects,
from ``api_key_env`` (read at call time), the ``api_key`` argument (the model
declaration's ``api_key``) or, per call, ``GenParams.extra["api_key"]`` (a handler's
``params``), which wins; they are never logged, sent as params, or put into error
messages.

Reply size: litellm reads replies through the size-bounded transport of
:mod:`~promptflow_dsl.models.bounded_httpx` — ``litellm.aclient_session`` for every call
made through the OpenAI library, and a ``client`` handler per call for the providers of
:data:`HTTP_HANDLER_PROVIDERS` — so a body past ``PFLOW_MAX_REPLY_BYTES`` (once decoded)
is a non-retried :class:`ModelError`, streamed or not. Other providers' non-streamed
bodies are read by litellm's own client (their streams are bounded here).
"""

from __future__ import annotations

import asyncio
import os
import re
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import fields, replace
from typing import Any

from .base import (
    Capabilities,
    CapabilityError,
    GenParams,
    Message,
    ModelError,
    Reply,
    Scored,
    StreamEvent,
    Usage,
    token_count,
)
from .context import from_server
from .emulate import (
    ContinuationFilter,
    continuation_messages,
    continue_via_chat,
    json_via_instructions,
    no_embeddings,
    no_scoring,
    provider_extra,
)
from .http11 import max_reply_bytes
from .profiles import (
    ServerProfile,
    chat_prefix,
    end_of_turn,
    prefill_fields,
    profiled_capabilities,
    server_profile,
    structured_fields,
)
from .transport import CUT_OFF, Endpoint, backoff_delay, classify, with_retries

_STREAM_CHUNK_BYTES = 16
"""What one streamed chunk counts against the reply-size bound beside its text (so an
endless stream of empty chunks ends too)."""

#: capabilities a model parameter of the same name overrides
_CAP_NAMES = frozenset(f.name for f in fields(Capabilities)) - {"json_schema_object_only"}

#: model parameters that configure this layer and are never sent to a provider
CONFIG_KEYS = frozenset({"api_base", "api_key", "api_key_env", "concurrency", "num_retries",
                         "timeout", "n_ctx", "authorization", "client", "server",
                         "chat_template"}) | _CAP_NAMES

_OPENAI_SCHEMA_FAMILIES = re.compile(r"^(gpt-4o|gpt-4\.1|gpt-5|o1|o3|o4|chatgpt-4o)")
_PREFILL_PROVIDERS = frozenset({"anthropic", "bedrock_anthropic"})

_litellm: Any = None

OPENAI_HOST = "api.openai.com"
OPENAI_PROVIDERS = frozenset({"openai", "text-completion-openai"})
NO_KEY = "no-key"
"""What the litellm path sends as the key to an OpenAI-compatible server given no key (the
OpenAI library always sends one; without it litellm would send ``OPENAI_API_KEY``)."""


def sends_env_key(model_id: str, api_base: str | None) -> bool:
    """Whether a call may carry ``OPENAI_API_KEY`` from the environment: only when it goes
    to OpenAI itself (no ``api_base``, or one on ``api.openai.com``), on either client.
    Other providers' ids read their own variables, as litellm does."""
    if split_provider(model_id)[0] not in OPENAI_PROVIDERS or not api_base:
        return True
    from urllib.parse import urlsplit

    host = (urlsplit(str(api_base)).hostname or "").lower()
    return host == OPENAI_HOST


def load_litellm() -> Any:
    """Import and configure litellm once (quiet, local cost map, no retries or telemetry)."""
    global _litellm
    if _litellm is not None:
        return _litellm
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_LOG", "ERROR")
    # pydantic complains once about litellm's TypedDicts; not the user's business
    warnings.filterwarnings("ignore", message=r".*is using the `ReadOnly` qualifier",
                            category=UserWarning)
    import litellm

    litellm.telemetry = False
    litellm.drop_params = True
    litellm.suppress_debug_info = True
    litellm.set_verbose = False
    litellm.num_retries = 0
    # httpx rather than aiohttp under litellm: no "Unclosed client session" warnings
    # from sessions left on finished event loops
    litellm.disable_aiohttp_transport = True
    litellm.callbacks = []
    litellm.success_callback = []
    litellm.failure_callback = []
    litellm._async_success_callback = []
    litellm._async_failure_callback = []
    if hasattr(litellm, "turn_off_message_logging"):
        litellm.turn_off_message_logging = True
    # every reply litellm reads through the OpenAI library comes through a size-bounded
    # transport (bounded_httpx.py); one client for every event loop
    litellm.aclient_session = bounded_client()
    _litellm = litellm
    return litellm


_shared_http: dict[str, Any] = {}
"""The bounded transport, client and litellm handler, made once per process."""

#: litellm providers whose chat calls go through litellm's own HTTP handler (not the OpenAI
#: library) and take a ``client`` argument: these get a size-bounded handler per call
HTTP_HANDLER_PROVIDERS = frozenset({"hosted_vllm", "anthropic", "mistral", "deepseek", "groq",
                                    "together_ai", "xai", "fireworks_ai", "ollama",
                                    "ollama_chat", "gemini"})


def bounded_client() -> Any:
    """The process's ``httpx.AsyncClient`` over :class:`~.bounded_httpx.BoundedTransport`
    (made on first use; it serves every event loop)."""
    client = _shared_http.get("client")
    if client is None:
        import httpx

        from .bounded_httpx import BoundedTransport

        transport = _shared_http["transport"] = BoundedTransport()
        # trust_env off: proxies from the environment are the transport's business, or
        # httpx would route around it
        client = _shared_http["client"] = httpx.AsyncClient(transport=transport, trust_env=False,
                                                        follow_redirects=True, timeout=None)
    return client


def bounded_handler() -> Any:
    """A litellm ``AsyncHTTPHandler`` over the same bounded transport (made once), for the
    providers of :data:`HTTP_HANDLER_PROVIDERS`."""
    handler = _shared_http.get("handler")
    if handler is None:
        bounded_client()
        from litellm.llms.custom_httpx.http_handler import AsyncHTTPHandler

        handler = _shared_http["handler"] = AsyncHTTPHandler(transport=_shared_http["transport"])
    return handler


def _too_large(model_id: str, exc: BaseException) -> ModelError | None:
    """A non-retried :class:`ModelError` when ``exc`` comes from a reply past the size
    bound (however litellm wrapped it); else None."""
    from .bounded_httpx import too_large_in

    found = too_large_in(exc)
    if found is None:
        return None
    return ModelError(model_id, str(found), retryable=False)


def split_provider(model_id: str) -> tuple[str, str]:
    """``"openai/gpt-4o"`` → ``("openai", "gpt-4o")``; bare names are guessed."""
    if "/" in model_id:
        provider, name = model_id.split("/", 1)
        return provider.lower(), name
    lower = model_id.lower()
    if lower.startswith("claude"):
        return "anthropic", model_id
    if _OPENAI_SCHEMA_FAMILIES.match(lower) or lower.startswith(("gpt-", "text-embedding", "davinci",
                                                                 "babbage")):
        return "openai", model_id
    return "", model_id


def _is_embedding_model(model_id: str, params: Mapping[str, Any]) -> bool:
    """An embedder by its declaration (the registry passes ``embeddings: true`` for a model
    declared with ``embed``, ``false`` for any other); the id's look only for a model
    without one (a backend made by hand)."""
    declared = params.get("embeddings")
    if isinstance(declared, bool):
        return declared
    return "embed" in model_id.lower()


def _supports_response_schema(model_id: str, ask_litellm: bool | None) -> bool | None:
    if ask_litellm is False or (ask_litellm is None and _litellm is None):
        return None
    load_litellm()
    try:
        return bool(_litellm.supports_response_schema(model=model_id))
    except Exception:  # noqa: BLE001 - unknown model, litellm internals
        return None


def capabilities_for(model_id: str, params: Mapping[str, Any] | None = None,
                     api_base: str | None = None, *, ask_litellm: bool | None = False) -> Capabilities:
    """The capability table of the module docstring, then overrides from ``params``.

    ``ask_litellm``: consult ``litellm.supports_response_schema`` (``True`` imports
    litellm; ``None`` asks only if it is already imported; ``False``, the default,
    never asks — the static table, for the front end).
    """
    params = dict(params or {})
    api_base = api_base or params.get("api_base")
    provider, name = split_provider(model_id)
    if _is_embedding_model(model_id, params):
        caps = Capabilities(chat=False, streaming=False, embeddings=True)
    elif provider == "text-completion-openai":
        caps = Capabilities(completion=True, logprobs=True)
    elif api_base:
        completion = bool(params.get("completion", False))
        caps = Capabilities(completion=completion, logprobs=completion,
                            json_schema=bool(params.get("json_schema", False)))
    else:
        schema = _supports_response_schema(model_id, ask_litellm)
        if schema is None:
            schema = provider == "openai" and bool(_OPENAI_SCHEMA_FAMILIES.match(name.lower()))
        caps = Capabilities(prefill=provider in _PREFILL_PROVIDERS, json_schema=schema)
    overrides = {k: bool(v) for k, v in params.items() if k in _CAP_NAMES and isinstance(v, bool)}
    # hosted APIs take a response schema only with an object at the root (OpenAI's rule)
    return replace(caps, json_schema_object_only=True, **overrides)


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


_TRACEBACK = re.compile(r"\s*Traceback \(most recent call last\):.*?(?=\s*\((?:gave up|not "
                        r"retried)[^()]*\)$|$)", re.S)


def _drop_traceback(exc: ModelError) -> None:
    """Cut a Python traceback that litellm puts inside some error messages ("Invalid
    response object Traceback (most recent call last): ..."), keeping what follows it
    (the attempts note)."""
    exc.args = tuple(_TRACEBACK.sub(" (litellm's traceback left out)", a, count=1)
                     if isinstance(a, str) and "Traceback (most recent call last)" in a else a
                     for a in exc.args)


def _shape(value: Any) -> str:
    """A short description of a piece of a malformed reply, for an error message."""
    if isinstance(value, Mapping):
        return "an object with " + (", ".join(repr(k) for k in list(value)[:5]) or "no keys")
    return type(value).__name__


def _usage_of(obj: Any) -> Usage | None:
    usage = _get(obj, "usage")
    if usage is None:
        return None
    # a count that is not a finite number (a string, NaN, 1e400, a list) is unknown: 0
    return Usage(prompt_tokens=token_count(_get(usage, "prompt_tokens", 0)),
                 completion_tokens=token_count(_get(usage, "completion_tokens", 0)))


class LiteLLMBackend:
    """A model served through litellm (see the module docstring).

    ``params`` are the model declaration's parameters: ``api_base``, ``api_key``
    (the ``api_key`` argument wins), ``api_key_env``, ``timeout`` (per attempt,
    seconds), ``num_retries`` (retries after the first attempt) and capability
    overrides are used here; generation parameters arrive per call in
    :class:`GenParams` (whose ``extra["api_key"]``, if any, wins over the others).
    """

    def __init__(self, model_id: str, params: Mapping[str, Any] | None = None,
                 api_base: str | None = None, *, api_key: str | None = None,
                 capabilities: Capabilities | None = None, timeout: float | None = None,
                 max_attempts: int | None = None, base_delay: float = 0.5,
                 max_delay: float = 20.0,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        params = dict(params or {})
        self.model_id = model_id
        self.api_base = api_base or params.get("api_base")
        self._capabilities = capabilities
        self._cap_params = {k: v for k, v in params.items()
                            if k in _CAP_NAMES or k in ("api_base", "server", "chat_template")}
        self._profile: ServerProfile | None | bool = False  # False: not looked up yet
        provider, _ = split_provider(model_id)
        self.chat_logprobs = provider == "openai" and not self.api_base
        key = api_key if api_key is not None else params.get("api_key")
        self._api_key = str(key) if key else None  # never logged or put into params
        self._api_key_env = params.get("api_key_env")
        self.timeout = float(timeout if timeout is not None else params.get("timeout", 120.0))
        if max_attempts is None:
            max_attempts = int(params.get("num_retries", 3)) + 1
        self.max_attempts = max(1, max_attempts)
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep

    ask_litellm = True
    """Whether :attr:`capabilities` asks litellm about response schemas (the lean
    OpenAI-compatible client, which never imports litellm, says no)."""

    @property
    def capabilities(self) -> Capabilities:
        """The table, with litellm's answer on response schemas where :attr:`ask_litellm`
        (imports litellm once); computed on first use, so it is the same whatever was
        imported before."""
        if self._capabilities is None:
            caps = capabilities_for(self.model_id, self._cap_params, self.api_base,
                                    ask_litellm=self.ask_litellm)
            self._capabilities = profiled_capabilities(caps, self.profile, self._cap_params)
        return self._capabilities

    @property
    def profile(self) -> ServerProfile | None:
        """What the server at ``api_base`` really offers (``profiles.py``: the declared
        ``server`` kind, else probed once per ``api_base``); None when unknown. Raises
        :class:`ModelError` for an unknown ``server`` value."""
        if self._profile is False:
            try:
                key = self._api_key or (os.environ.get(str(self._api_key_env))
                                        if self._api_key_env else None)
                self._profile = server_profile(self.api_base, self._cap_params, api_key=key)
            except ValueError as exc:
                raise ModelError(self.model_id, str(exc)) from None
        return self._profile if isinstance(self._profile, ServerProfile) else None

    def chat_transcript(self, messages: list[Message]) -> tuple[str, tuple[str, ...]] | None:
        """``messages`` in the model's own chat template up to where the assistant writes,
        with the stop strings that end its turn, for a continuation by raw completion;
        None when the template is not known (``profiles.chat_prefix``)."""
        if not self.capabilities.completion:
            return None
        text = chat_prefix(self.profile, messages)
        return (text, end_of_turn(self.profile)) if text is not None else None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model_id!r}, api_base={self.api_base!r})"

    # -- request building ------------------------------------------------------

    def _connection(self, params: GenParams | None = None) -> dict[str, Any]:
        kw: dict[str, Any] = {"num_retries": 0, "max_retries": 0, "timeout": self.timeout}
        if self.api_base:
            kw["api_base"] = self.api_base
        key = call_key(params) or self._api_key
        if key is None and self._api_key_env:
            key = os.environ.get(str(self._api_key_env))
            if key is None:
                raise ModelError(self.model_id, f"the environment variable {self._api_key_env} "
                                                f"(api_key_env) is not set")
        if key is None and self.placeholder_key and not sends_env_key(self.model_id, self.api_base):
            key = self.placeholder_key  # never the environment's OPENAI_API_KEY to a third party
        if key is not None:
            kw["api_key"] = key
        return kw

    placeholder_key: str | None = NO_KEY
    """The key sent to a self-hosted OpenAI-compatible server when none is given, so that
    litellm does not send ``OPENAI_API_KEY`` there (the lean client sends no key at all)."""

    def _endpoint(self, kw: Mapping[str, Any], path: str) -> Endpoint:
        """Where a request with ``kw`` goes, for error messages."""
        base = kw.get("api_base") or self.api_base
        if base is None and split_provider(self.model_id)[0] in OPENAI_PROVIDERS:
            base = f"https://{OPENAI_HOST}/v1"
        key = kw.get("api_key")
        keyed = bool(key) and key != self.placeholder_key
        if not keyed and sends_env_key(self.model_id, self.api_base) and not self.api_base:
            keyed = bool(os.environ.get("OPENAI_API_KEY"))
        return Endpoint(str(base) if base else None, path, keyed)

    def _gen(self, params: GenParams) -> dict[str, Any]:
        kw: dict[str, Any] = {}
        for name in ("temperature", "max_tokens", "top_p", "seed"):
            value = getattr(params, name)
            if value is not None:
                kw[name] = value
        if params.stop:
            kw["stop"] = list(params.stop)
        if params.grammar and self.capabilities.grammar:
            kw.setdefault("extra_body", {})["grammar"] = params.grammar
        for k, v in provider_extra(params).items():
            if k not in CONFIG_KEYS:
                kw[k] = v
        return kw

    def _chat_request(self, messages: list[Message], params: GenParams) -> dict[str, Any]:
        kw = self._gen(params)
        if params.json_schema is not None:
            asked = (structured_fields(self.profile, params.json_schema, _schema_name(params.json_schema))
                     if self.capabilities.json_schema else None)
            if asked is not None:
                for k, v in asked.items():
                    kw[k] = {**kw.get(k, {}), **v} if k == "extra_body" else v
            else:
                messages = json_via_instructions(messages, params.json_schema)
        cont = prefill_fields(self.profile, messages)
        if cont and self.capabilities.prefill:
            kw.setdefault("extra_body", {}).update(cont)
        kw.update(self._connection(params))
        kw["model"] = self.model_id
        kw["messages"] = [m.as_dict() for m in messages]
        return kw

    def _text_model(self) -> str:
        provider, name = split_provider(self.model_id)
        if provider == "text-completion-openai":
            return self.model_id
        if provider == "openai" or (self.api_base and provider in ("", "hosted_vllm")):
            return f"text-completion-openai/{name}"
        return self.model_id

    def _cost(self, response: Any) -> float | None:
        litellm = load_litellm()
        try:
            cost = litellm.completion_cost(completion_response=response)
        except Exception:  # noqa: BLE001 - unknown model or price
            return None
        return float(cost) if cost else None

    def _cost_of_usage(self, usage: Usage) -> float | None:
        litellm = load_litellm()
        try:
            prompt, completion = litellm.cost_per_token(
                model=self.model_id, prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens)
        except Exception:  # noqa: BLE001 - unknown model or price
            return None
        total = float(prompt or 0.0) + float(completion or 0.0)
        return total or None

    def _warm(self) -> None:
        """Work done once before the first timed attempt (importing litellm takes seconds,
        which must not count against a call's time-out)."""
        load_litellm()

    async def _call(self, make: Callable[[], Awaitable[Any]],
                    kw: Mapping[str, Any] | None = None, path: str = "") -> Any:
        """``make()`` with retries; the API key of ``kw`` is masked in the error, which
        names the address tried where it helps."""
        self._warm()
        try:
            return await with_retries(make, model=self.model_id, max_attempts=self.max_attempts,
                                      base_delay=self.base_delay, max_delay=self.max_delay,
                                      timeout=self.timeout, sleep=self._sleep,
                                      endpoint=self._endpoint(kw or {}, path))
        except ModelError as exc:
            mask_key(exc, (kw or {}).get("api_key"))
            _drop_traceback(exc)
            found = from_server(exc)  # "context length exceeded": the tokens and the window
            if found is not exc:
                raise found from None
            raise

    # -- the wire: overridden by the lean OpenAI-compatible client -------------------

    async def _acompletion(self, kw: dict[str, Any]) -> Any:
        """A chat completion (``kw["stream"]``: an async iterator of chunks). Raises a
        non-retried :class:`ModelError` for a reply past the size bound."""
        litellm = load_litellm()
        if split_provider(str(kw.get("model", "")))[0] in HTTP_HANDLER_PROVIDERS:
            kw = {**kw, "client": bounded_handler()}
        return await self._bounded(litellm.acompletion(**kw))

    async def _atext_completion(self, kw: dict[str, Any]) -> Any:
        return await self._bounded(load_litellm().atext_completion(**kw))

    async def _aembedding(self, texts: list[str], kw: dict[str, Any]) -> Any:
        return await self._bounded(load_litellm().aembedding(model=self.model_id, input=texts, **kw))

    async def _bounded(self, call: Awaitable[Any]) -> Any:
        try:
            return await call
        except Exception as exc:
            error = _too_large(self.model_id, exc)
            if error is None:
                raise
            raise error from None

    async def _close_stream(self, response: Any) -> None:
        await _close_stream(response)

    # -- operations ------------------------------------------------------------

    async def chat(self, messages: list[Message], params: GenParams) -> Reply:
        """Raises :class:`ModelError` after retries."""
        kw = self._chat_request(messages, params)
        response = await self._call(lambda: self._well_formed(self._acompletion(kw), "message"),
                                    kw, "/chat/completions")
        choice = self._first_choice(response)
        message = _get(choice, "message")
        text = _get(message, "content")
        if text is not None and not isinstance(text, str):
            raise ModelError(self.model_id, f"the reply content is not text: {type(text).__name__}")
        usage = _usage_of(response) or Usage()
        usage.cost = self._cost(response)
        return Reply(text or "", self.model_id, usage, _get(choice, "finish_reason"))

    def _first_choice(self, response: Any) -> Any:
        choices = _get(response, "choices")
        if not choices or not isinstance(choices, (list, tuple)):
            raise ModelError(self.model_id, f"the reply has no choices (got {type(response).__name__})")
        return choices[0]

    async def _well_formed(self, reply: Awaitable[Any], part: str) -> Any:
        """The awaited ``reply`` when it has a list of choices whose first holds ``part``
        (``message`` for a chat, ``text`` for a completion); else a retryable
        :class:`ModelError`, so a malformed 200 is retried like a body that is not JSON,
        and never taken (nor cached) as an empty answer."""
        response = await reply
        choices = _get(response, "choices")
        if not isinstance(choices, (list, tuple)) or not choices:
            what = "no list of choices" if not isinstance(choices, (list, tuple)) else "no choices"
            raise ModelError(self.model_id, f"the server's reply is malformed: {what} "
                                            f"(got {_shape(choices)})", retryable=True)
        value = _get(choices[0], part)
        if part == "message" and (value is None or isinstance(value, (str, int, float, list))):
            raise ModelError(self.model_id, "the server's reply is malformed: its first choice "
                                            f"has no message (got {_shape(choices[0])})",
                             retryable=True)
        if part == "text" and not isinstance(value, str):
            raise ModelError(self.model_id, "the server's reply is malformed: its first choice "
                                            f"has no text (got {_shape(choices[0])})",
                             retryable=True)
        return response

    async def _text_completion(self, prompt: str, params: GenParams, **extra: Any) -> Any:
        kw = self._gen(params)
        kw.update(extra)
        kw.update(self._connection(params))
        kw["model"] = self._text_model()
        kw["prompt"] = prompt
        return await self._call(lambda: self._well_formed(self._atext_completion(kw), "text"),
                                kw, "/completions")

    async def complete(self, prefix: str, params: GenParams) -> Reply:
        """Continue ``prefix``; emulated through chat where completion is missing.
        Raises :class:`ModelError`."""
        if not self.capabilities.completion:
            return await continue_via_chat(self, prefix, params)
        response = await self._text_completion(prefix, params)
        choice = self._first_choice(response)
        text = _get(choice, "text")
        if text is not None and not isinstance(text, str):
            raise ModelError(self.model_id, f"the reply text is not text: {type(text).__name__}")
        usage = _usage_of(response) or Usage()
        usage.cost = self._cost(response)
        return Reply(text or "", self.model_id, usage, _get(choice, "finish_reason"))

    async def stream(self, messages: list[Message] | None, prefix: str | None,
                     params: GenParams) -> AsyncIterator[StreamEvent]:
        """Stream a chat reply, or the continuation of ``prefix`` (through the chat
        emulation). Closing the iterator closes the HTTP stream. Raises
        :class:`ModelError`, also when the stream breaks part-way."""
        cont: ContinuationFilter | None = None
        if messages is None:
            prefill = self.capabilities.prefill
            messages, held = continuation_messages(prefix or "", prefill=prefill)
            cont = ContinuationFilter(prefix or "", held, prefill=prefill)
        if not self.capabilities.streaming:
            reply = await self.chat(messages, params)
            text = cont.finish(reply.text) if cont else reply.text
            yield StreamEvent(text, usage=reply.usage, finish_reason=reply.finish_reason or "stop")
            return
        kw = self._chat_request(messages, params)
        kw["stream"] = True
        kw["stream_options"] = {"include_usage": True}
        attempt = 0
        while True:
            attempt += 1
            if cont is not None:  # a fresh filter for each attempt
                messages, held = continuation_messages(prefix or "", prefill=self.capabilities.prefill)
                cont = ContinuationFilter(prefix or "", held, prefill=self.capabilities.prefill)
            response = await self._call(lambda: self._acompletion(kw), kw, "/chat/completions")
            spy = _UsageSpy.install(response)
            usage: Usage | None = None
            finish: str | None = None
            chunks = delivered = 0
            left = max_reply_bytes()  # an endless stream (any client) ends here, not in memory
            error: ModelError | None = None
            iterator = response.__aiter__()
            try:
                while True:
                    try:
                        async with asyncio.timeout(self.timeout):
                            chunk = await iterator.__anext__()
                    except StopAsyncIteration:
                        break
                    chunks += 1
                    left -= _STREAM_CHUNK_BYTES
                    usage = _usage_of(chunk) or usage
                    choices = _get(chunk, "choices") or []
                    if not choices:
                        continue
                    delta = _get(choices[0], "delta")
                    text = _get(delta, "content") or ""
                    finish = _get(choices[0], "finish_reason") or finish
                    left -= len(text) if isinstance(text, str) else 0
                    if left < 0:
                        raise ModelError(self.model_id, f"the streamed reply is larger than "
                                                        f"{max_reply_bytes():,} bytes (after "
                                                        f"{chunks} chunks); not retried")
                    if cont is not None:
                        text = cont.feed(text)
                    if text:
                        delivered += len(text)
                        yield StreamEvent(text)
                if finish is None:
                    error = ModelError(self.model_id, CUT_OFF, retryable=True)
            except ModelError:
                raise
            except Exception as exc:  # noqa: BLE001 - a stream broken part-way
                too_large = _too_large(self.model_id, exc)
                if too_large is not None:
                    raise mask_key(too_large, kw.get("api_key")) from None
                failure = classify(exc, self._endpoint(kw, "/chat/completions"))
                what = failure.description if failure.description == CUT_OFF else (
                    f"the stream broke after {chunks} chunks: {failure.description}")
                error = ModelError(self.model_id, what, status=failure.status,
                                   retryable=failure.retryable)
                error.__cause__ = exc
            finally:
                await self._close_stream(response)
            if error is None:
                break
            raise_now = not error.retryable or delivered or attempt >= self.max_attempts
            if raise_now:
                message = str(error.args[0]).removeprefix(f"{self.model_id}: ")
                if delivered and error.retryable:
                    message += f" ({delivered} characters of the reply were already delivered)"
                elif error.retryable:
                    message += f" (gave up after {attempt} attempt{'s' if attempt > 1 else ''})"
                raise mask_key(ModelError(self.model_id, message, status=error.status,
                                          retryable=error.retryable), kw.get("api_key")) from error
            await self._sleep(backoff_delay(attempt, self.base_delay, self.max_delay))
        tail = cont.flush() if cont is not None else ""
        if spy is not None and not spy.saw_usage:
            usage = None  # litellm's own estimate, not the server's count: unknown
        if usage is not None:
            usage.cost = self._cost_of_usage(usage)
        # usage None: the server did not report it (stream_options.include_usage ignored)
        yield StreamEvent(tail, usage=usage, finish_reason=finish)

    async def score(self, prefix: str, continuations: list[str]) -> list[Scored]:
        """The summed log-probability of each continuation after ``prefix``, from an
        echoed text completion. Raises :class:`CapabilityError` without ``logprobs``,
        :class:`ModelError` when the server gives none."""
        if not self.capabilities.logprobs:
            raise no_scoring(self.model_id)
        return list(await asyncio.gather(*(self._score_one(prefix, c) for c in continuations)))

    async def _score_one(self, prefix: str, continuation: str) -> Scored:
        text = prefix + continuation
        # one token, never 0: llama-cpp-python reads 0 as "no limit", vLLM rejects it
        response = await self._text_completion(text, GenParams(max_tokens=1, temperature=0.0),
                                                echo=True, logprobs=0)
        choice = self._first_choice(response)
        lp = _get(choice, "logprobs")
        tokens = list(_get(lp, "tokens") or [])
        values = list(_get(lp, "token_logprobs") or [])
        if not tokens or len(values) != len(tokens):
            raise CapabilityError(self.model_id, "the server returned no token log-probabilities "
                                                 "for the echoed prompt")
        offsets = list(_get(lp, "text_offset") or [])
        if len(offsets) != len(tokens):
            offsets, pos = [], 0
            for t in tokens:
                offsets.append(pos)
                pos += len(t)
        start = len(prefix)
        total, count = 0.0, 0
        for token, value, offset in zip(tokens, values, offsets, strict=True):
            if offset >= len(text):
                break  # generated, not echoed
            if offset + len(token) <= start or value is None:
                continue
            total += float(value)
            count += 1
        return Scored(continuation, total, count)

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """Raises :class:`CapabilityError` for a non-embedding model, :class:`ModelError`."""
        if not self.capabilities.embeddings:
            raise no_embeddings(self.model_id)
        kw = self._connection()
        kw.pop("max_retries", None)
        response = await self._call(lambda: self._aembedding(texts, kw), kw, "/embeddings")
        data = _get(response, "data") or []
        if len(data) != len(texts):
            raise ModelError(self.model_id, f"expected {len(texts)} embeddings, got {len(data)}")
        return [self._vector(_get(d, "embedding"), i) for i, d in enumerate(data)]

    def _vector(self, value: Any, index: int) -> list[float]:
        """One text's embedding as floats. Raises :class:`ModelError` for anything but a
        non-empty list of numbers — in particular one vector per token (a list of lists:
        a server that does not pool), which no route could compare."""
        if isinstance(value, (list, tuple)) and value and all(
                isinstance(v, (list, tuple)) for v in value):
            dims = len(value[0]) if value[0] else 0
            raise ModelError(self.model_id, f"the server returned one vector per token ({len(value)} "
                                            f"vectors of {dims} numbers) for text {index + 1}, not "
                                            f"one vector per text: serve the model with pooling "
                                            f"(e.g. llama.cpp's `--pooling mean`) or use a "
                                            f"sentence-embedding model")
        if not isinstance(value, (list, tuple)) or not value or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            got = type(value).__name__ if not isinstance(value, (list, tuple)) else (
                "an empty list" if not value else "a list of non-numbers")
            raise ModelError(self.model_id, f"the embedding of text {index + 1} is not a list "
                                            f"of numbers (got {got})")
        return [float(v) for v in value]

    async def aclose(self) -> None:
        return None


class _UsageSpy:
    """Sits between litellm's stream wrapper and the raw stream to see whether the server
    itself sent usage: when it did not, litellm makes an estimate up, which must not pass
    for the server's count."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._it: Any = None
        self.saw_usage = False

    @classmethod
    def install(cls, response: Any) -> _UsageSpy | None:
        inner = getattr(response, "completion_stream", None)
        if inner is None or not hasattr(inner, "__aiter__"):
            return None  # not litellm's wrapper (the lean client reports what the server sent)
        spy = cls(inner)
        try:
            response.completion_stream = spy
        except AttributeError:
            return None
        return spy

    def __aiter__(self) -> _UsageSpy:
        return self

    async def __anext__(self) -> Any:
        if self._it is None:
            self._it = self._inner.__aiter__()
        chunk = await self._it.__anext__()
        if _get(chunk, "usage") is not None:
            self.saw_usage = True
        return chunk

    async def aclose(self) -> None:
        await _close_stream(self._inner)


def call_key(params: GenParams | None) -> str | None:
    """The API key a call carries in its parameters (a handler's ``params``), if any."""
    key = params.extra.get("api_key") if params is not None else None
    return key if isinstance(key, str) and key else None


MIN_MASKED_KEY = 8
"""Shorter "keys" (test placeholders) are not masked: replacing them would garble messages."""


def mask_key(exc: ModelError, key: Any) -> ModelError:
    """``exc`` with every occurrence of ``key`` in its message replaced by ``***``."""
    if isinstance(key, str) and len(key) >= MIN_MASKED_KEY:
        exc.args = tuple(a.replace(key, "***") if isinstance(a, str) else a for a in exc.args)
    return exc


def _schema_name(schema: Mapping[str, Any]) -> str:
    title = str(schema.get("title") or "reply")
    name = re.sub(r"[^A-Za-z0-9_-]", "_", title)[:64]
    return name or "reply"


async def _close_stream(response: Any) -> None:
    """Close a litellm stream wrapper and the HTTP stream under it (best effort)."""
    for obj in (response, getattr(response, "completion_stream", None)):
        if obj is None:
            continue
        for name in ("aclose", "close"):
            closer = getattr(obj, name, None)
            if closer is None:
                continue
            try:
                result = closer()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
            break
