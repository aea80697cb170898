"""The rules of ``flow`` (check stage): one binding per name, one return, no cycle
among the statements, every expression typed, unused names warned about."""

from __future__ import annotations

from graphlib import CycleError, TopologicalSorter

from ...check.constraints import fits
from ...check.decls import clean_since, param_scope
from ...check.env import ModuleEnv
from ...check.exprs import ExprChecker, free_names, mismatch_note
from ...check.program import Signature
from ...lang.types import ANY, RecordType, extra_fields, is_assignable
from ...syntax import ast
from .ast import FlowDecl
from .details import FlowDetails


def check(env: ModuleEnv, d: FlowDecl, sig: Signature, ec: ExprChecker) -> FlowDetails:
    mark = len(env.diags)
    assigns: dict[str, ast.Assign] = {}
    returns: list[ast.Return] = []
    params = {p.name for p in sig.params}
    for st in d.body:
        if isinstance(st, ast.Return):
            if returns:
                env.err(st.span, f"flow '{d.name}' has more than one return",
                        (returns[0].span, "first return here"))
            returns.append(st)
        elif st.name in params:
            env.err(st.name_span, f"'{st.name}' is a parameter of '{d.name}' and cannot be assigned")
        elif st.name in assigns:
            env.err(st.name_span, f"'{st.name}' is assigned twice; each name is bound once in a flow",
                    (assigns[st.name].name_span, "first assigned here"))
        else:
            assigns[st.name] = st
    if not returns:
        env.err(d.name_span, f"flow '{d.name}' has no return statement")
    # Dependencies between statements decide the order; a cycle is an error.
    deps: dict[str, set[str]] = {n: {x.name for x in free_names(a.value) if x.name in assigns}
                                 for n, a in assigns.items()}
    scope_cycle: set[str] = set()
    while True:
        try:
            order = list(TopologicalSorter(deps).static_order())
            break
        except CycleError as exc:
            cycle = list(exc.args[1][:-1])
            cycle.reverse()  # graphlib lists a cycle from dependent to dependency
            steps = [assigns[n] for n in cycle]
            first = min(steps, key=lambda a: (a.span.line, a.span.col))
            k = steps.index(first)
            steps = steps[k:] + steps[:k]
            names = " -> ".join([a.name for a in steps] + [first.name])
            env.err(first.name_span, f"cycle in flow '{d.name}': {names}",
                    *[(a.name_span, f"'{a.name}' is part of the cycle") for a in steps[1:]])
            scope_cycle.update(cycle)
            for n in cycle:  # cut the cycle and keep ordering the rest
                deps[n] = set()
    scope = param_scope(sig)
    for n in scope_cycle:  # typed `any` up front so the cycle is reported once
        scope.vars[n] = ANY
        scope.used.add(n)
    for name in order:
        a = assigns[name]
        scope.vars[name] = ec.check(a.value, scope)
    for r in returns:
        t = ec.check(r.value, scope)
        if not fits(env, r.value, sig.returns, f"flow '{d.name}' returns"):
            continue
        if not is_assignable(t, sig.returns):
            env.err(r.value.span, f"flow '{d.name}' returns {sig.returns.show()}, "
                                  f"but this is {t.show()}{mismatch_note(t, sig.returns)}")
        elif isinstance(t, RecordType) and isinstance(sig.returns, RecordType) \
                and isinstance(r.value, ast.RecordExpr):
            for extra in extra_fields(t, sig.returns):
                env.err(r.value.span, f"field '{extra}' is not in the return type {sig.returns.show()}")
    clean = clean_since(env, mark)
    for name, a in assigns.items() if clean else ():
        if name not in scope.used:
            env.warn(a.name_span, f"'{name}' is assigned but never used")
    for p in d.params if clean else ():
        if p.name not in scope.used:
            env.warn(p.span, f"parameter '{p.name}' of flow '{d.name}' is never used")
    return FlowDetails(order=tuple(order))
