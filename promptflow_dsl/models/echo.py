"""The ``echo`` model: returns the last user message, for debugging and offline tests.

- ``chat``: the content of the last ``user`` message ("" when there is none);
- ``complete``: "" (echo has nothing to add to a text);
- ``stream``: the same reply in chunks that end at whitespace, then a final event
  carrying usage and ``finish_reason="stop"``;
- ``score``: :class:`CapabilityError` (no log-probabilities);
- ``embed``: deterministic hashed bag-of-words unit vectors (texts that share
  words are near each other), so ``by embedding`` routing runs offline;
- usage counts words; cost is 0.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import AsyncIterator

from .base import Capabilities, GenParams, Message, Reply, Scored, StreamEvent, Usage
from .emulate import no_scoring, whitespace_chunks, word_usage

EMBED_DIMS = 64
_WORD = re.compile(r"\w+")


def last_user_message(messages: list[Message]) -> str:
    for m in reversed(messages):
        if m.role == "user":
            return m.content
    return ""


def hashed_embedding(text: str, dims: int = EMBED_DIMS) -> list[float]:
    """A unit vector: each lower-cased word adds ±1 to a hashed coordinate."""
    vec = [0.0] * dims
    for word in _WORD.findall(text.lower()):
        h = hashlib.blake2b(word.encode(), digest_size=8).digest()
        vec[int.from_bytes(h[:4], "little") % dims] += 1.0 if h[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vec))
    if norm == 0.0:
        vec[0], norm = 1.0, 1.0
    return [v / norm for v in vec]


class EchoBackend:
    """See the module docstring."""

    def __init__(self, model_id: str = "echo") -> None:
        self.model_id = model_id
        self.capabilities = Capabilities(chat=True, completion=True, prefill=False, streaming=True,
                                         logprobs=False, json_schema=False, grammar=False,
                                         embeddings=True)

    def _usage(self, prompt: str, completion: str) -> Usage:
        usage = word_usage(prompt, completion)
        usage.cost = 0.0
        return usage

    async def chat(self, messages: list[Message], params: GenParams) -> Reply:
        text = last_user_message(messages)
        prompt = "\n".join(m.content for m in messages)
        return Reply(text, self.model_id, self._usage(prompt, text), "stop")

    async def complete(self, prefix: str, params: GenParams) -> Reply:
        return Reply("", self.model_id, self._usage(prefix, ""), "stop")

    async def stream(self, messages: list[Message] | None, prefix: str | None,
                     params: GenParams) -> AsyncIterator[StreamEvent]:
        if messages is not None:
            reply = await self.chat(messages, params)
        else:
            reply = await self.complete(prefix or "", params)
        for chunk in whitespace_chunks(reply.text):
            yield StreamEvent(chunk)
        yield StreamEvent("", usage=reply.usage, finish_reason=reply.finish_reason)

    async def score(self, prefix: str, continuations: list[str]) -> list[Scored]:
        raise no_scoring(self.model_id)

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return [hashed_embedding(t) for t in texts]

    async def aclose(self) -> None:
        return None
