"""The rules of ``prompt`` (check stage): model and parameters, the demos file, every
message's template, the hooks it lists (a hooked prompt returns text).  Hook
declarations themselves are the language's own (``check/decls.py``); a prompt only
lists them."""

from __future__ import annotations

from ...check.decls import (
    DEFAULT_RETRIES,
    check_model_ref,
    check_positive,
    check_settings,
    clean_since,
    read_jsonl,
)
from ...check.env import ModuleEnv
from ...check.exprs import ExprChecker
from ...check.program import Signature
from ...check.templates import check_template
from ...lang.types import STR, is_assignable
from .ast import PromptDecl
from .details import PromptDetails


def check(env: ModuleEnv, d: PromptDecl, sig: Signature, exprs: ExprChecker) -> PromptDetails:
    model, params = check_model_ref(env, d.model), check_settings(env, d.settings)
    demos = None
    allowed = {p.name for p in sig.params}
    if d.demos is not None:
        allowed.add("demos")
        demos = read_jsonl(env, d.demos, "demos file", need_io=False)
    if d.retries is not None:
        check_positive(env, d.retries, "retries", 0)
    variables = []
    used: set[str] = set()
    mark = len(env.diags)
    for msg in d.messages:
        names, diags = check_template(msg.text, allowed, f"{msg.role} message of '{d.name}'")
        env.diags.extend(diags)
        variables.append(names)
        used |= names
    for p in sig.params if clean_since(env, mark) and d.messages else ():
        if p.name not in used:
            env.warn(next(x.span for x in d.params if x.name == p.name),
                     f"parameter '{p.name}' of prompt '{d.name}' is not used in any message")
    hooks = []
    for ref in d.hooks:
        hk = env.hook_by_ref(ref)
        if hk is not None:
            hooks.append(hk.key)
    if d.hooks and not is_assignable(sig.returns, STR):
        env.err(d.returns.span, f"a prompt with hooks must return str, not {sig.returns.show()}")
    hook_calls: list[str] = []
    for hk in hooks:  # what the hooks call while this prompt generates: "hook" edges
        hook = next((h for m in [env.cm, *env.checked.values()] for h in m.hooks.values()
                     if h.key == hk), None)
        if hook is not None:
            hook_calls.extend(hook.calls)
    return PromptDetails(model=model, params=params, demos=demos,
                         retries=d.retries.value if d.retries is not None else DEFAULT_RETRIES,
                         cache=d.cache.value if d.cache is not None else True,
                         hooks=tuple(hooks), hook_calls=tuple(hook_calls),
                         template_vars=tuple(variables))
