"""The one model layer every handler kind builds on: capabilities, requests, replies
and the :class:`Backend` interface.

A backend offers four operations — ``chat``, ``complete`` (continue a text from a
prefix), ``stream`` (chat or completion, as text chunks) and ``score`` (the
log-probability of candidate continuations) — plus ``embed``.  Each backend
declares what it can do natively in a :class:`Capabilities` record; where a
capability is missing, :mod:`promptflow_dsl.models.emulate` documents and
provides the fallback (e.g. continuation on a chat-only API).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Capabilities:
    """What a model can do natively."""

    chat: bool = True
    completion: bool = False  # raw completion: continue a text from a prefix
    prefill: bool = False  # continue a partly written assistant message
    streaming: bool = True
    logprobs: bool = False  # token log-probabilities (scoring, beam search)
    json_schema: bool = False  # native JSON-schema constrained replies
    # native JSON schema only for an object at the root (hosted APIs); other types are asked
    # for through instructions there
    json_schema_object_only: bool = False
    grammar: bool = False  # grammar-constrained decoding (e.g. llama.cpp GBNF)
    embeddings: bool = False

    def as_dict(self) -> dict[str, bool]:
        return {k: bool(v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class Message:
    role: str  # system | user | assistant
    content: str

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class GenParams:
    """Generation parameters after merging (model declaration < handler `params`)."""

    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    json_schema: dict[str, Any] | None = None  # ask for JSON matching this schema
    grammar: str | None = None  # a GBNF grammar, where the backend has `grammar`
    extra: dict[str, Any] = field(default_factory=dict)  # passed through to the provider

    def cache_view(self) -> dict[str, Any]:
        """Everything that determines a reply, as plain JSON-able data."""
        return {"temperature": self.temperature, "max_tokens": self.max_tokens,
                "top_p": self.top_p, "stop": list(self.stop), "seed": self.seed,
                "json_schema": self.json_schema, "grammar": self.grammar,
                "extra": {k: v for k, v in sorted(self.extra.items()) if k not in SECRET_KEYS}}


SECRET_KEYS = frozenset({"api_key", "api_key_env", "authorization", "headers", "aws_secret_access_key",
                         "aws_session_token", "azure_ad_token"})


def token_count(value: Any) -> int:
    """A token count a server reported, as an ``int``: anything that is not a finite,
    non-negative number (a string, a list, NaN, ``1e400``, a bool) is unknown, 0.
    Never raises."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0
    if isinstance(value, float) and not math.isfinite(value):
        return 0
    if value < 0 or value > MAX_TOKEN_COUNT:
        return 0
    return int(value)


MAX_TOKEN_COUNT = 10**12
"""A larger token count is not a count: it is taken as unknown (0)."""


@dataclass
class Usage:
    """Tokens (and cost) of a call.  Whatever a server sent, the fields hold finite,
    non-negative numbers (:func:`token_count`; a cost that is not one is ``None``)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None  # USD, where known

    def __post_init__(self) -> None:
        if type(self.prompt_tokens) is not int or self.prompt_tokens < 0:
            self.prompt_tokens = token_count(self.prompt_tokens)
        if type(self.completion_tokens) is not int or self.completion_tokens < 0:
            self.completion_tokens = token_count(self.completion_tokens)
        cost = self.cost
        if cost is not None and (isinstance(cost, bool) or not isinstance(cost, (int, float))
                                 or not math.isfinite(cost) or cost < 0):
            self.cost = None

    def add(self, other: Usage) -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        if other.cost is not None:
            self.cost = (self.cost or 0.0) + other.cost


@dataclass
class Reply:
    text: str
    model: str
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None  # "stop", "length", ... ; "cut" when a stream was cut short


@dataclass
class StreamEvent:
    """A piece of a streamed reply; the last event carries usage and finish reason."""

    text: str
    usage: Usage | None = None
    finish_reason: str | None = None


@dataclass
class Scored:
    """The log-probability of one candidate continuation, summed over its tokens."""

    text: str
    logprob: float
    tokens: int


class ModelError(Exception):
    """A model call that failed for good (after retries); names the model."""

    def __init__(self, model: str, message: str, *, status: int | None = None,
                 retryable: bool = False) -> None:
        super().__init__(f"{model}: {message}")
        self.model = model
        self.status = status
        self.retryable = retryable


class ScriptError(ModelError):
    """A test's stand-in for a model refused a call (no scripted reply left, no mock, a
    recording that no longer matches); the message is shown to the user as it is."""

    def __init__(self, model: str, message: str) -> None:
        super().__init__(model, message)
        self.args = (message,)


class CapabilityError(ModelError):
    """The model cannot do what was asked and no emulation exists (e.g. scoring without log-probs)."""


@runtime_checkable
class Backend(Protocol):
    """A model.  Every method may raise :class:`ModelError`."""

    @property
    def model_id(self) -> str: ...

    @property
    def capabilities(self) -> Capabilities: ...

    async def chat(self, messages: list[Message], params: GenParams) -> Reply: ...

    async def complete(self, prefix: str, params: GenParams) -> Reply: ...

    def stream(self, messages: list[Message] | None, prefix: str | None,
               params: GenParams) -> AsyncIterator[StreamEvent]:
        """Stream a chat reply (``messages``) or a continuation of ``prefix``.

        Closing the iterator early (``aclose``) must stop generation and release
        the model.
        """
        ...

    async def score(self, prefix: str, continuations: list[str]) -> list[Scored]: ...

    async def embed(self, texts: list[str]) -> list[list[float]]: ...

    async def aclose(self) -> None: ...
