"""``pflow route explain``: why a route sends an input to the expert it does.

For ``by embedding`` the table lists every expert with its cosine distance to the
input (nearest first) and its number of demos; for ``by rule`` every expert's
``when`` and whether it holds (rules after the first that holds are not evaluated);
for ``by llm`` the experts and the router's reply (one model call, through the
response cache).  The chosen expert is marked with ``→``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .emit import cut
from .experts import by_embedding, route_spec
from .routers import choose
from .run import prepared_route

if TYPE_CHECKING:  # pragma: no cover
    from ...check.program import HandlerInfo
    from ...runtime.context import RunContext


async def explain(ctx: RunContext, h: HandlerInfo, text: str) -> dict[str, Any]:
    """The routing decision for ``text`` as data.  Raises ``RunError``."""
    name = ctx.program.display_name(h.key)
    with ctx.substep(name, "route", None, {"input": text}) as sub:
        prep = None
        if by_embedding(h):
            prep = await prepared_route(ctx, h, sub.step)
            spec = prep.spec
        else:
            spec = route_spec(h, name)
        choice = await choose(ctx, spec, text, sub.step, prep)
        sub.output = choice.expert
    source = ctx.program.sources.get(ctx.program.module_of(h.key).uri, "")
    rows = []
    for e in spec.experts:
        row: dict[str, Any] = {"expert": e.name, "chosen": e.name == choice.expert,
                               "demos": len(e.demos)}
        if e.delegate is not None:
            row["delegate"] = ctx.program.display_name(e.delegate)
        if choice.distances is not None:
            row["distance"] = choice.distances.get(e.name)
        if spec.by == "rule":
            row["when"] = cut(source, e.when.span) if e.when is not None and source else None
            row["holds"] = choice.rules.get(e.name)
        rows.append(row)
    if choice.distances is not None:
        rows.sort(key=lambda r: (r["distance"] if r["distance"] is not None else 9.0))
    out: dict[str, Any] = {"route": name, "by": spec.by, "input": text, "chosen": choice.expert,
                           "experts": rows}
    if prep is not None and prep.embedder is not None:
        out["embedder"] = prep.embedder.label
        out["metric"] = prep.centroids.metric if prep.centroids else "cosine"
        if prep.assignment is not None:
            out["auto"] = {"k": prep.assignment.k, "criterion": prep.assignment.criterion}
    if choice.reply is not None:
        out["reply"] = choice.reply
    return out


def render(report: dict[str, Any]) -> str:
    """The decision as a plain-text table."""
    by = report["by"]
    head = f"route {report['route']}  (by {by}"
    if "embedder" in report:
        head += f"; {report['embedder']} embedder, {report['metric']} distance"
    head += ")"
    lines = [head, f"input: {report['input']!r}", ""]
    width = max([len("expert"), *(len(r["expert"]) for r in report["experts"])])
    if by == "embedding":
        lines.append(f"  {'expert':<{width}}  {'distance':>8}  {'demos':>5}")
        for r in report["experts"]:
            mark = "→" if r["chosen"] else " "
            d = "-" if r.get("distance") is None else f"{r['distance']:.4f}"
            lines.append(f"{mark} {r['expert']:<{width}}  {d:>8}  {r['demos']:>5}"
                         + (f"  -> {r['delegate']}" if r.get("delegate") else ""))
    elif by == "rule":
        lines.append(f"  {'expert':<{width}}  {'holds':<5}  when")
        for r in report["experts"]:
            mark = "→" if r["chosen"] else " "
            holds = {True: "yes", False: "no", None: "-"}[r.get("holds")]
            when = r.get("when") or "(default)"
            lines.append(f"{mark} {r['expert']:<{width}}  {holds:<5}  {when}")
    else:
        lines.append(f"  {'expert':<{width}}  demos")
        for r in report["experts"]:
            mark = "→" if r["chosen"] else " "
            lines.append(f"{mark} {r['expert']:<{width}}  {r['demos']:>5}")
        lines.append("")
        lines.append(f"router replied: {report.get('reply')!r}")
    if "auto" in report:
        crit = ", ".join(f"K={k}: {v:.3f}" for k, v in sorted(report["auto"]["criterion"].items()))
        lines.append("")
        lines.append(f"automatic experts: K={report['auto']['k']} (inertia_K/inertia_1 + 0.02K: "
                     f"{crit or 'one cluster'})")
    lines.append("")
    lines.append(f"chosen: {report['chosen']}")
    return "\n".join(lines)
