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

**A fair budget.**  The budget counts chat calls that reached a model (cache hits
are free).  What is left after routing is split evenly over the experts to optimize
(:func:`shares`); each expert scores its instructions on as many rows of its region
as let its baseline and at least one candidate fit in its share (:func:`rows_for`; a
seeded sample of the region when it is larger), so every expert is scored.
Candidates are proposed and scored round-robin; a call that would exceed an expert's
share (or the budget) is not made.  :meth:`Result.spending` says how it went.
Delegating experts are left as they are.

**Held-back rows.**  :func:`split_holdout` keeps a seeded share of the evaluation
rows away from the search; :func:`compare` then runs each through the route as it
was and the optimized route: wins, losses, ties and the win rate (a tie counts half)
with a 95% Wilson interval.

Under ``protocol mop`` the search is MoP's own (:mod:`.mop_search`).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
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
    """The next model call would exceed the budget (or the current account's share)."""


class BudgetedContext(RunContext):
    """A run context that counts chat calls that reached a model and refuses more than
    ``budget``.  Calls are also charged to the current *account* (an expert, or a phase
    of the search): one whose ``limits`` share is spent refuses further calls."""

    budget: int = 0
    spent: int = 0
    on_call: Callable[[], None] | None = None
    account: str | None = None
    limits: dict[str, int]
    used: dict[str, int]

    def charge_to(self, account: str | None, limit: int | None = None) -> None:
        """Charge the next calls to ``account`` (with its share ``limit``, if new)."""
        if not hasattr(self, "limits"):
            self.limits, self.used = {}, {}
        self.account = account
        if account is not None:
            self.used.setdefault(account, 0)
            if limit is not None:
                self.limits[account] = limit

    async def generate(self, h: HandlerInfo, model_name: str | None, messages: list[Message],
                       params: GenParams) -> tuple[Reply, bool, str]:
        if self.spent >= self.budget:
            raise BudgetExhausted()
        acc = self.account
        if acc is not None and self.used.get(acc, 0) >= self.limits.get(acc, self.budget):
            raise BudgetExhausted()
        reply, hit, model_id = await super().generate(h, model_name, messages, params)
        if not hit:
            self.spent += 1
            if acc is not None:
                self.used[acc] = self.used.get(acc, 0) + 1
            if self.on_call is not None:
                self.on_call()
        return reply, hit, model_id


@dataclass
class Options:
    budget: int = 200
    candidates: int = 4  # proposals per expert
    match: str = "exact"
    propose_from: str = "others"
    sample: int = 6  # demos shown in one proposal prompt (MoP: 5)
    seed: int = 0
    protocol: str | None = None  # None: the route's own (`protocol mop` or pflow's)
    n_inits: int = 4  # MoP: candidates kept by the global pre-selection
    region_size: int = 20  # MoP: rows each region is padded to


@dataclass
class ExpertResult:
    name: str
    region: int  # evaluation rows routed to this expert
    baseline: float | None
    best: str
    score: float | None
    candidates: list[tuple[str, float | None]] = field(default_factory=list)
    skipped: str = ""  # why the expert was not optimized
    share: int = 0  # model calls set aside for this expert
    spent: int = 0  # model calls it made
    scored_on: int = 0  # rows each instruction was scored on
    padded: int = 0  # MoP: rows added to the region by similarity

    @property
    def changed(self) -> bool:
        return bool(self.candidates) and self.best != self.candidates[0][0]


@dataclass
class WinRate:
    """The optimized route against the un-optimized one on held-back rows: a win is a
    row only the optimized route gets right, a loss the reverse; the rate counts a tie
    as half a win, with a 95% Wilson interval."""

    n: int
    wins: int
    losses: int
    ties: int
    before: float  # accuracy of the un-optimized route
    after: float
    calls: int  # model calls the comparison made (outside the budget)

    @property
    def rate(self) -> float:
        return (self.wins + self.ties / 2) / self.n if self.n else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.rate, self.n)


