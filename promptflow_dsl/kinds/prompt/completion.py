"""Running a completion prompt: its one text, rendered, sent as a raw completion.

A completion prompt (``completion "..."``) is not a chat: the rendered text is sent
exactly as it is — no chat template, no system message, no format instructions, no
response schema — to the model's completion operation (``Backend.complete``:
``/v1/completions`` on an OpenAI-compatible server, litellm's ``text_completion``,
``create_completion`` on the embedded model; a scripted model in a test replays its
replies), with the prompt's ``stop`` strings.

The reply's surrounding whitespace is dropped (a completion goes on from the text, so
it usually starts with a space) and the rest is read under the return type as a chat
reply is (:func:`~promptflow_dsl.runtime.asking.parse_reply`: text as it is, a
literal by its word, anything else as the JSON found in it).  A reply that does not
read is not answered with a re-ask (a completion has no turn to say what was wrong):
the same text is sent again, up to ``retries`` times, only when the call samples
(temperature above 0, each identical request getting a sample of its own); a greedy
call would only get the same reply back, so it fails at once.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ...lang.types import STR
from ...models.base import GenParams
from ...runtime.asking import cut_off, parse_reply
from ...runtime.errors import RunError
from ...runtime.ledger import Ledger
from .details import PromptDetails

if TYPE_CHECKING:  # pragma: no cover
    from ...check.program import HandlerInfo
    from ...runtime.context import RunContext
    from ...runtime.trace import Step


def call_params(details: Any, name: str) -> GenParams:
    """The handler-level parameters of a prompt's call (chat or completion): its ``params``, and
    as stop strings the ``stop`` clause's followed by any ``stop`` of its ``params``
    (without a ``stop`` clause, the ``params`` and the model's own apply as for any
    call)."""
    params = GenParams(extra=dict(details.params) | {"pflow_handler": name})
    if not details.stop:
        return params
    own = details.params.get("stop")
    more = (own,) if isinstance(own, str) else tuple(own or ())
    return replace(params, stop=tuple(dict.fromkeys([*details.stop, *more])))


async def run_completion(ctx: RunContext, h: HandlerInfo, model_name: str | None, text: str,
                         step: Step) -> Any:
    """Send ``text`` (the rendered completion text of prompt ``h``) as a raw completion
    and return the reply read under the prompt's return type.

    Raises :class:`RunError`: the model cannot complete raw text (a ``--model``
    override to a chat-only model), the model fails (a context window too small
    included), or no reply reads as the return type."""
    details = h.details
    assert isinstance(details, PromptDetails)
    name = ctx.program.display_name(h.key)
    model_id, backend, _ = ctx.backend_for(h, model_name)
    if not backend.capabilities.completion:
        raise RunError(f"prompt '{name}' is a completion prompt, and model '{model_id}' cannot "
                       f"complete raw text (it is chat-only)", span=h.decl.name_span,
                       handler=name)
    params = call_params(details, name)
    ret = h.signature.returns
    merged = ctx.registry.gen_params(ctx.backend_for(h, model_name)[2], params)
    sampled = bool(merged.temperature)
    ledger = Ledger(ctx.trace, step)
    attempts = 1 + (details.retries if sampled else 0)
    error = ""
    for done in range(1, attempts + 1):
        reply, hit, used = await ctx.complete(h, model_name, text, params)
        ledger.record(reply.usage, hit, used)
        ledger.attempted(done)
        ctx.annotate(step, reply=reply.text, extra={"prompt": text, "completion": True})
        try:
            return parse_reply(reply.text.strip(), ret)
        except ValueError as exc:
            error = str(exc)
        if reply.finish_reason == "length":
            error = f"{error} ({cut_off(ctx, h, model_name, params)})"
            break
    expected = ret.show() if ret != STR else "text"
    raise RunError(f"prompt '{name}': the completion did not read as {expected} after {done} "
                   f"attempt{'s' if done != 1 else ''}: {error}", span=h.decl.name_span,
                   handler=name)
