"""The rules of ``route`` (check stage): one string parameter, a known router, each
expert's ``when`` / delegate / instruction / demos as the router needs them, and
``experts auto``."""

from __future__ import annotations

from ...check.decls import (
    DEFAULT_RETRIES,
    accepts_question,
    check_model_ref,
    check_positive,
    check_settings,
    param_scope,
    read_jsonl,
)
from ...check.env import ModuleEnv
from ...check.exprs import ExprChecker
from ...check.program import Signature
from ...lang.types import STR, is_assignable
from .ast import RouteDecl
from .details import AutoDetails, ExpertDetails, RouteDetails

ROUTERS = ("embedding", "llm", "rule")
PROTOCOLS = ("pflow", "mop")


def check(env: ModuleEnv, d: RouteDecl, sig: Signature, ec: ExprChecker) -> RouteDetails:
    model, params = check_model_ref(env, d.model), check_settings(env, d.settings)
    if len(sig.params) != 1 or not is_assignable(sig.params[0].type, STR) \
            or not is_assignable(STR, sig.params[0].type):
        env.err(d.name_span, f"route '{d.name}' must take exactly one parameter of type str")
    by = d.by.name if d.by is not None else None
    if d.by is None:
        env.err(d.name_span, f"route '{d.name}' needs a router: `by embedding`, `by llm` or `by rule`")
    elif by not in ROUTERS:
        env.err(d.by.span, f"unknown router '{by}' (expected embedding, llm or rule)")
    protocol = "pflow"
    if d.protocol is not None:
        if d.protocol.name not in PROTOCOLS:
            env.err(d.protocol.span, f"unknown protocol '{d.protocol.name}' (expected "
                                     f"{' or '.join(PROTOCOLS)})")
        elif d.protocol.name == "mop" and by in ROUTERS and by != "embedding":
            env.err(d.protocol.span, "`protocol mop` needs `by embedding` (Mixture-of-Prompts "
                                     "routes by the nearest k-means centre)")
        else:
            protocol = d.protocol.name
    # `retries` (re-asks of the llm router and of an expert's reply): the route's own clause
    # once the syntax has one, else the default.
    retries = getattr(d, "retries", None)
    if retries is not None:
        check_positive(env, retries, "retries", 0)
    embed = None
    if d.embed is not None:
        if by != "embedding":
            env.err(d.embed.span, "`embed` is only used by `by embedding`")
        embed = check_model_ref(env, d.embed, embed=True)
    scope = param_scope(sig)
    experts: dict[str, ExpertDetails] = {}
    n = len(d.experts)
    for i, ex in enumerate(d.experts):
        expert_model = check_model_ref(env, ex.model)
        delegate = None
        demos = None
        if ex.when is not None:
            if by != "rule":
                env.err(ex.when.span, "`when` is only used by `by rule`")
            ec.check(ex.when, scope)
        elif by == "rule" and i != n - 1:
            env.err(ex.name_span, f"expert '{ex.name}' has no `when`: only the last expert may be "
                                  f"the default")
        if ex.delegate is not None:
            h = env.handler_by_ref(ex.delegate, f"delegate of expert '{ex.name}'")
            if h is not None:
                why = accepts_question(h)
                if why:
                    env.err(ex.delegate.span, f"'{ex.delegate.dotted}' cannot take the route's "
                                              f"input: {why}")
                elif not is_assignable(h.signature.returns, sig.returns):
                    env.err(ex.delegate.span, f"'{ex.delegate.dotted}' returns "
                                              f"{h.signature.returns.show()}, but route '{d.name}' "
                                              f"returns {sig.returns.show()}")
                delegate = h.key
        elif ex.instruction is None:
            env.err(ex.name_span, f"expert '{ex.name}' needs an `instruction` or `-> handler`")
        if ex.demos is not None:
            demos = read_jsonl(env, ex.demos, "demos file", need_io=True)
        elif by == "embedding":
            env.err(ex.name_span, f"expert '{ex.name}' needs `demos`: the embedding router "
                                  f"places each expert at the centroid of its demos")
        experts[ex.name] = ExpertDetails(
            model=expert_model, delegate=delegate, demos=demos,
            instruction=ex.instruction.value if ex.instruction is not None else None)
    auto = None
    if d.auto is not None:
        if by in ROUTERS and by != "embedding":
            env.err(d.auto.span, "`experts auto` needs `by embedding`")
        check_positive(env, d.auto.max_k, "max", 2)
        rows = read_jsonl(env, d.auto.path, "training file", need_io=True)
        path = env.project.resolve_file(env.path, d.auto.path.value, d.auto.path.span,
                                        "training file")[0] if rows is not None else None
        auto = AutoDetails(max_k=d.auto.max_k.value, rows=len(rows or []), demos=rows,
                           path=str(path) if path is not None else None)
        if rows is not None and len(rows) < d.auto.max_k.value:
            env.err(d.auto.max_k.span, f"max {d.auto.max_k.value} experts but the training file "
                                       f"has only {len(rows)} rows")
    return RouteDetails(model=model, params=params, by=by,
                        retries=retries.value if retries is not None else DEFAULT_RETRIES,
                        embed=embed, experts=experts, auto=auto, protocol=protocol)