def wilson(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``p`` over ``n`` trials."""
    if n <= 0:
        return 0.0, 1.0
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


@dataclass
class Result:
    spec: RouteSpec
    experts: list[Expert]  # with the chosen instructions
    results: list[ExpertResult]
    train_routed: dict[str, int]
    calls: int
    budget: int
    exhausted: bool
    protocol: str = "pflow"
    routing_calls: int = 0
    pool: list[tuple[str, float]] = field(default_factory=list)  # MoP: pooled, pre-selected
    preselected: list[str] = field(default_factory=list)  # MoP: top n_inits plus ""
    preselect_rows: int = 0  # MoP: evaluation rows the pool was scored on
    preselect_calls: int = 0
    heldout: WinRate | None = None
    prep: Any = None  # the prepared embedding route (for the held-back comparison)

    def spending(self) -> list[str]:
        """How the budget was spent, one line per part."""
        lines = [f"routing the training and evaluation rows: {self.routing_calls} calls"]
        if self.protocol == "mop":
            lines.append(f"proposals and pre-selection: {self.preselect_calls} calls "
                         f"({len(self.pool)} pooled candidates scored on "
                         f"{self.preselect_rows} evaluation rows)")
        for r in self.results:
            if r.skipped:
                lines.append(f"{r.name}: 0 calls (kept: {r.skipped})")
            else:
                lines.append(f"{r.name}: {r.spent} of {r.share} calls, {len(r.candidates)} "
                             f"instructions scored on {r.scored_on} rows"
                             + (f" ({r.padded} added by similarity)" if r.padded else ""))
        return lines


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


def shares(total: int, names: list[str]) -> dict[str, int]:
    """``total`` calls split evenly over ``names`` (the remainder to the first ones)."""
    if not names:
        return {}
    each, extra = divmod(max(0, total), len(names))
    return {n: each + (1 if i < extra else 0) for i, n in enumerate(names)}


def rows_for(share: int, region: int, per_row_instructions: int = 2) -> int:
    """How many region rows an expert's instructions are scored on so that its baseline
    and at least one candidate (its proposal plus its scoring) fit in ``share``."""
    if share <= 0 or region <= 0:
        return 0
    return min(region, max(1, (share - 1) // per_row_instructions))


def sample_rows(rows: list[dict[str, Any]], m: int, key: str) -> list[dict[str, Any]]:
    """``m`` of ``rows`` (a seeded sample, in their order); all when ``m >= len(rows)``."""
    if m >= len(rows):
        return list(rows)
    keep = sorted(random.Random(key).sample(range(len(rows)), m))
    return [rows[i] for i in keep]


def split_holdout(rows: list[dict[str, Any]], fraction: float, seed: int = 0
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(search rows, held-back rows): ``round(fraction * n)`` rows, a seeded sample, are
    held back (at least one search row stays)."""
    n = len(rows)
    k = min(max(0, round(fraction * n)), max(0, n - 1))
    held = set(random.Random(f"holdout:{seed}").sample(range(n), k)) if k else set()
    return ([r for i, r in enumerate(rows) if i not in held],
            [r for i, r in enumerate(rows) if i in held])


async def _prepare(ctx: BudgetedContext, h: HandlerInfo, options: Options
                   ) -> tuple[RouteSpec, Any]:
    if by_embedding(h):
        prep = await prepared_route(ctx, h)
        return prep.spec, prep
    return route_spec(h, ctx.program.display_name(h.key)), None


async def optimize(ctx: BudgetedContext, h: HandlerInfo, train: list[dict[str, Any]],
                   evaluation: list[dict[str, Any]], options: Options,
                   report: Callable[[str], None] = lambda s: None) -> Result:
    """Search instructions for route ``h``'s experts (see the module docstring; under
    ``protocol mop``, :func:`~.mop_search.optimize_mop`).

    Raises :class:`RunError` when routing fails (e.g. a rule with no default)."""
    ctx.budget = options.budget
    ctx.charge_to(None)
    spec, prep = await _prepare(ctx, h, options)
    protocol = options.protocol or spec.protocol
    search = _Search(ctx, spec, options, report)
    try:
        train_routed = await search.route(train, prep)
        regions = await search.route(evaluation, prep)
    except BudgetExhausted:
        raise RunError("the budget ran out while routing the training and evaluation rows "
                       "(the llm router calls the model once per row): raise --budget",
                       span=h.decl.name_span, handler=spec.name) from None
    routing_calls = ctx.spent
    if protocol == "mop":
        from .mop_search import optimize_mop

        return await optimize_mop(search, prep, train, evaluation, train_routed, regions,
                                  routing_calls)
    results = {e.name: ExpertResult(e.name, 0, None, e.instruction, None) for e in spec.experts}
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
    # a fair budget: what is left after routing is split evenly over the experts to
    # optimize, and each expert scores on as many of its region's rows as let its
    # baseline and at least one candidate fit in its share
    share = shares(options.budget - ctx.spent, [e.name for e in active])
    scored: dict[str, list[dict[str, Any]]] = {}
    for e in list(active):
        r = results[e.name]
        r.share = share[e.name]
        r.scored_on = rows_for(r.share, r.region)
        if not r.scored_on:
            r.skipped = "the budget has no calls left for it"
            active.remove(e)
            continue
        scored[e.name] = sample_rows(regions[e.name], r.scored_on, f"{options.seed}:{e.name}")
    done: set[str] = set()
    exhausted = False

    async def step(e: Expert, work: Callable[[], Any]) -> None:
        nonlocal exhausted
        if e.name in done:
            return
        ctx.charge_to(e.name, results[e.name].share)
        try:
            await work()
        except BudgetExhausted:
            done.add(e.name)
            exhausted = True
        finally:
            results[e.name].spent = ctx.used.get(e.name, 0)
            ctx.charge_to(None)

    for e in active:  # the baselines first
        async def baseline(e: Expert = e) -> None:
            report(f"{e.name}: scoring the current instruction")
            r = results[e.name]
            r.baseline = r.score = await search.score(e, e.instruction, scored[e.name])
            r.candidates.append((e.instruction, r.baseline))
        await step(e, baseline)
    for n in range(options.candidates):
        for e in active:
            async def candidate(e: Expert = e, n: int = n) -> None:
                r = results[e.name]
                others = [row for f in spec.experts if f.name != e.name for row in pools[f.name]]
                pool = {"own": pools[e.name], "all": [*pools[e.name], *others]}.get(
                    options.propose_from, others) or pools[e.name]
                if not pool:
                    return
                report(f"{e.name}: candidate {n + 1}/{options.candidates}")
                cand = await search.propose(e, pool, n)
                if cand is None or any(cand == c for c, _ in r.candidates):
                    return
                value = await search.score(e, cand, scored[e.name])
                r.candidates.append((cand, value))
                if r.score is None or value > r.score:
                    r.best, r.score = cand, value
            await step(e, candidate)
    if ctx.spent >= options.budget:
        exhausted = True
    experts = [e.with_instruction(results[e.name].best) if e.delegate is None else e
               for e in spec.experts]
    return Result(spec, experts, [results[e.name] for e in spec.experts],
                  {k: len(v) for k, v in train_routed.items()}, ctx.spent, options.budget,
                  exhausted, protocol="pflow", routing_calls=routing_calls, prep=prep)


async def compare(ctx: BudgetedContext, result: Result, rows: list[dict[str, Any]],
                  how: str) -> WinRate:
    """The optimized route against the un-optimized one on ``rows`` (held back: the
    search never saw them).  Outside the budget.  Raises :class:`RunError`."""
    ctx.budget = ctx.spent + 10**9
    ctx.charge_to(None)
    prep = result.prep
    before_spec = result.spec
    after_spec = replace(result.spec, experts=result.experts)
    start = ctx.spent
    wins = losses = ties = right_before = right_after = 0
    with ctx.substep(result.spec.name, "route", None, {}) as sub:
        for row in rows:
            text = str(row["input"])
            ok = []
            for spec in (before_spec, after_spec):
                choice = await choose(ctx, spec, text, sub.step, prep)
                try:
                    got = await call_expert(ctx, spec, spec.expert(choice.expert), text, None)
                except RunError:
                    ok.append(False)
                    continue
                ok.append(matches(got, row["output"], how))
            right_before += ok[0]
            right_after += ok[1]
            wins += ok[1] and not ok[0]
            losses += ok[0] and not ok[1]
            ties += ok[0] == ok[1]
    n = len(rows)
    return WinRate(n, wins, losses, ties, right_before / n if n else 0.0,
                   right_after / n if n else 0.0, ctx.spent - start)
