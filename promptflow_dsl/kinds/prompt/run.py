"""Running a ``prompt`` handler: render its messages, call the model, parse and validate.

Messages are rendered in the sandboxed Jinja environment the checker used, in
the order written (``system``, ``user``, ``assistant`` parts; the short form is
one user message); ``demos`` rows are visible to every template.  The reply is
asked for, read and re-asked as :mod:`.asking` says (a ``str`` return type is the
reply text as it came; other types are JSON, natively where the model can, else by
instructions), up to ``retries`` re-asks.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ...check.program import HandlerInfo
from ...lang.templates import template_env
from ...lang.types import STR
from ...lang.values import for_template
from ...models.base import GenParams, Message
from ...runtime.asking import NoValidReply, ask_until_valid, parse_reply, structured_request
from ...runtime.errors import RunError
from ...runtime.ledger import Ledger
from .ast import PromptDecl
from .details import PromptDetails

if TYPE_CHECKING:  # pragma: no cover
    from ...runtime.context import RunContext
    from ...runtime.trace import Step


@lru_cache(maxsize=1024)
def compiled(source: str) -> Any:
    """The compiled template for ``source`` (compiling costs far more than rendering)."""
    return template_env().from_string(source)


def render_messages(h: HandlerInfo, inputs: dict[str, Any]) -> list[Message]:
    """Render a prompt's messages.  Raises :class:`RunError` if a template fails at run time."""
    decl = h.decl
    assert isinstance(decl, PromptDecl) and isinstance(h.details, PromptDetails)
    variables = {k: for_template(v) for k, v in inputs.items()}
    if h.details.demos is not None:
        variables["demos"] = for_template(h.details.demos)
    out = []
    for msg in decl.messages:
        try:
            text = compiled(msg.text.value).render(**variables)
        except Exception as exc:  # a template error at run time (e.g. a none attribute)
            raise RunError(f"{msg.role} message of '{decl.name}' failed to render: {exc}",
                           span=msg.text.span, handler=decl.name) from None
        out.append(Message(msg.role, text))
    return out


async def run(ctx: RunContext, h: HandlerInfo, inputs: dict[str, Any], step: Step) -> Any:
    """Run prompt ``h``; returns the validated value.  Raises :class:`RunError`."""
    decl = h.decl
    details = h.details
    assert isinstance(decl, PromptDecl) and isinstance(details, PromptDetails)
    name = ctx.program.display_name(h.key)
    messages = render_messages(h, inputs)
    ret = h.signature.returns
    model_name = decl.model.dotted if decl.model is not None else None
    _, backend, _ = ctx.backend_for(h, model_name)
    params = GenParams(extra=dict(details.params) | {"pflow_handler": name})
    messages, params = structured_request(backend.capabilities, ret, messages, params)
    if details.hooks:  # generated as a stream, hooks firing as text arrives
        from .hooks import run_hooked_prompt

        return await run_hooked_prompt(ctx, h, model_name, messages, params, step)
    try:
        asked = await ask_until_valid(ctx, h, model_name, messages, params,
                                      lambda text: parse_reply(text, ret), retries=details.retries,
                                      ledger=Ledger(ctx.trace, step))
    except NoValidReply as exc:
        expected = ret.show() if ret != STR else "text"
        raise RunError(f"prompt '{name}': the reply did not match {expected} after {exc.attempts} "
                       f"attempt{'s' if exc.attempts != 1 else ''}: {exc.error}",
                       span=decl.name_span, handler=name) from None
    return asked.value
