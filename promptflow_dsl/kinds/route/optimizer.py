"""``pflow optimize``: instruction assignment by region-based joint search (Wang et al.,
2024, §3.3), under a budget of model calls.

1. The route's experts and demos are taken as they are (automatic experts: the
   cached k-means assignment of the route's file).  Every training row is routed to
   an expert by the route's own router; an expert's *pool* is its demos plus the
   training rows routed to it.
2. Every evaluation row is routed the same way: the rows an expert receives are its
   *region*.  An expert with an empty region keeps its instruction.
3. For each instruction expert, candidates are proposed by the route's model (its
   ``model`` clause, else ``default``) from a seeded sample of demos drawn, as in
   the paper, from the *other* experts' pools (the instruction complements the
   expert's own demos; ``propose_from`` can say ``own`` or ``all`` instead).  The
   proposal prompt is APE's "I gave a friend an instruction..." form.
4. Each candidate, and the expert's current instruction as the baseline, is scored
   only on the expert's region: the expert is run with that instruction (and its
   demos) on each input, and the reply counts when it equals the expected output
   (``exact``: text compared without case, surrounding space or a final full stop;
   other values as JSON data) or contains it (``contains``).  The best candidate per
   expert is kept; a tie keeps the earlier one, so the baseline wins ties.

Candidates are proposed and scored round-robin over the experts, so a budget that
runs out is shared fairly.  The budget counts chat calls that reached a model
(cache hits are free); a call that would exceed it is not made.  Delegating experts
are left as they are.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...lang.values import plain
from ...models.base import GenParams, Message, Reply
from ...runtime.context import RunContext
from ...runtime.errors import RunError
from .experts import Expert, RouteSpec, by_embedding, output_text, route_spec
from .routers import choose
from .run import call_expert, prepared_route

if TYPE_CHECKING:  # pragma: no cover
    from ...check.program import HandlerInfo

PROPOSAL = ("I gave a friend an instruction and some inputs. The friend read the instruction "
            "and wrote an output for every one of the inputs. Here are the input-output pairs:"
            "\n\n{pairs}\n\nWhat was the instruction? Reply with the instruction only, in one "
            "or two sentences, addressed to the friend.")
MATCHES = ("exact", "contains")
PROPOSE_FROM = ("others", "own", "all")


class BudgetExhausted(Exception):
    """The next model call would exceed the budget."""


class BudgetedContext(RunContext):
    """A run context that counts chat calls that reached a model and refuses more than
    ``budget``."""

    budget: int = 0
    spent: int = 0
    on_call: Callable[[], None] | None = None

    async def generate(self, h: HandlerInfo, model_name: str | None, messages: list[Message],
                       params: GenParams) -> tuple[Reply, bool, str]:
        if self.spent >= self.budget:
            raise BudgetExhausted()
        reply, hit, model_id = await super().generate(h, model_name, messages, params)
        if not hit:
            self.spent += 1
            if self.on_call is not None:
                self.on_call()
        return reply, hit, model_id


@dataclass
class Options:
    budget: int = 200
    candidates: int = 4
    match: str = "exact"
    propose_from: str = "others"
    sample: int = 6  # demos shown in one proposal prompt
    seed: int = 0


@dataclass
class ExpertResult:
    name: str
    region: int  # evaluation rows routed to this expert
    baseline: float | None
    best: str
    score: float | None
    candidates: list[tuple[str, float | None]] = field(default_factory=list)
    skipped: str = ""  # why the expert was not optimized

    @property
    def changed(self) -> bool:
        return bool(self.candidates) and self.best != self.candidates[0][0]


@dataclass
class Result:
    spec: RouteSpec
    experts: list[Expert]  # with the chosen instructions
    results: list[ExpertResult]
    train_routed: dict[str, int]
    calls: int
    budget: int
    exhausted: bool


def _norm(value: Any) -> Any:
    if isinstance(value, str):
        return re.sub(r"\s+", " ", value).strip().rstrip(".").strip().casefold()
    return plain(value)


def matches(got: Any, expected: Any, how: str) -> bool:
    """Whether a reply counts as right under ``exact`` or ``contains``."""
    if how == "contains":
        return str(_norm(output_text(expected))) in str(_norm(output_text(got)))
    if isinstance(expected, str) and not isinstance(got, str):
        return _norm(output_text(got)) == _norm(expected)
    return _norm(got) == _norm(expected)


def clean_instruction(text: str) -> str:
    s = text.strip().strip("`").strip()
    s = re.sub(r"^(the )?instruction( was)?\s*[:\-]\s*", "", s, flags=re.I)
    s = re.sub(r"\s+", " ", s).strip().strip("\"'").strip()
    return s[:600]


class _Search:
    def __init__(self, ctx: BudgetedContext, spec: RouteSpec, options: Options,
                 report: Callable[[str], None]) -> None:
        self.ctx = ctx
        self.spec = spec
        self.options = options
        self.report = report

    async def route(self, rows: list[dict[str, Any]], prep: Any) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {e.name: [] for e in self.spec.experts}
        with self.ctx.substep(self.spec.name, "route", None, {}) as sub:
            for row in rows:
                choice = await choose(self.ctx, self.spec, str(row["input"]), sub.step, prep)
                out[choice.expert].append(row)
        return out

    async def propose(self, expert: Expert, pool: list[dict[str, Any]], n: int) -> str | None:
        rng = random.Random(f"{self.options.seed}:{expert.name}:{n}")
        shown = rng.sample(pool, min(self.options.sample, len(pool)))
        pairs = "\n\n".join(f"Input: {r['input']}\nOutput: {output_text(r['output'])}"
                            for r in shown)
        messages = [Message("user", PROPOSAL.format(pairs=pairs))]
        params = GenParams(extra=dict(self.spec.params) | {"pflow_handler": self.spec.name})
        reply, _, _ = await self.ctx.generate(self.spec.h, self.spec.model, messages, params)
        text = clean_instruction(reply.text)
        return text or None

    async def score(self, expert: Expert, instruction: str, region: list[dict[str, Any]]) -> float:
        right = 0
        candidate = expert.with_instruction(instruction)
        for row in region:
            try:
                got = await call_expert(self.ctx, self.spec, candidate, str(row["input"]), None)
            except RunError:
                continue
            right += matches(got, row["output"], self.options.match)
        return right / len(region)


def _pools(spec: RouteSpec, train: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    pools = {}
    for e in spec.experts:
        seen: dict[str, dict[str, Any]] = {}
        for r in [*e.demos, *train.get(e.name, [])]:
            seen.setdefault(str(r["input"]), r)
        pools[e.name] = list(seen.values())
    return pools


async def optimize(ctx: BudgetedContext, h: HandlerInfo, train: list[dict[str, Any]],
                   evaluation: list[dict[str, Any]], options: Options,
                   report: Callable[[str], None] = lambda s: None) -> Result:
    """Search instructions for route ``h``'s experts (see the module docstring).

    Raises :class:`RunError` when routing fails (e.g. a rule with no default)."""
    ctx.budget = options.budget
    prep = None
    if by_embedding(h):
        prep = await prepared_route(ctx, h)
        spec = prep.spec
    else:
        spec = route_spec(h, ctx.program.display_name(h.key))
    search = _Search(ctx, spec, options, report)
    exhausted = False
    results = {e.name: ExpertResult(e.name, 0, None, e.instruction, None) for e in spec.experts}
    try:
        train_routed = await search.route(train, prep)
        regions = await search.route(evaluation, prep)
    except BudgetExhausted:
        raise RunError("the budget ran out while routing the training and evaluation rows "
                       "(the llm router calls the model once per row): raise --budget",
                       span=h.decl.name_span, handler=spec.name) from None
    pools = _pools(spec, train_routed)
    active: list[Expert] = []
    for e in spec.experts:
        r = results[e.name]
        r.region = len(regions[e.name])
        if e.delegate is not None:
            r.skipped = "delegates to a handler"
        elif not regions[e.name]:
            r.skipped = "no evaluation input is routed to it"
        else:
            active.append(e)
    try:
        for e in active:  # the baselines first
            report(f"{e.name}: scoring the current instruction")
            r = results[e.name]
            r.baseline = r.score = await search.score(e, e.instruction, regions[e.name])
            r.candidates.append((e.instruction, r.baseline))
        for n in range(options.candidates):
            for e in active:
                r = results[e.name]
                others = [row for f in spec.experts if f.name != e.name for row in pools[f.name]]
                pool = {"own": pools[e.name], "all": [*pools[e.name], *others]}.get(
                    options.propose_from, others) or pools[e.name]
                if not pool:
                    continue
                report(f"{e.name}: candidate {n + 1}/{options.candidates}")
                cand = await search.propose(e, pool, n)
                if cand is None or any(cand == c for c, _ in r.candidates):
                    continue
                value = await search.score(e, cand, regions[e.name])
                r.candidates.append((cand, value))
                if r.score is None or value > r.score:
                    r.best, r.score = cand, value
    except BudgetExhausted:
        exhausted = True
    experts = [e.with_instruction(results[e.name].best) if e.delegate is None else e
               for e in spec.experts]
    return Result(spec, experts, [results[e.name] for e in spec.experts],
                  {k: len(v) for k, v in train_routed.items()}, ctx.spent, options.budget,
                  exhausted)
