"""Running a ``prompt`` handler: render its messages, call the model, parse and validate.

Messages are rendered in the sandboxed Jinja environment the checker used, in
the order written (``system``, ``user``, ``assistant`` parts; the short form is
one user message); ``demos`` rows are visible to every template.  A ``str``
return type is the reply text as it came.  Any other type asks for JSON:
natively (a JSON-schema response format) where the model can, otherwise through
instructions appended to the system message; the reply is parsed and validated,
and on failure the model is re-asked with the validation error, up to
``retries`` times.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ..check.program import HandlerInfo
from ..lang.templates import template_env
from ..lang.types import STR, LiteralType, OptionalType, RecordType, StrType, Type, json_schema
from ..lang.values import conform, for_template
from ..models.base import GenParams, Message
from ..models.emulate import json_via_instructions
from ..syntax import ast
from .errors import RunError

if TYPE_CHECKING:  # pragma: no cover
    from .context import RunContext
    from .trace import Step

_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?```\s*$", re.S)


@lru_cache(maxsize=1024)
def compiled(source: str) -> Any:
    """The compiled template for ``source`` (compiling costs far more than rendering)."""
    return template_env().from_string(source)


def render_messages(h: HandlerInfo, inputs: dict[str, Any]) -> list[Message]:
    """Render a prompt's messages.  Raises :class:`RunError` if a template fails at run time."""
    decl = h.decl
    assert isinstance(decl, ast.PromptDecl)
    variables = {k: for_template(v) for k, v in inputs.items()}
    if h.details.get("demos") is not None:
        variables["demos"] = for_template(h.details["demos"])
    out = []
    for msg in decl.messages:
        try:
            text = compiled(msg.text.value).render(**variables)
        except Exception as exc:  # a template error at run time (e.g. a none attribute)
            raise RunError(f"{msg.role} message of '{decl.name}' failed to render: {exc}",
                           span=msg.text.span, handler=decl.name) from None
        out.append(Message(msg.role, text))
    return out


def _is_text(t: Type) -> bool:
    base = t.inner if isinstance(t, OptionalType) else t
    return isinstance(base, StrType)


def parse_reply(text: str, t: Type) -> Any:
    """The value a reply stands for under return type ``t``.

    Raises ``ValueError`` with a message fit to send back to the model.
    """
    if _is_text(t):
        return text
    lit = t.inner if isinstance(t, OptionalType) else t
    if isinstance(lit, LiteralType):
        t = lit
        word = text.strip().rstrip(".").strip().strip("\"'`").strip().rstrip(".").strip()
        if word in t.values:
            return word
        for v in t.values:  # case-insensitive match, the values' own spelling returned
            if word.lower() == v.lower():
                return v
        raise ValueError(f"reply with exactly one of: {', '.join(json.dumps(v) for v in t.values)}")
    value = extract_json(text)
    return conform(value, t)


def extract_json(text: str) -> Any:
    """Parse the JSON value in a model reply (bare, fenced in ``` or inside prose).

    Raises ``ValueError`` when there is none.
    """
    s = text.strip()
    m = _FENCE.match(s)
    if m:
        s = m.group(1).strip()
    try:
        return json.loads(s)
    except json.JSONDecodeError:
        pass
    decoder = json.JSONDecoder()
    for i, ch in enumerate(s):
        if ch in "{[":
            try:
                value, _ = decoder.raw_decode(s, i)
                return value
            except json.JSONDecodeError:
                continue
    raise ValueError("the reply is not JSON")


async def run_prompt(ctx: RunContext, h: HandlerInfo, inputs: dict[str, Any], step: Step) -> Any:
    """Run prompt ``h``; returns the validated value.  Raises :class:`RunError`."""
    decl = h.decl
    assert isinstance(decl, ast.PromptDecl)
    name = ctx.program.display_name(h.key)
    messages = render_messages(h, inputs)
    ret = h.signature.returns
    model_name = decl.model.dotted if decl.model is not None else None
    _, backend, _ = ctx.backend_for(h, model_name)
    params = GenParams(extra=dict(h.details.get("params") or {}) | {"pflow_handler": name})
    base = ret.inner if isinstance(ret, OptionalType) else ret
    structured = not _is_text(ret) and not isinstance(base, LiteralType)
    if structured:
        schema = json_schema(ret)
        # Native structured output: hosted APIs need an object at the root (OpenAI's rule),
        # so other types are asked for through instructions there; the embedded model
        # takes any schema (it becomes a grammar).
        remote = type(backend).__name__ in ("LiteLLMBackend", "OpenAIHTTPBackend")
        if backend.capabilities.json_schema and (isinstance(ret, RecordType) or not remote):
            params = GenParams(json_schema=schema, extra=params.extra)
        else:
            messages = json_via_instructions(messages, schema)
    if h.details.get("hooks"):  # generated as a stream, hooks firing as text arrives
        from .hooks import run_hooked_prompt

        return await run_hooked_prompt(ctx, h, model_name, messages, params, step)
    retries = int(h.details.get("retries", 2))
    conversation = list(messages)
    last_error = ""
    usage = {"prompt_tokens": 0, "completion_tokens": 0}
    cost: float | None = None
    for attempt in range(retries + 1):
        reply, hit, model_id = await ctx.generate(h, model_name, conversation, params)
        usage["prompt_tokens"] += reply.usage.prompt_tokens
        usage["completion_tokens"] += reply.usage.completion_tokens
        if reply.usage.cost is not None:
            cost = (cost or 0.0) + reply.usage.cost
        ctx.annotate(step, messages=[m.as_dict() for m in conversation], reply=reply.text,
                     model=model_id, cache_hit=hit, attempts=attempt + 1,
                     usage=dict(usage), cost=cost)
        try:
            return parse_reply(reply.text, ret)
        except ValueError as exc:
            last_error = str(exc)
        conversation = [*conversation, Message("assistant", reply.text),
                        Message("user", f"That reply is not valid: {last_error}. Reply again with "
                                        f"only the corrected answer.")]
    expected = ret.show() if ret != STR else "text"
    raise RunError(f"prompt '{name}': the reply did not match {expected} after {retries + 1} "
                   f"attempt{'s' if retries else ''}: {last_error}",
                   span=decl.name_span, handler=name)
