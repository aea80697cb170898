"""Asking a model for a value: the reply format, reading the reply, and re-asking.

One path for every technique that wants a typed answer in a chat (prompts, route
experts, the llm router, sketch holes):

- :func:`structured_request` decides how a return type is asked for: text and
  literal unions as they are; anything else as JSON, natively (a JSON-schema
  response format) where the backend's capabilities allow it — a backend with
  ``json_schema_object_only`` (hosted APIs) only for an object at the root — and
  otherwise through instructions appended to the system message;
- :func:`parse_reply` reads a reply under a return type (``ValueError`` with a
  message fit to send back to the model);
- :func:`ask_until_valid` is the validate-and-re-ask loop: call, validate, and on an
  invalid reply append it and the reason to the conversation and ask again, at most
  ``retries + 1`` times, every call recorded on the step's :class:`Ledger`.

A reply that stopped at the token limit (``finish_reason == "length"``) and does not
validate says so in its error (``the reply is not JSON (cut off at max_tokens=50: a
complete answer must be shorter)``).  It is re-asked once with that error; a second
cut-off reply ends the loop at once, since the same re-ask under the same limit would
be cut off the same way (the remaining retries are not spent).

Reading a reply is linear in its length (:func:`extract_json`), and a reply longer
than :data:`LARGE_REPLY` (256 KiB) is read in a worker thread.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..lang import jsondata
from ..lang.types import (
    LiteralType,
    OptionalType,
    RecordType,
    StrType,
    Type,
    TypeValidationError,
    has_constraints,
    json_schema,
)
from ..lang.values import conform
from ..models.base import Capabilities, GenParams, Message
from ..models.emulate import json_via_instructions

if TYPE_CHECKING:  # pragma: no cover
    from ..check.program import HandlerInfo
    from .context import RunContext
    from .ledger import Ledger

LARGE_REPLY = 256 * 1024
"""Replies longer than this (in characters) are read and validated in a worker thread,
so that parsing a large reply never holds up the other calls of the run."""

_START = re.compile(r"[{\[]")


def reask(error: str) -> str:
    """The user turn after an invalid reply (prompts, route experts, the llm router)."""
    return f"That reply is not valid: {error}. Reply again with only the corrected answer."


def _base(t: Type) -> Type:
    return t.inner if isinstance(t, OptionalType) else t


def is_text(t: Type) -> bool:
    """``str`` or ``str?``: the reply text is the value."""
    return isinstance(_base(t), StrType)


def structured_request(caps: Capabilities, ret: Type, messages: list[Message],
                       params: GenParams) -> tuple[list[Message], GenParams]:
    """The messages and parameters that ask for a value of type ``ret`` (see the module
    docstring)."""
    if is_text(ret) or isinstance(_base(ret), LiteralType):
        return messages, params
    schema = json_schema(ret)
    if caps.json_schema and (isinstance(ret, RecordType) or not caps.json_schema_object_only):
        return messages, GenParams(json_schema=schema, extra=params.extra)
    return json_via_instructions(messages, schema), params


def parse_reply(text: str, t: Type) -> Any:
    """The value a reply stands for under return type ``t``.

    Raises ``ValueError`` with a message fit to send back to the model.
    """
    if is_text(t):
        if has_constraints(t):  # str(max_length=...): the text must meet them
            try:
                return conform(text, t)
            except TypeValidationError as exc:
                raise ValueError(exc.message) from None
        return text
    lit = _base(t)
    if isinstance(lit, LiteralType):
        word = text.strip().rstrip(".").strip().strip("\"'`").strip().rstrip(".").strip()
        if word in lit.values:
            return word
        for v in lit.values:  # case-insensitive match, the values' own spelling returned
            if word.lower() == v.lower():
                return v
        raise ValueError(f"reply with exactly one of: {', '.join(json.dumps(v) for v in lit.values)}")
    value = extract_json(text)
    return conform(value, t)


def unfence(s: str) -> str:
    """The body of a reply fenced in ``` (with an optional language tag), else ``s``.
    Linear in the length of ``s`` (no backtracking pattern). Never raises."""
    if len(s) < 6 or not s.startswith("```") or not s.endswith("```"):
        return s
    i = 3
    while i < len(s) and s[i].isascii() and s[i].isalpha():
        i += 1
    body = s[i:-3]
    return body.strip()


def extract_json(text: str) -> Any:
    """Parse the JSON value in a model reply (bare, fenced in ``` or inside prose): the
    whole text, else the first value that starts at a ``{`` or ``[`` and parses.

    Linear in the length of the reply: after a start that does not parse, the search
    goes on after the point where the parser stopped (a start inside a failed
    candidate is not tried again).  The value is bounded JSON data
    (:mod:`promptflow_dsl.lang.jsondata`: nesting, integer digits, text).

    Raises ``ValueError`` when there is none, or when the JSON is past those bounds.
    """
    s = unfence(text.strip())
    try:
        return jsondata.loads(s)
    except jsondata.NotJSONData:
        raise
    except json.JSONDecodeError:
        pass
    decoder = json.JSONDecoder()
    i = _START.search(s)
    while i is not None:
        start = i.start()
        try:
            return jsondata.raw_decode(decoder, s, start)[0]
        except json.JSONDecodeError as exc:
            resume = max(exc.pos, start + 1)
        i = _START.search(s, resume)
    raise ValueError("the reply is not JSON")


def cut_off(ctx: RunContext, h: HandlerInfo, model_name: str | None, params: GenParams) -> str:
    """``cut off at max_tokens=N`` for a reply that stopped at the token limit, N the limit
    the call was made with (the handler's over the model's).  Never raises."""
    try:
        _, _, model_params = ctx.backend_for(h, model_name)
        limit = ctx.registry.gen_params(model_params, params).max_tokens
    except Exception:  # noqa: BLE001 - the message only
        limit = params.max_tokens
    if limit is None:
        return "cut off at max_tokens (the model's default limit)"
    return f"cut off at max_tokens={limit}"


class NoValidReply(Exception):
    """No reply validated: ``attempts`` made, the last ``error`` and the last ``answer``
    (after ``clean``).  Callers turn it into a :class:`RunError` in their own words."""

    def __init__(self, attempts: int, error: str, answer: str) -> None:
        super().__init__(error)
        self.attempts = attempts
        self.error = error
        self.answer = answer


@dataclass
class Asked:
    """A valid answer and the attempts it took."""

    value: Any
    attempts: int


async def ask_until_valid(ctx: RunContext, h: HandlerInfo, model_name: str | None,
                          messages: list[Message], params: GenParams,
                          validate: Callable[[str], Any], *, retries: int, ledger: Ledger,
                          show: bool = True, reask: Callable[[str], str] = reask,
                          clean: Callable[[str], str] | None = None,
                          first: tuple[str, str] | None = None) -> Asked:
    """Chat until ``validate(answer)`` returns (it raises ``ValueError`` with the reason to
    send back), at most ``retries + 1`` attempts.

    Every call goes through :meth:`RunContext.generate` (cache, limits, the model) for
    handler ``h`` and is recorded on ``ledger``; with ``show`` the step also gets the
    messages sent and the reply of each attempt.  ``clean`` turns a reply into the
    answer to validate (the conversation keeps the reply as written); ``first`` is an
    earlier invalid answer and its error, counted as the first attempt (shown to the
    model unless blank).  Raises :class:`NoValidReply`, or :class:`RunError` when the
    model fails.  A cut-off reply is re-asked at most once (see the module docstring).
    """
    conversation = list(messages)
    done = 0
    answer, error = "", ""
    cut_reasked = False
    if first is not None:
        answer, error = first
        done = 1
        if answer.strip():
            conversation += [Message("assistant", answer.strip()), Message("user", reask(error))]
    while done < retries + 1:
        done += 1
        reply, hit, model_id = await ctx.generate(h, model_name, conversation, params)
        ledger.record(reply.usage, hit, model_id)
        ledger.attempted(done)
        if show:
            ctx.annotate(ledger.step, messages=[m.as_dict() for m in conversation], reply=reply.text)
        answer = clean(reply.text) if clean is not None else reply.text
        try:
            if len(answer) > LARGE_REPLY:  # parsing may take a while: off the event loop
                return Asked(await asyncio.to_thread(validate, answer), done)
            return Asked(validate(answer), done)
        except ValueError as exc:
            error = str(exc)
        if reply.finish_reason == "length":
            error = f"{error} ({cut_off(ctx, h, model_name, params)}: a complete answer must be shorter)"
            if cut_reasked:  # re-asking once more would be cut off the same way
                break
            cut_reasked = True
        conversation = [*conversation, Message("assistant", reply.text), Message("user", reask(error))]
    ledger.attempted(done)
    raise NoValidReply(done, error, answer)
