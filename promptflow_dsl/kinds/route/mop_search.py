"""``pflow optimize`` under ``protocol mop``: Mixture-of-Prompts' region-based joint
search as published (Wang et al., 2024, §3.3, and the authors' code).

1. **Pooled candidates.**  Each instruction expert's proposals are made from the demos
   of *other* experts, as MoP's code picks them: the first expert from every other
   expert's demos, expert *i* > 1 from the experts before it (the published code's
   complement rule), each together with the rows no expert shows (the demos k-means
   trimmed, and training rows that are not demos).  Every proposal joins one pool.
2. **Global pre-selection.**  Every pooled candidate is scored as a zero-shot
   instruction (no demos) on the evaluation rows; the pool is sorted by score (ties:
   the instruction later in text order first, as MoP's ``sorted`` then ``reversed``),
   the top ``n_inits`` (4) are kept and the empty instruction is added.
3. **Padded regions.**  An expert's region is the evaluation rows routed to it; a
   region with fewer than ``region_size`` (20) rows is padded with the evaluation rows
   closest (cosine similarity of their ``Input: x\\nOutput: `` embedding) to the mean
   of the expert's demo vectors.
4. **Per-expert selection.**  Each pre-selected instruction is scored with the
   expert's demos on its padded region; the first with the highest score above 0
   wins.  When none scores above 0 (MoP then keeps no instruction at all) the
   top pre-selected one is kept.

**Budget.**  After routing, the calls left are split between the proposals and
pre-selection and, in equal shares, the experts, in proportion to what each part
would cost in full; a part that cannot afford it all scores on fewer rows (a seeded
sample), so every expert is scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .experts import Expert
from .optimizer import (
    BudgetExhausted,
    ExpertResult,
    Result,
    sample_rows,
    shares,
)

if TYPE_CHECKING:  # pragma: no cover
    from .optimizer import _Search
    from .prepare import PreparedRoute

Rows = list[dict[str, Any]]


def complements(names: Sequence[str]) -> dict[str, list[str]]:
    """Whose demos each expert's proposals are made from (MoP's rule: the first
    expert from all others, expert i > 1 from the experts before it)."""
    out: dict[str, list[str]] = {}
    for i, n in enumerate(names):
        out[n] = [m for m in names if m != n] if i == 0 else list(names[:i])
    return out


def preselect(scored: Sequence[tuple[str, float]], n_inits: int) -> list[str]:
    """The top ``n_inits`` instructions by score (ties: later text first), then ``""``."""
    ranked = sorted(scored, key=lambda cs: (cs[1], cs[0]), reverse=True)
    top = [c for c, _ in ranked[:n_inits]]
    return top + ([""] if "" not in top else [])


def padded_region(region: Rows, evaluation: Rows, similarity: Sequence[float], size: int
                  ) -> tuple[Rows, int]:
    """The region plus the most similar evaluation rows not in it, up to ``size`` rows
    (MoP's ``add_query``; ties: the later row first).  Returns (rows, how many added)."""
    rows = list(region)
    seen = {str(r["input"]) for r in rows}
    added = 0
    order = np.argsort(np.asarray(similarity, dtype=np.float64), kind="stable")[::-1]
    for i in order.tolist():
        if len(rows) >= size:
            break
        text = str(evaluation[i]["input"])
        if text not in seen:
            rows.append(evaluation[i])
            seen.add(text)
            added += 1
    return rows, added


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else 0.0


async def optimize_mop(search: _Search, prep: PreparedRoute | None, train: Rows,
                       evaluation: Rows, train_routed: dict[str, Rows],
                       regions: dict[str, Rows], routing_calls: int) -> Result:
    """The search above (``search`` carries the context, spec and options)."""
    ctx, spec, opt = search.ctx, search.spec, search.options
    assert prep is not None and prep.region_centres is not None
    results = {e.name: ExpertResult(e.name, len(regions[e.name]), None, e.instruction, None)
               for e in spec.experts}
    active = [e for e in spec.experts if e.delegate is None]
    for e in spec.experts:
        if e.delegate is not None:
            results[e.name].skipped = "delegates to a handler"
    names = [e.name for e in active]
    shown = {str(r["input"]) for e in spec.experts for r in e.demos}
    unshown = list(prep.trimmed) + [r for r in train if str(r["input"]) not in shown]
    k, c, n_eval = len(active), opt.candidates, len(evaluation)
    want = {e.name: min(n_eval, max(opt.region_size, len(regions[e.name]))) for e in active}
    per = opt.n_inits + 1
    full_a = k * c * (1 + n_eval)
    full_b = sum(per * w for w in want.values())
    left = max(0, opt.budget - ctx.spent)
    share_a = left if full_a + full_b <= left else left * full_a // max(1, full_a + full_b)
    share_b = shares(left - share_a, names) if full_a + full_b > left else \
        {n: per * want[n] for n in names}
    exhausted = False
    # 1. proposals, pooled
    ctx.charge_to("pre-selection", share_a)
    pool: list[str] = []
    demos = {e.name: list(e.demos) for e in active}
    comp = complements(names)
    try:
        for e in active:
            material = [r for m in comp[e.name] for r in demos[m]] + unshown or demos[e.name]
            for n in range(c):
                search.report(f"{e.name}: proposal {n + 1}/{c}")
                cand = await search.propose(e, material, n) if material else None
                if cand is not None and cand not in pool:
                    pool.append(cand)
    except BudgetExhausted:
        exhausted = True
    # 2. global pre-selection on the evaluation rows (as many as the share allows)
    spent_a = ctx.used.get("pre-selection", 0)
    m1 = min(n_eval, max(1, (share_a - spent_a) // max(1, len(pool)))) if pool else 0
    pre_rows = sample_rows(evaluation, m1, f"{opt.seed}:pre-selection")
    scored: list[tuple[str, float]] = []
    try:
        for cand in pool:
            search.report("pre-selecting the pooled candidates")
            zero_shot = Expert(name="candidate", instruction=cand, span=spec.h.decl.name_span)
            scored.append((cand, await search.score(zero_shot, cand, pre_rows)))
    except BudgetExhausted:
        exhausted = True
    chosen = preselect(scored, opt.n_inits)
    pre_calls = ctx.used.get("pre-selection", 0)
    ctx.charge_to(None)
    # 3-4. per-expert selection on padded regions
    vectors = [await prep.embed(str(r["input"])) for r in evaluation]
    for e in active:
        r = results[e.name]
        r.share = share_b[e.name]
        m2 = min(want[e.name], r.share // max(1, len(chosen)))
        if m2 <= 0:
            r.skipped = "the budget has no calls left for it"
            continue
        centre = prep.region_centres.get(e.name)
        sim = [cosine(np.asarray(v, dtype=np.float64), centre) if centre is not None else 0.0
               for v in vectors]
        own = sample_rows(regions[e.name], m2, f"{opt.seed}:{e.name}")
        rows, r.padded = padded_region(own, evaluation, sim, min(opt.region_size, m2))
        r.scored_on = len(rows)
        ctx.charge_to(e.name, r.share)
        best, best_score = None, 0.0
        try:
            for cand in chosen:
                search.report(f"{e.name}: scoring {len(r.candidates) + 1}/{len(chosen)}")
                value = await search.score(e, cand, rows)
                r.candidates.append((cand, value))
                if cand == e.instruction:
                    r.baseline = value
                if value > best_score:
                    best, best_score = cand, value
        except BudgetExhausted:
            exhausted = True
        r.spent = ctx.used.get(e.name, 0)
        ctx.charge_to(None)
        if best is None:
            best = chosen[0] if chosen else e.instruction
            best_score = next((v or 0.0 for cnd, v in r.candidates if cnd == best), 0.0)
        r.best, r.score = best, best_score if r.candidates else None
    experts = [e.with_instruction(results[e.name].best) if e.delegate is None else e
               for e in spec.experts]
    if ctx.spent >= opt.budget:
        exhausted = True
    return Result(spec, experts, [results[e.name] for e in spec.experts],
                  {n: len(v) for n, v in train_routed.items()}, ctx.spent, opt.budget, exhausted,
                  protocol="mop", routing_calls=routing_calls,
                  pool=sorted(scored, key=lambda cs: (cs[1], cs[0]), reverse=True),
                  preselected=chosen, preselect_rows=len(pre_rows), preselect_calls=pre_calls,
                  prep=prep)
