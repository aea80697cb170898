"""Running a ``route`` handler (Mixture-of-Prompts): choose an expert, then call it.

The router (:mod:`.routers`) picks one expert for the input; the
choice is recorded in ``RunContext.routed`` (what ``routed(route)`` reads in tests),
as a ``route`` event on the route's trace step (with the distance to every expert
for ``by embedding``, the rules tried for ``by rule``) and in the step's
``extra["route"]``.

An instruction expert is one chat call, traced as a step ``route[expert]`` of kind
``expert``: its instruction as the system message (none when empty), each demo as
a user / assistant turn, then the input as the user message.  The reply is parsed
and validated against the route's return type as a prompt's is (JSON for non-text
types, natively where the model can), re-asked up to the route's ``retries``.  The
expert answers on its own ``model``, else the route's, else ``default``.  A
delegating expert calls its handler with the input as its first argument.

Preparing a ``by embedding`` route (embedding the demos, assigning automatic
experts) happens once per route and run.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import TYPE_CHECKING, Any

from ...lang.types import STR
from ...models.base import Message
from ...runtime.asking import NoValidReply, ask_until_valid, parse_reply, structured_request
from ...runtime.errors import RunError
from ...runtime.ledger import Ledger
from .experts import Expert, RouteSpec, by_embedding, output_text, route_spec
from .routers import choose, gen_params

if TYPE_CHECKING:  # pragma: no cover
    from ...check.program import HandlerInfo
    from ...runtime.context import RunContext
    from ...runtime.trace import Step
    from .prepare import PreparedRoute

_prepared: weakref.WeakKeyDictionary[Any, dict[Any, Any]] = weakref.WeakKeyDictionary()


async def prepared_route(ctx: RunContext, h: HandlerInfo, step: Step | None = None
                         ) -> PreparedRoute:
    """The prepared ``by embedding`` route ``h`` of this run (prepared on first use)."""
    try:
        from .prepare import prepare
    except ImportError as exc:  # numpy missing
        raise RunError(f"`by embedding` routes need numpy ({exc}); install it with "
                       f"`pip install numpy`", span=h.decl.name_span, handler=h.name) from None
    state = _prepared.setdefault(ctx, {})
    # one lock per route and event loop (a harness runs each call in a loop of its own)
    lock = state.setdefault(("lock", h.key, id(asyncio.get_running_loop())), asyncio.Lock())
    async with lock:
        prep = state.get(h.key)
        if prep is None:
            prep = state[h.key] = await prepare(ctx, h)
            if step is not None and prep.embedder is not None:
                n = sum(len(e.demos) for e in prep.experts)
                auto = f"; {len(prep.experts)} automatic experts" if prep.assignment else ""
                ctx.trace.event(step, "embed", f"{n} demo inputs placed with the {prep.embedder.label} "
                                               f"embedder ({prep.cache.hits} cached){auto}",
                                embedder=prep.embedder.id, demos=n, cached=prep.cache.hits)
    return prep


def expert_messages(expert: Expert, text: str) -> list[Message]:
    """An instruction expert's conversation: instruction, demo turns, then the input."""
    out = [Message("system", expert.instruction)] if expert.instruction else []
    for d in expert.demos:
        out += [Message("user", str(d["input"])), Message("assistant", output_text(d["output"]))]
    out.append(Message("user", text))
    return out


async def call_expert(ctx: RunContext, spec: RouteSpec, expert: Expert, text: str,
                      caller: str | None) -> Any:
    """Run ``expert`` on ``text`` (see the module docstring).  Raises :class:`RunError`."""
    if expert.delegate is not None:
        target = ctx.handler(expert.delegate)
        first = target.signature.params[0].name
        return await ctx.call(expert.delegate, {first: text},
                              call_span=expert.delegate_span or spec.h.decl.name_span,
                              caller=caller)
    span = expert.span or spec.h.decl.name_span
    ret = spec.h.signature.returns
    model_name = spec.model_of(expert)
    _, backend, _ = ctx.backend_for(spec.h, model_name)
    messages, params = structured_request(backend.capabilities, ret, expert_messages(expert, text),
                                          gen_params(spec))
    with ctx.substep(f"{spec.name}[{expert.name}]", "expert", caller, {spec.param: text},
                     span.file, span.line) as sub:
        try:
            asked = await ask_until_valid(ctx, spec.h, model_name, messages, params,
                                          lambda t: parse_reply(t, ret), retries=spec.retries,
                                          ledger=Ledger(ctx.trace, sub.step))
        except NoValidReply as exc:
            expected = ret.show() if ret != STR else "text"
            raise RunError(f"route '{spec.name}', expert '{expert.name}': the reply did not match "
                           f"{expected} after {exc.attempts} attempt{'s' if exc.attempts != 1 else ''}"
                           f": {exc.error}", span=spec.h.decl.name_span, handler=spec.name) from None
        sub.output = asked.value
    return asked.value


async def run(ctx: RunContext, h: HandlerInfo, inputs: dict[str, Any], step: Step) -> Any:
    """Run route ``h``: choose an expert, record the choice, call the expert."""
    name = ctx.program.display_name(h.key)
    if by_embedding(h):
        prep = await prepared_route(ctx, h, step)
        spec = prep.spec
    else:
        prep, spec = None, route_spec(h, name)
    text = inputs[spec.param]
    choice = await choose(ctx, spec, text, step, prep)
    ctx.routed[h.key] = choice.expert
    ctx.trace.event(step, "route", choice.summary(), **choice.as_dict())
    step.extra["route"] = ctx.trace.scrub(choice.as_dict())
    return await call_expert(ctx, spec, spec.expert(choice.expert), text, step.id)
