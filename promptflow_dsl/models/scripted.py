"""A replay backend for tests: ``mock model M replies [...]`` and ``mock model M for H
replies [...]``.

``ScriptedBackend(model_id, replies)`` takes a list (the shared queue) or a dict
mapping a handler name to its queue, with the key ``None`` for the shared queue. A
call passes the calling handler as ``GenParams.extra["pflow_handler"]``; its own
queue is used first, then the shared one. ``chat``, ``complete`` and ``stream``
all take the next reply (a stream yields it in chunks that end at whitespace, then
a final event with usage). Running out raises :class:`ScriptError`; leftovers are
not an error. Every call is recorded in ``.calls``. No log-probabilities, no
embeddings: ``score`` and ``embed`` raise :class:`CapabilityError`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

from .base import Capabilities, GenParams, Message, Reply, Scored, ScriptError, StreamEvent, Usage
from .emulate import no_embeddings, no_scoring, whitespace_chunks, word_usage

HANDLER_KEY = "pflow_handler"


@dataclass(frozen=True)
class ScriptedCall:
    """One recorded call: ``kind`` is chat | complete | stream."""

    kind: str
    messages: tuple[Message, ...] | None
    prefix: str | None
    handler: str | None
    params: GenParams
    reply: str


class ScriptedBackend:
    """See the module docstring."""

    def __init__(self, model_id: str,
                 replies: Iterable[str] | dict[str | None, list[str]] | None = None) -> None:
        self.model_id = model_id
        self.capabilities = Capabilities(chat=True, completion=True, prefill=False, streaming=True,
                                         logprobs=False, json_schema=False, grammar=False,
                                         embeddings=False)
        self.shared: deque[str] = deque()
        self.per_handler: dict[str, deque[str]] = {}
        self.calls: list[ScriptedCall] = []
        if isinstance(replies, dict):
            for handler, queue in replies.items():
                self.add(queue, handler=handler)
        elif replies is not None:
            self.add(replies)

    def add(self, replies: Iterable[str], *, handler: str | None = None) -> None:
        """Append replies to the shared queue, or to ``handler``'s queue."""
        items = [str(r) for r in replies]
        if handler is None:
            self.shared.extend(items)
        else:
            self.per_handler.setdefault(handler, deque()).extend(items)

    def remaining(self, handler: str | None = None) -> int:
        if handler is None:
            return len(self.shared)
        return len(self.per_handler.get(handler, ()))

    def _take(self, kind: str, messages: list[Message] | None, prefix: str | None,
              params: GenParams) -> str:
        handler = params.extra.get(HANDLER_KEY)
        handler = None if handler is None else str(handler)
        own = self.per_handler.get(handler) if handler is not None else None
        if own:
            text = own.popleft()
        elif self.shared:
            text = self.shared.popleft()
        else:
            raise ScriptError(self.model_id, f"no scripted replies left for model {self.model_id} "
                                            f"(handler {handler or '-'})")
        self.calls.append(ScriptedCall(kind, tuple(messages) if messages is not None else None,
                                       prefix, handler, params, text))
        return text

    def _usage(self, messages: list[Message] | None, prefix: str | None, text: str) -> Usage:
        prompt = "\n".join(m.content for m in messages) if messages is not None else (prefix or "")
        usage = word_usage(prompt, text)
        usage.cost = 0.0
        return usage

    async def chat(self, messages: list[Message], params: GenParams) -> Reply:
        text = self._take("chat", messages, None, params)
        return Reply(text, self.model_id, self._usage(messages, None, text), "stop")

    async def complete(self, prefix: str, params: GenParams) -> Reply:
        text = self._take("complete", None, prefix, params)
        return Reply(text, self.model_id, self._usage(None, prefix, text), "stop")

    async def stream(self, messages: list[Message] | None, prefix: str | None,
                     params: GenParams) -> AsyncIterator[StreamEvent]:
        text = self._take("stream", messages, prefix, params)
        for chunk in whitespace_chunks(text):
            yield StreamEvent(chunk)
        yield StreamEvent("", usage=self._usage(messages, prefix, text), finish_reason="stop")

    async def score(self, prefix: str, continuations: list[str]) -> list[Scored]:
        raise no_scoring(self.model_id)

    async def embed(self, texts: list[str]) -> list[list[float]]:
        raise no_embeddings(self.model_id)

    async def aclose(self) -> None:
        return None
