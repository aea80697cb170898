"""How a hooked generation continues from edited text, per model capability.

After a hook fires, the model must go on writing *after* the edited text. The
strategy is chosen from the backend's :class:`~promptflow_dsl.models.base.Capabilities`:

============  =====================================================================
strategy      when / what is sent
============  =====================================================================
``prefill``   ``prefill`` — the prompt's messages plus the text so far as a partly
              written assistant message.  ``local/smollm2`` renders its own chat
              template, cuts it at that text and continues by **raw completion**
              (exactly the prompt the first generation saw, plus the text); a
              provider with native prefill (Anthropic) continues the message.
              Trailing whitespace is held back (providers reject it, and a BPE
              model writes ``" 84"`` as one token after ``"="``, not after ``"= "``);
              the continuation's leading whitespace is then dropped.
``completion``  ``completion`` without ``prefill``, where the prompt the model's **own**
              chat template gives is known — **raw completion** of that prompt (up
              to where the assistant writes) and the text so far, with the
              template's end of turn as a stop. A remote model knows its template
              from its server profile (``models/profiles.py``: llama.cpp's
              ``/props``, the GGUF of a llama-cpp-python server, or the model
              parameter ``chat_template``; ``backend.chat_transcript``); a remote
              model whose template is not known continues with ``prompt`` instead.
              Mocked models (no ``chat_transcript``) get a ChatML transcript
              (``<|im_start|>role\\ncontent<|im_end|>``).  On remote models the raw
              completion is one ``complete`` call (their ``stream`` continues a
              prefix through the chat emulation), yielded as a single chunk.
``prompt``    chat only — a continuation prompt: the messages, the text so far as
              an assistant message, then the user message :data:`CONTINUE_REQUEST`.
              An echo of the text is cut off (``ContinuationFilter``), and a space
              is added when the model starts a word right after a word.
============  =====================================================================

The first generation is always the prompt's own chat request, streamed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace

from ...models.base import Backend, GenParams, Message, StreamEvent
from ...models.emulate import ContinuationFilter

CONTINUE_REQUEST = ("Continue your last reply exactly where it stops, without repeating any of "
                    "it. Reply with the continuation only.")
CHATML_END = "<|im_end|>"

Opener = Callable[[Backend, GenParams], AsyncIterator[StreamEvent]]


def strategy_for(backend: Backend) -> str:
    """``prefill``, ``completion`` or ``prompt`` (see the module docstring)."""
    caps = backend.capabilities
    if caps.prefill:
        return "prefill"
    if caps.completion and transcript(backend, [Message("user", "")]) is not None:
        return "completion"
    return "prompt"


def transcript(backend: Backend, messages: list[Message]) -> tuple[str, tuple[str, ...]] | None:
    """The raw-completion prompt for ``messages`` (up to where the assistant writes) and
    the stop strings ending the assistant's turn: the backend's own chat template when it
    offers one (``chat_transcript``), ChatML for backends without it (mocks); None when
    the backend cannot tell (a remote server whose template is unknown)."""
    own = getattr(backend, "chat_transcript", None)
    if own is None:
        return chatml(messages), (CHATML_END,)
    found = own(messages)
    return found if found is not None else None


def chatml(messages: list[Message]) -> str:
    """The messages as a ChatML transcript that ends where the assistant writes."""
    turns = "".join(f"<|im_start|>{m.role}\n{m.content}{CHATML_END}\n" for m in messages)
    return turns + "<|im_start|>assistant\n"


@dataclass
class Request:
    """One generation of a hooked call: how to open its stream and how to clean its
    text. ``params`` are the handler-level parameters for this generation."""

    open: Opener
    params: GenParams
    clean: Callable[[str], str]
    flush: Callable[[], str]
    description: str


def _identity(text: str) -> str:
    return text


def _nothing() -> str:
    return ""


def first_request(messages: list[Message], params: GenParams) -> Request:
    """The prompt's own chat request, streamed."""
    def open_(backend: Backend, merged: GenParams) -> AsyncIterator[StreamEvent]:
        return backend.stream(list(messages), None, merged)

    return Request(open_, params, _identity, _nothing, "chat")


def continue_request(strategy: str, messages: list[Message], text: str, params: GenParams,
                     stop: tuple[str, ...], backend: Backend | None = None) -> Request:
    """The request that continues ``text`` (the edited text so far) with ``strategy``.

    ``stop`` is the merged stop list of the call (the handler's ``params`` override
    the model's, so any extra stop string is added to it here). ``backend`` gives the
    chat template of the ``completion`` strategy (ChatML without it).
    """
    if not text.strip():
        return first_request(messages, params)
    if strategy == "prefill":
        head = text.rstrip()
        held = text[len(head):]
        cont = ContinuationFilter(text, held, prefill=True)
        msgs = [*messages, Message("assistant", head)]

        def open_prefill(backend: Backend, merged: GenParams) -> AsyncIterator[StreamEvent]:
            return backend.stream(msgs, None, merged)

        return Request(open_prefill, params, cont.feed, cont.flush, "prefill")
    found = None
    if strategy == "completion":
        found = (transcript(backend, messages) if backend is not None
                 else (chatml(messages), (CHATML_END,)))
    if found is not None:
        head, ends = found
        prefix = head + text
        p = replace(params, stop=tuple(dict.fromkeys([*stop, *ends])))

        def open_raw(backend: Backend, merged: GenParams) -> AsyncIterator[StreamEvent]:
            return raw_stream(backend, prefix, merged)

        return Request(open_raw, p, _identity, _nothing, "completion")
    cont = ContinuationFilter(text, "", prefill=False)
    msgs = [*messages, Message("assistant", text), Message("user", CONTINUE_REQUEST)]
    state = {"first": True}

    def clean(piece: str) -> str:
        out = cont.feed(piece)
        if out and state["first"]:
            state["first"] = False
            if text[-1:].isalnum() and out[:1].isalnum():
                out = " " + out
        return out

    def open_prompt(backend: Backend, merged: GenParams) -> AsyncIterator[StreamEvent]:
        return backend.stream(msgs, None, merged)

    return Request(open_prompt, params, clean, cont.flush, "prompt")


def raw_stream(backend: Backend, prefix: str, params: GenParams) -> AsyncIterator[StreamEvent]:
    """A raw completion of ``prefix``, as a stream.

    ``LiteLLMBackend.stream`` (and the OpenAI fast path built on it) continues a prefix
    through its chat emulation even when the model has a completion endpoint, so on
    those models the continuation is one non-streamed ``complete`` call, yielded as a
    single chunk: triggers fire at the same place (they do not depend on chunking),
    but the text after a trigger point is generated before it is dropped. Every other
    backend (the local model, mocks) streams the prefix itself.
    """
    from ...models.remote import LiteLLMBackend

    if isinstance(backend, LiteLLMBackend):
        return _complete_as_stream(backend, prefix, params)
    return backend.stream(None, prefix, params)


async def _complete_as_stream(backend: Backend, prefix: str,
                              params: GenParams) -> AsyncIterator[StreamEvent]:
    """One ``complete`` call as a stream of one text event and the final event.
    Raises :class:`ModelError`."""
    reply = await backend.complete(prefix, params)
    if reply.text:
        yield StreamEvent(reply.text)
    yield StreamEvent("", usage=reply.usage, finish_reason=reply.finish_reason or "stop")
