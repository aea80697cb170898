"""The rules of ``prompt`` (check stage): model and parameters, the demos file, the
shots text, every message's template (or the completion text's), the stop strings,
the hooks it lists (a hooked prompt returns text), and for a completion prompt a model
that can complete raw text.  Hook declarations themselves are the language's own
(``check/decls.py``); a prompt only lists them."""

from __future__ import annotations

from ...check.capabilities import check_completion_model
from ...check.decls import (
    DEFAULT_RETRIES,
    check_model_ref,
    check_positive,
    check_settings,
    clean_since,
    is_inline_text,
    read_jsonl,
    resolve_file,
)
from ...check.env import ModuleEnv
from ...check.exprs import ExprChecker
from ...check.program import Signature
from ...check.templates import check_template
from ...lang.types import STR, is_assignable
from ...syntax import ast
from .ast import PromptDecl
from .details import PromptDetails


def check(env: ModuleEnv, d: PromptDecl, sig: Signature, exprs: ExprChecker) -> PromptDetails:
    model, params = check_model_ref(env, d.model), check_settings(env, d.settings)
    demos = None
    allowed = {p.name for p in sig.params}
    if d.demos is not None:
        allowed.add("demos")
        demos = read_jsonl(env, d.demos, "demos file", need_io=False)
    shots = None
    if d.shots is not None:
        if "shots" in allowed:
            env.err(d.shots.span, f"prompt '{d.name}' has a parameter named 'shots', which the "
                                  f"`shots` clause would hide in its templates: rename one")
        allowed.add("shots")
        shots = read_shots(env, d.shots)
    if d.retries is not None:
        check_positive(env, d.retries, "retries", 0)
    for s in d.stop:
        if not s.value:
            env.err(s.span, "a stop string cannot be empty")
    variables = []
    used: set[str] = set()
    mark = len(env.diags)
    texts = [(d.completion, f"completion text of '{d.name}'")] if d.completion is not None else \
        [(msg.text, f"{msg.role} message of '{d.name}'") for msg in d.messages]
    for text, what in texts:
        names, diags = check_template(text, allowed, what)
        env.diags.extend(diags)
        variables.append(names)
        used |= names
    for p in sig.params if clean_since(env, mark) and texts else ():
        if p.name not in used:
            where = "its completion text" if d.completion is not None else "any message"
            env.warn(next(x.span for x in d.params if x.name == p.name),
                     f"parameter '{p.name}' of prompt '{d.name}' is not used in {where}")
    if d.completion is not None:
        if d.hooks:
            env.err(d.hooks[0].span, f"prompt '{d.name}' is a completion prompt, and hooks run "
                                     f"only on chat prompts (system / user messages)")
        check_completion_model(env, d.model, d.completion.span, f"prompt '{d.name}'")
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
                         template_vars=tuple(variables), completion=d.completion is not None,
                         shots=shots, stop=tuple(s.value for s in d.stop))


def read_shots(env: ModuleEnv, s: ast.Str) -> str | None:
    """The text of a ``shots`` clause, exactly as written: the string itself when it is
    text (triple-quoted, or with a line break), else the file it names (UTF-8; a
    byte-order mark dropped, line ends read as LF; nothing else changed: no stripping).
    Reports an unreadable file and returns None."""
    from ...check.files import FileProblem, read_text_file

    if is_inline_text(s):
        return s.value
    path = resolve_file(env, s, "shots file")
    if path is None:
        return None
    try:
        return read_text_file(path)
    except (OSError, FileProblem) as exc:
        env.err(s.span, f"cannot read shots file '{s.value}': {exc}")
        return None
