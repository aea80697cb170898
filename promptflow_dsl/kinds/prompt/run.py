"""Running a ``prompt`` handler: render its messages, call the model, parse and validate.

Messages are rendered in the sandboxed Jinja environment the checker used, in
the order written (``system``, ``user``, ``assistant`` parts; the short form is
one user message); ``demos`` rows are visible to every template.  The reply is
asked for, read and re-asked as :mod:`.asking` says (a ``str`` return type is the
reply text as it came; other types are JSON, natively where the model can, else by
instructions), up to ``retries`` re-asks.  A completion prompt renders its one text
the same way and sends it raw (:mod:`.completion`).
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ...check.program import HandlerInfo
from ...lang.templates import template_env
from ...lang.types import STR
from ...lang.values import for_template
from ...models.base import Message
from ...runtime.asking import NoValidReply, ask_until_valid, parse_reply, structured_request
from ...runtime.errors import RunError
from ...runtime.ledger import Ledger
from .ast import PromptDecl
from .completion import call_params, run_completion
from .details import PromptDetails

if TYPE_CHECKING:  # pragma: no cover
    from ...runtime.context import RunContext
    from ...runtime.trace import Step


@lru_cache(maxsize=1024)
def compiled(source: str) -> Any:
    """The compiled template for ``source`` (compiling costs far more than rendering)."""
    return template_env().from_string(source)


def _variables(h: HandlerInfo, inputs: dict[str, Any]) -> dict[str, Any]:
    assert isinstance(h.details, PromptDetails)
    variables = {k: for_template(v) for k, v in inputs.items()}
    if h.details.demos is not None:
        variables["demos"] = for_template(h.details.demos)
    if h.details.shots is not None:
        variables["shots"] = h.details.shots
    return variables


def _render(source: Any, variables: dict[str, Any], what: str, name: str) -> str:
    try:
        return str(compiled(source.value).render(**variables))
    except Exception as exc:  # a template error at run time (e.g. a none attribute)
        raise RunError(f"{what} of '{name}' failed to render: {exc}",
                       span=source.span, handler=name) from None


def render_messages(h: HandlerInfo, inputs: dict[str, Any]) -> list[Message]:
    """Render a prompt's messages (none for a completion prompt).  Raises
    :class:`RunError` if a template fails at run time."""
    decl = h.decl
    assert isinstance(decl, PromptDecl)
    variables = _variables(h, inputs)
    return [Message(msg.role, _render(msg.text, variables, f"{msg.role} message", decl.name))
            for msg in decl.messages]


def render_completion(h: HandlerInfo, inputs: dict[str, Any]) -> str:
    """Render a completion prompt's text (``shots``, ``demos`` and the inputs in scope),
    exactly as it is sent.  Raises :class:`RunError` if the template fails at run time."""
    decl = h.decl
    assert isinstance(decl, PromptDecl) and decl.completion is not None
    return _render(decl.completion, _variables(h, inputs), "completion text", decl.name)


async def run(ctx: RunContext, h: HandlerInfo, inputs: dict[str, Any], step: Step) -> Any:
    """Run prompt ``h``; returns the validated value.  Raises :class:`RunError`."""
    decl = h.decl
    details = h.details
    assert isinstance(decl, PromptDecl) and isinstance(details, PromptDetails)
    name = ctx.program.display_name(h.key)
    model_name = decl.model.dotted if decl.model is not None else None
    if details.completion:
        return await run_completion(ctx, h, model_name, render_completion(h, inputs), step)
    messages = render_messages(h, inputs)
    ret = h.signature.returns
    _, backend, _ = ctx.backend_for(h, model_name)
    asked_for = call_params(details, name)
    messages, params = structured_request(backend.capabilities, ret, messages, asked_for)
    if asked_for.stop and not params.stop:  # a response schema keeps the `stop` clause
        params = replace(params, stop=asked_for.stop)
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
