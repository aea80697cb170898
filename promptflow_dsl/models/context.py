"""Context-window overflow: one message for every backend.

A request whose prompt (plus the tokens asked for) does not fit the model's context
window fails for good (retrying cannot help): the embedded model finds it before
evaluating anything (:func:`overflow`), an OpenAI-compatible server answers 400 with
its own words (OpenAI and vLLM: "maximum context length is 4096 tokens. However,
you requested 5000 tokens (4744 in the messages, 256 in the completion)"; llama.cpp:
"the request exceeds the available context size" with ``n_prompt_tokens`` and
``n_ctx``; litellm: ``ContextWindowExceededError``), which :func:`from_server`
recognises and restates with the numbers it names.  Either way the error is a
:class:`ContextOverflow`, a non-retryable :class:`~.base.ModelError` whose message
names the prompt's tokens and the window; the runtime adds the handler and its
location.
"""

from __future__ import annotations

import re

from .base import ModelError

_SIGNS = re.compile(r"context[ _-]?(length|window|size)|maximum context|exceed_context|"
                    r"ContextWindowExceeded|too many tokens|prompt is too long", re.I)
_WINDOW = re.compile(r"(?:maximum context length is|context (?:window|length|size) of|"
                     r"n_ctx[\"']?\s*[:=]\s*)\s*(\d[\d,]*)", re.I)
_PROMPT = re.compile(r"(\d[\d,]*) in the (?:messages|prompt)|n_prompt_tokens[\"']?\s*[:=]\s*"
                     r"(\d[\d,]*)|(?:prompt|input) (?:has|is|of|contains) (\d[\d,]*) tokens", re.I)
_ASKED = re.compile(r"(?:requested|resulted in) (\d[\d,]*) tokens", re.I)
_COMPLETION = re.compile(r"(\d[\d,]*) in the completion", re.I)


class ContextOverflow(ModelError):
    """The prompt (with ``max_tokens``) does not fit the context window.  ``prompt_tokens``
    and ``window`` are None where the server did not say."""

    def __init__(self, model: str, message: str, *, prompt_tokens: int | None,
                 window: int | None, status: int | None = None) -> None:
        super().__init__(model, message, status=status, retryable=False)
        self.prompt_tokens = prompt_tokens
        self.window = window


def describe(prompt_tokens: int | None, window: int | None, max_tokens: int | None = None) -> str:
    """``the prompt (2,844 tokens) does not fit the context window of 2,048 tokens`` (with
    ``max_tokens`` when it is what tips it over)."""
    where = f"the context window of {window:,} tokens" if window else "the model's context window"
    if prompt_tokens is None:
        return f"the prompt does not fit {where}"
    if max_tokens and (window is None or prompt_tokens < window):
        return (f"the prompt ({prompt_tokens:,} tokens) and max_tokens ({max_tokens:,}) do not "
                f"fit {where}")
    return f"the prompt ({prompt_tokens:,} tokens) does not fit {where}"


def overflow(model: str, prompt_tokens: int, window: int, max_tokens: int | None,
             hint: str) -> ContextOverflow:
    """The error of a request found too long before it is sent; ``hint`` says what to do."""
    return ContextOverflow(model, f"{describe(prompt_tokens, window, max_tokens)}: {hint}",
                           prompt_tokens=prompt_tokens, window=window)


def _number(pattern: re.Pattern[str], text: str) -> int | None:
    m = pattern.search(text)
    if m is None:
        return None
    digits = next(g for g in m.groups() if g)
    return int(digits.replace(",", ""))


def from_server(exc: ModelError) -> ModelError:
    """``exc`` restated as a :class:`ContextOverflow` when it is a server's "context
    length exceeded" answer (an HTTP 400, or litellm's ``ContextWindowExceededError``),
    else ``exc`` itself.  Never raises."""
    text = str(exc.args[0]) if exc.args else ""
    text += _fields(exc)
    if isinstance(exc, ContextOverflow) or exc.status not in (400, 413, None) \
            or not _SIGNS.search(text):
        return exc
    if exc.status is None and "ContextWindowExceeded" not in text:
        return exc
    window = _number(_WINDOW, text)
    prompt = _number(_PROMPT, text)
    max_tokens = _number(_COMPLETION, text)
    if prompt is None:
        asked = _number(_ASKED, text)
        if asked is not None and max_tokens is not None:
            prompt = asked - max_tokens
    said = (str(exc.args[0]) if exc.args else "").removeprefix(f"{exc.model}: ")
    out = ContextOverflow(exc.model, f"{describe(prompt, window, max_tokens)} (the server "
                                     f"said: {said})", prompt_tokens=prompt, window=window,
                          status=exc.status)
    out.__cause__ = exc
    return out


def _fields(exc: BaseException) -> str:
    """llama.cpp's ``n_prompt_tokens`` and ``n_ctx`` from the error body an exception
    of the chain kept (litellm and the OpenAI SDK keep it as ``body``), as text."""
    seen = 0
    cause: BaseException | None = exc
    while cause is not None and seen < 8:
        body = getattr(cause, "body", None)
        error = body.get("error", body) if isinstance(body, dict) else None
        if isinstance(error, dict):
            return "".join(f" {k}={v}" for k in ("n_prompt_tokens", "n_ctx")
                           if isinstance(v := error.get(k), int))
        cause, seen = cause.__cause__ or cause.__context__, seen + 1
    return ""
