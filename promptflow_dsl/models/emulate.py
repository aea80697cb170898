"""Fallbacks for capabilities a backend lacks, usable by any backend.

=================  ================================================================
missing            fallback
=================  ================================================================
``completion``     :func:`continue_via_chat` — with ``prefill``, the prefix is sent
                   as a partly written assistant message and the reply is its
                   continuation; without, a system instruction ("Continue the text
                   exactly where it stops; reply with the continuation only") and
                   the text as the user message (an echoed prefix is cut off).
``prefill``        the continuation prompt above.
``streaming``      :func:`stream_via_chat` — one call, yielded as a single event
                   (text, usage and finish reason together).
``json_schema``    :func:`json_via_instructions` — the schema is appended to the
                   system message ("Reply with only a JSON object that matches
                   this JSON Schema: ..."); the runtime validates the reply.
``grammar``        none: the runtime validates the reply (and re-asks).
``logprobs``       none: ``score`` raises :class:`CapabilityError`; choice holes use
                   the validate-and-re-ask path.
``embeddings``     none: ``embed`` raises :class:`CapabilityError`.
=================  ================================================================

Helpers shared by the backends: :func:`whitespace_chunks` (how scripted and echo
replies are streamed), :func:`word_usage` (word-count usage for offline backends)
and :func:`provider_extra` (the ``GenParams.extra`` entries meant for a provider).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from .base import Backend, CapabilityError, GenParams, Message, Reply, StreamEvent, Usage

CONTINUE_INSTRUCTION = "Continue the text exactly where it stops; reply with the continuation only."
PREFILL_REQUEST = "Continue the text."
JSON_INSTRUCTION = "Reply with only a JSON object that matches this JSON Schema:"

#: keys of ``GenParams.extra`` that are ours, never sent to a provider
INTERNAL_PREFIX = "pflow_"

_CHUNK = re.compile(r"\s*\S+\s*|\s+")


def whitespace_chunks(text: str) -> list[str]:
    """Split ``text`` into chunks that each end at whitespace (or at the end)."""
    return _CHUNK.findall(text)


def word_usage(prompt: str, completion: str) -> Usage:
    """Usage counted in words, for backends without a tokenizer."""
    return Usage(prompt_tokens=len(prompt.split()), completion_tokens=len(completion.split()))


def provider_extra(params: GenParams) -> dict[str, Any]:
    """``params.extra`` without our own ``pflow_*`` keys."""
    return {k: v for k, v in params.extra.items() if not k.startswith(INTERNAL_PREFIX)}


def continuation_messages(prefix: str, *, prefill: bool) -> tuple[list[Message], str]:
    """The messages that ask a chat model to continue ``prefix``.

    Returns the messages and the trailing whitespace of the prefix that was held
    back (providers reject a prefilled assistant message ending in whitespace).
    """
    if prefill:
        head = prefix.rstrip()
        return [Message("user", PREFILL_REQUEST), Message("assistant", head)], prefix[len(head):]
    return [Message("system", CONTINUE_INSTRUCTION), Message("user", prefix)], ""


def clean_continuation(prefix: str, reply: str, held_back: str, *, prefill: bool) -> str:
    """Turn a chat reply into the continuation of ``prefix``."""
    if prefill:
        # the model continues after the stripped prefix; the held-back whitespace is
        # already in the caller's text, so do not add a second one
        return reply.lstrip() if held_back else reply
    if prefix and reply.startswith(prefix):  # the model repeated the text first
        return reply[len(prefix):]
    return reply


class ContinuationFilter:
    """:func:`clean_continuation` for a streamed reply: ``feed`` each chunk, then
    ``flush``. Text is held back only while it may still be an echo of the prefix
    (or, after a prefill with held-back whitespace, leading whitespace)."""

    def __init__(self, prefix: str, held_back: str, *, prefill: bool) -> None:
        self.prefix = prefix
        self.prefill = prefill
        self.strip_space = prefill and bool(held_back)
        self.buffer = ""
        self.decided = not (self.strip_space or (not prefill and prefix))

    def feed(self, text: str) -> str:
        if self.decided:
            return text
        self.buffer += text
        if self.strip_space:
            stripped = self.buffer.lstrip()
            if not stripped:
                return ""
            self.decided, self.buffer = True, ""
            return stripped
        if self.prefix.startswith(self.buffer):
            return ""  # may still be an echo of the prefix
        self.decided = True
        out, self.buffer = self.buffer, ""
        if out.startswith(self.prefix):
            out = out[len(self.prefix):]
        return out

    def finish(self, text: str) -> str:
        """The whole reply at once."""
        return self.feed(text) + self.flush()

    def flush(self) -> str:
        if self.decided:
            return ""
        self.decided = True
        out, self.buffer = self.buffer, ""
        if self.strip_space:
            return out.lstrip()
        return "" if out == self.prefix else out


async def continue_via_chat(backend: Backend, prefix: str, params: GenParams) -> Reply:
    """Continue ``prefix`` with a chat-only model (see the module table).

    Raises :class:`ModelError` from the backend's ``chat``.
    """
    prefill = backend.capabilities.prefill
    messages, held = continuation_messages(prefix, prefill=prefill)
    reply = await backend.chat(messages, params)
    return replace(reply, text=clean_continuation(prefix, reply.text, held, prefill=prefill))


async def stream_via_chat(backend: Backend, messages: list[Message] | None, prefix: str | None,
                          params: GenParams) -> AsyncIterator[StreamEvent]:
    """Stream without native streaming: one call, yielded as a single event.

    ``messages`` asks for a chat reply, otherwise ``prefix`` is continued (via
    ``complete``, which may itself be emulated). Raises :class:`ModelError`.
    """
    if messages is not None:
        reply = await backend.chat(messages, params)
    else:
        reply = await backend.complete(prefix or "", params)
    yield StreamEvent(reply.text, usage=reply.usage, finish_reason=reply.finish_reason or "stop")


def json_via_instructions(messages: list[Message], schema: dict[str, Any]) -> list[Message]:
    """Ask for JSON matching ``schema`` in words: appended to the system message
    (one is created first when there is none). The input list is not changed."""
    note = f"{JSON_INSTRUCTION}\n{json.dumps(schema, sort_keys=True)}"
    out = list(messages)
    for i, m in enumerate(out):
        if m.role == "system":
            out[i] = Message("system", f"{m.content.rstrip()}\n\n{note}" if m.content.strip() else note)
            return out
    return [Message("system", note), *out]


def no_scoring(model: str) -> CapabilityError:
    return CapabilityError(model, "cannot score continuations: the model gives no token "
                                  "log-probabilities (no emulation exists)")


def no_embeddings(model: str) -> CapabilityError:
    return CapabilityError(model, "is not an embedding model (no emulation exists)")
