"""The three routers: which expert gets an input.

- ``by embedding``: the nearest centroid (``prepare.py``; under ``protocol mop`` the
  nearest k-means centre by Euclidean distance); the trace gets the distance to every
  expert.
- ``by rule``: each expert's ``when`` expression, evaluated with the route's parameter
  in scope, in the order written; the first that holds wins; an expert without
  ``when`` (the checker makes it the last) takes whatever is left; with no default
  and no rule holding, the call fails.
- ``by llm``: a router prompt lists the experts (name, instruction or delegate, up to
  three demo inputs) and asks for one name.  The reply is matched to the names without
  regard to case (surrounding quotes, backticks, asterisks and a final full stop are
  ignored); anything else is re-asked with the valid names, up to the route's
  ``retries`` (default 2), then the call fails.  The router runs on the route's
  ``model`` (else ``default``) as a ``router`` step of its own in the trace.

The llm router and instruction experts ask through
:func:`~promptflow_dsl.runtime.asking.ask_until_valid`, as prompts do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...models.base import GenParams, Message
from ...runtime.asking import NoValidReply, ask_until_valid
from ...runtime.errors import RunError
from ...runtime.ledger import Ledger

if TYPE_CHECKING:  # pragma: no cover
    from ...runtime.context import RunContext
    from ...runtime.trace import Step
    from .experts import RouteSpec
    from .prepare import PreparedRoute

ROUTER_DEMOS = 3
ROUTER_SYSTEM = ("You route requests to experts. Read the experts and the input, then reply "
                 "with the name of the one expert best suited to handle the input: the name "
                 "only, exactly as written, and nothing else.")


@dataclass
class Choice:
    """The expert chosen for an input, and why."""

    expert: str
    router: str
    distances: dict[str, float] | None = None
    rules: dict[str, bool] = field(default_factory=dict)  # rule routes: each `when` tried
    reply: str | None = None  # llm routes: the router's last reply
    metric: str = "cosine"  # embedding routes: the distance (`protocol mop`: euclidean-raw)

    def summary(self) -> str:
        if self.distances:
            shown = ", ".join(f"{n} {d:.3f}" for n, d in self.distances.items())
            what = "Euclidean distance to the k-means centres" if self.metric == "euclidean-raw" \
                else f"{self.metric} distance"
            return f"chose {self.expert} ({what}: {shown})"
        if self.router == "rule":
            return f"chose {self.expert} (first rule that holds)" if self.rules.get(self.expert) \
                else f"chose {self.expert} (the default: no rule holds)"
        return f"chose {self.expert} (the router replied {self.reply!r})"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"expert": self.expert, "router": self.router}
        if self.distances is not None:
            out["distances"] = self.distances
        if self.rules:
            out["rules"] = self.rules
        if self.reply is not None:
            out["reply"] = self.reply
        return out


def gen_params(spec: RouteSpec) -> GenParams:
    """The route's `params` plus the handler name scripted test models key their queues on."""
    return GenParams(extra=dict(spec.params) | {"pflow_handler": spec.name})


def match_name(reply: str, names: list[str]) -> str:
    """The expert ``reply`` names (case-insensitive).  Raises ``ValueError``."""
    word = reply.strip().strip("\"'`*[]()<> \t\n").rstrip(".").strip()
    for n in names:
        if word.lower() == n.lower():
            return n
    raise ValueError(f"{reply.strip()[:80]!r} is not one of the experts; reply with exactly "
                     f"one of: {', '.join(names)}")


def router_messages(ctx: RunContext, spec: RouteSpec, text: str) -> list[Message]:
    """The router prompt: the experts, the input, the valid names."""
    lines = ["Experts:"]
    for e in spec.experts:
        if e.delegate is not None:
            what = f"hands the input to '{ctx.program.display_name(e.delegate)}'"
        else:
            what = e.instruction or "(no instruction)"
        lines.append(f"- {e.name}: {what}")
        shown = e.inputs[:ROUTER_DEMOS]
        if shown:
            lines.append("  handles inputs such as: " + "; ".join(repr(s) for s in shown))
    lines += ["", "Input:", text, "", f"Reply with one of: {', '.join(spec.names)}."]
    return [Message("system", ROUTER_SYSTEM), Message("user", "\n".join(lines))]


async def choose_llm(ctx: RunContext, spec: RouteSpec, text: str, step: Step) -> Choice:
    seen: list[str] = []

    def validate(reply: str) -> str:
        seen.append(reply)
        return match_name(reply, spec.names)

    with ctx.substep(f"{spec.name} router", "router", step.id, {spec.param: text},
                     step.file, step.line) as sub:
        try:
            asked = await ask_until_valid(ctx, spec.h, spec.model, router_messages(ctx, spec, text),
                                          gen_params(spec), validate, retries=spec.retries,
                                          ledger=Ledger(ctx.trace, sub.step))
        except NoValidReply as exc:
            raise RunError(f"route '{spec.name}': the router did not name an expert after "
                           f"{exc.attempts} attempt{'s' if exc.attempts != 1 else ''}: {exc.error}",
                           span=spec.h.decl.name_span, handler=spec.name) from None
        sub.output = asked.value
    return Choice(asked.value, "llm", reply=seen[-1] if seen else None)


async def choose_rule(ctx: RunContext, spec: RouteSpec, text: str, step: Step) -> Choice:
    from ...runtime.evaluate import Evaluator

    ev = Evaluator(ctx, ctx.program.module_of(spec.h.key), caller=step.id)
    rules: dict[str, bool] = {}
    for e in spec.experts:
        if e.when is None:
            return Choice(e.name, "rule", rules=rules)
        holds = bool(await ev.eval(e.when, {spec.param: text}))
        rules[e.name] = holds
        if holds:
            return Choice(e.name, "rule", rules=rules)
    raise RunError(f"route '{spec.name}': no rule holds for this input and there is no default "
                   f"expert (an expert without `when`, written last)",
                   span=spec.h.decl.name_span, handler=spec.name)


async def choose(ctx: RunContext, spec: RouteSpec, text: str, step: Step,
                 prep: PreparedRoute | None = None) -> Choice:
    """The expert for ``text`` by the route's router (``prep``: the prepared embedding
    route).  Raises :class:`RunError`."""
    if spec.by == "rule":
        return await choose_rule(ctx, spec, text, step)
    if spec.by == "llm":
        return await choose_llm(ctx, spec, text, step)
    assert prep is not None
    name, dist = await prep.distances(text)
    metric = prep.centroids.metric if prep.centroids is not None else "cosine"
    return Choice(name, "embedding", distances=dist, metric=metric)
