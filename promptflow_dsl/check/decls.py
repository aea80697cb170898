"""The checks of the language's own declarations (hooks, tests) and the pieces every
handler kind's rules share (``kinds/<kind>/check.py``): model references and
parameters, files beside the module, demo rows, limits, handlers that take one
string.

Each ``check_*`` function reads one AST declaration, reports problems on the
module environment, and returns the facts later stages need.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..lang.trigger_patterns import trigger_problem
from ..lang.types import BOOL, STR, AnyType, ListType, is_assignable
from ..syntax import ast
from .constraints import fits, regex_error
from .env import ModuleEnv
from .exprs import ExprChecker, Scope, mismatch_note
from .jsonl import RowsError, parse_rows
from .program import HandlerInfo, HookInfo, Signature, TestInfo

ACTIONS = ("insert", "replace_segment", "stop")
DEFAULT_RETRIES = 2
DEFAULT_MAX_FIRES = 5
DEFAULT_ACTION = "insert"


# ------------------------------------------------------------------ shared pieces


def check_model_ref(env: ModuleEnv, ref: ast.Ref | None, embed: bool = False) -> str | None:
    if ref is None:
        return None
    m = env.model_by_ref(ref)
    if m is None:
        return None
    if embed and not m.embed:
        env.err(ref.span, f"model '{ref.dotted}' is not an embedding model; declare it with "
                          f"`model {m.name} = \"...\" embed`")
    if not embed and m.embed:
        env.err(ref.span, f"model '{ref.dotted}' is an embedding model and cannot generate text")
    return m.name


def check_settings(env: ModuleEnv, rec: ast.RecordExpr | None) -> dict[str, Any]:
    if rec is None:
        return {}
    from ..syntax.builder import suggest
    from .env import KNOWN_MODEL_PARAMS

    out = {}
    for en in rec.entries:
        want = KNOWN_MODEL_PARAMS.get(en.key)
        out[en.key] = env.constant(en.value, want, f"parameter '{en.key}'")
        hint = suggest(en.key, list(KNOWN_MODEL_PARAMS)) if want is None else ""
        if hint:
            env.warn(en.span, f"unknown model parameter '{en.key}'{hint}")
    return out


def check_positive(env: ModuleEnv, node: ast.Int | None, what: str, minimum: int = 1) -> None:
    if node is not None and node.value < minimum:
        env.err(node.span, f"{what} must be at least {minimum}")


def is_inline_text(s: ast.Str) -> bool:
    """Whether a string given where a file or the text itself may be written is the text:
    a triple-quoted string, or any string with a line break (no file name has one)."""
    return s.style == "text" or "\n" in s.value or "\r" in s.value


def resolve_file(env: ModuleEnv, s: ast.Str, what: str) -> Path | None:
    if "\n" in s.value or "\r" in s.value:
        env.err(s.span, f"a {what} is named by its path, and this string has a line break")
        return None
    path, diag = env.project.resolve_file(env.path, s.value, s.span, what)
    if diag is not None:
        env.diags.append(diag)
    return path


def read_jsonl(env: ModuleEnv, s: ast.Str, what: str, need_io: bool) -> list[dict[str, Any]] | None:
    """Load and validate a JSONL file of demo rows; report the first bad line."""
    path = resolve_file(env, s, what)
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        env.err(s.span, f"cannot read {what} '{s.value}': {exc}")
        return None
    try:
        return parse_rows(text, need_io=need_io)
    except RowsError as exc:
        env.err(s.span, f"{what} '{s.value}' {exc}")
        return None


def accepts_question(h: HandlerInfo) -> str | None:
    """Why handler ``h`` cannot be called with one string (``None`` when it can)."""
    ps = h.signature.params
    if not ps:
        return "it takes no parameters"
    if not is_assignable(STR, ps[0].type):
        return f"its first parameter '{ps[0].name}' is {ps[0].type.show()}, not str"
    extra = [p.name for p in ps[1:] if p.required]
    if extra:
        return f"its parameters {', '.join(extra)} have no default"
    return None


def clean_since(env: ModuleEnv, mark: int) -> bool:
    """No error was reported since ``mark`` (so warnings about unused names are not cascades)."""
    return not any(d.is_error for d in env.diags[mark:])


def param_scope(sig: Signature) -> Scope:
    return Scope({p.name: p.type for p in sig.params})


# ------------------------------------------------------------------ hook


def check_hook(env: ModuleEnv, d: ast.HookDecl, ec: ExprChecker) -> HookInfo:
    scope = Scope({"text": STR, "segment": STR})
    groups: list[str] = []
    if isinstance(d.trigger, ast.Str):
        bad = regex_error(d.trigger)
        if bad is not None:
            if bad.syntax:
                groups = list(dict.fromkeys(re.findall(r"\(\?P<([A-Za-z_]\w*)>", d.trigger.value)))
            env.err(bad.span, f"invalid regular expression in hook '{d.name}': {bad.message}")
        else:
            groups = list(re.compile(d.trigger.value).groupindex)
            problem = trigger_problem(d.trigger.value)
            if problem is not None:  # refused again at run time, before any model call
                env.err(d.trigger.span, f"the trigger of hook '{d.name}' cannot be used: {problem}")
        if rx_matches_empty(d.trigger.value):
            env.warn(d.trigger.span, f"the trigger of hook '{d.name}' matches empty text and may fire "
                                     f"at every position")
        else:
            # The runtime checks a regex trigger at every character as the text grows, so
            # a pattern that ends in an open repetition (`\d+`) or `\b` matches as soon as
            # its first characters arrive, cutting a number or word short.
            def open_end(items: list[Any]) -> str | None:
                from re import _constants as rc

                repeats = tuple(getattr(rc, n) for n in ("MAX_REPEAT", "MIN_REPEAT",
                                                         "POSSESSIVE_REPEAT") if hasattr(rc, n))
                i = len(items) - 1
                while i >= 0:
                    op, av = items[i]
                    if op in repeats and av[0] == 0:
                        i -= 1  # can match nothing: what precedes it decides
                        continue
                    if op in repeats:
                        return "an open repetition" if av[1] != av[0] else None
                    if op == rc.SUBPATTERN:
                        return open_end(list(av[-1]))
                    if op == rc.BRANCH:
                        return next((r for r in (open_end(list(b)) for b in av[1]) if r), None)
                    if op == rc.AT and av in (rc.AT_BOUNDARY, rc.AT_NON_BOUNDARY):
                        return "`\\b`"
                    return None
                return None

            try:
                from re import _parser

                ending = open_end(list(_parser.parse(d.trigger.value)))
            except Exception:  # noqa: BLE001 - reported above, or a parser detail
                ending = None
            if ending is not None:
                env.warn(d.trigger.span, f"the trigger of hook '{d.name}' ends in {ending}: it is "
                                         f"checked at every character as the text grows, so it "
                                         f"can fire before a word or number is complete (`\\d+` "
                                         f"fires on the 1 of 128); end it with a delimiter, `$` "
                                         f"or a lookahead such as `(?=\\s)`")
        for g in groups:
            if g in ("text", "segment"):
                env.err(d.trigger.span, f"group name '{g}' is reserved in hooks")
            scope.vars[g] = STR
    elif isinstance(d.trigger, ast.Call):
        t = ec.check(d.trigger, scope)
        if not is_assignable(t, BOOL):
            env.err(d.trigger.span, f"a trigger call must return bool, not {t.show()}")
    if d.condition is not None:
        ec.check(d.condition, scope)
    if d.program is not None:
        t = ec.check(d.program, scope)
        if not (is_assignable(t, STR) or isinstance(t, AnyType)):
            env.warn(d.program.span, f"hook program returns {t.show()}; its text form is used")
    if d.action is not None and d.action.name not in ACTIONS:
        env.err(d.action.span, f"unknown action '{d.action.name}' (expected insert, "
                               f"replace_segment or stop)")
    check_positive(env, d.max_fires, "max_fires")
    if d.max_fires is not None and d.max_fires.value > 20:  # the runtime's budget per call
        env.warn(d.max_fires.span, f"hook '{d.name}' may fire at most 20 times per call (the "
                                   f"budget of all hooks together); max_fires {d.max_fires.value} "
                                   f"is never reached")
    calls = tuple(k for k, _ in ec.calls)
    action = d.action.name if d.action is not None and d.action.name in ACTIONS else DEFAULT_ACTION
    max_fires = d.max_fires.value if d.max_fires is not None else DEFAULT_MAX_FIRES
    return HookInfo(f"{env.cm.key}::{d.name}", d.name, env.cm.key, d, tuple(groups), calls,
                    action, max_fires)


def rx_matches_empty(pattern: str) -> bool:
    try:
        return re.compile(pattern).fullmatch("") is not None
    except (re.error, OverflowError, RecursionError):  # reported by check_hook
        return False


# ------------------------------------------------------------------ test


def check_test(env: ModuleEnv, d: ast.TestDecl, ec: ExprChecker) -> TestInfo:
    scope = Scope(counters=True)
    for st in d.body:
        if isinstance(st, ast.Assign):
            scope.vars[st.name] = ec.check(st.value, scope)
        elif isinstance(st, ast.MockModel):
            if not (len(st.model.parts) == 1 and st.model.parts[0] in env.cm.models):
                env.model_by_ref(st.model)
            if st.handler is not None:
                env.handler_by_ref(st.handler, "in mock")
            t = ec.check(st.replies, scope)
            if not is_assignable(t, ListType(STR)):
                env.err(st.replies.span, f"`replies` takes a list of strings, got {t.show()}")
        elif isinstance(st, ast.MockHandler):
            h = env.handler_by_ref(st.target, "in mock")
            t = ec.check(st.value, scope)
            if h is not None and fits(env, st.value, h.signature.returns,
                                      f"mock value for '{st.target.dotted}'") \
                    and not is_assignable(t, h.signature.returns):
                env.err(st.value.span, f"mock value for '{st.target.dotted}' must be "
                                       f"{h.signature.returns.show()}, got {t.show()}"
                                       f"{mismatch_note(t, h.signature.returns)}")
        elif isinstance(st, ast.Expect):
            ec.check(st.expr, scope)
        elif isinstance(st, ast.ExpectError):
            ec.check(st.call, scope)
            t = ec.check(st.text, scope)
            if not is_assignable(t, STR):
                env.err(st.text.span, f"`contains` needs a str, got {t.show()}")
    if not any(isinstance(s, (ast.Expect, ast.ExpectError)) for s in d.body):
        env.warn(d.name_span, f"test \"{d.name}\" has no expect")
    return TestInfo(d.name, env.cm.key, d)

