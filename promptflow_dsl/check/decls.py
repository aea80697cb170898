"""Checks of each declaration kind's body: prompts, tools, flows, decomposers,
routes, sketches, hooks and tests.

Each ``check_*`` function reads one AST declaration, reports problems on the
module environment, and returns the facts later stages need (resolved files,
template variables, call edges).
"""

from __future__ import annotations

import re
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any

from ..diagnostics import Span
from ..lang.holes import Literal, parse_template
from ..lang.templates import locate
from ..lang.types import (
    ANY,
    BOOL,
    FLOAT,
    INT,
    STR,
    AnyType,
    ListType,
    LiteralType,
    RecordType,
    Type,
    extra_fields,
    is_assignable,
)
from ..syntax import ast
from .env import ModuleEnv
from .exprs import ExprChecker, Scope, free_names, mismatch_note
from .jsonl import RowsError, parse_rows
from .program import HandlerInfo, HookInfo, Signature, TestInfo
from .pyrefs import check_python_target
from .templates import check_template

ACTIONS = ("insert", "replace_segment", "stop")
DEFAULT_RETRIES = 2
DEFAULT_MAX_FIRES = 5
DEFAULT_ACTION = "insert"
ROUTERS = ("embedding", "llm", "rule")
DECODERS = ("sequential", "interleaved", "beam")


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


def _clean_since(env: ModuleEnv, mark: int) -> bool:
    """No error was reported since ``mark`` (so warnings about unused names are not cascades)."""
    return not any(d.is_error for d in env.diags[mark:])


def _param_scope(sig: Signature) -> Scope:
    return Scope({p.name: p.type for p in sig.params})


# ------------------------------------------------------------------ prompt


def check_prompt(env: ModuleEnv, d: ast.PromptDecl, sig: Signature) -> dict[str, Any]:
    details: dict[str, Any] = {"model": check_model_ref(env, d.model),
                               "params": check_settings(env, d.settings)}
    allowed = {p.name for p in sig.params}
    if d.demos is not None:
        allowed.add("demos")
        details["demos"] = read_jsonl(env, d.demos, "demos file", need_io=False)
    if d.retries is not None:
        check_positive(env, d.retries, "retries", 0)
    details["retries"] = d.retries.value if d.retries is not None else DEFAULT_RETRIES
    details["cache"] = d.cache.value if d.cache is not None else True
    variables = []
    used: set[str] = set()
    mark = len(env.diags)
    for msg in d.messages:
        names, diags = check_template(msg.text, allowed, f"{msg.role} message of '{d.name}'")
        env.diags.extend(diags)
        variables.append(names)
        used |= names
    for p in sig.params if _clean_since(env, mark) and d.messages else ():
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
    details["hooks"] = hooks
    details["template_vars"] = tuple(variables)
    return details


# ------------------------------------------------------------------ tool


def check_tool(env: ModuleEnv, d: ast.ToolDecl, sig: Signature) -> dict[str, Any]:
    diag, where = check_python_target(d.target.value, env.path, d.target.span)
    if diag is not None:
        env.diags.append(diag)
    return {"target": d.target.value, "module_file": where}


# ------------------------------------------------------------------ flow


def check_flow(env: ModuleEnv, d: ast.FlowDecl, sig: Signature, ec: ExprChecker) -> dict[str, Any]:
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
    scope = _param_scope(sig)
    for n in scope_cycle:  # typed `any` up front so the cycle is reported once
        scope.vars[n] = ANY
        scope.used.add(n)
    for name in order:
        a = assigns[name]
        scope.vars[name] = ec.check(a.value, scope)
    for r in returns:
        t = ec.check(r.value, scope)
        if not is_assignable(t, sig.returns):
            env.err(r.value.span, f"flow '{d.name}' returns {sig.returns.show()}, "
                                  f"but this is {t.show()}{mismatch_note(t, sig.returns)}")
        elif isinstance(t, RecordType) and isinstance(sig.returns, RecordType) \
                and isinstance(r.value, ast.RecordExpr):
            for extra in extra_fields(t, sig.returns):
                env.err(r.value.span, f"field '{extra}' is not in the return type {sig.returns.show()}")
    clean = _clean_since(env, mark)
    for name, a in assigns.items() if clean else ():
        if name not in scope.used:
            env.warn(a.name_span, f"'{name}' is assigned but never used")
    for p in d.params if clean else ():
        if p.name not in scope.used:
            env.warn(p.span, f"parameter '{p.name}' of flow '{d.name}' is never used")
    return {"order": order}


# ------------------------------------------------------------------ decompose

_STEP = re.compile(r"^\s*QS:\s*(?:\((?P<op>[\w ]+)\)\s*)?\[(?P<h>[^\]]+)\]")


def check_decompose(env: ModuleEnv, d: ast.DecomposeDecl, sig: Signature) -> dict[str, Any]:
    details: dict[str, Any] = {"model": check_model_ref(env, d.model),
                               "params": check_settings(env, d.settings)}
    if not sig.params or not is_assignable(STR, sig.params[0].type):
        env.err(d.name_span, f"decompose '{d.name}' must take the question as its first "
                             f"parameter, of type str")
    elif any(p.required for p in sig.params[1:]):
        env.err(d.name_span, f"decompose '{d.name}': parameters after the question need defaults")
    bindings: dict[str, str] = {}
    seen: set[str] = set()
    for b in d.handlers:
        if b.name in seen:
            env.err(b.span, f"two handlers are called '{b.name}'; name them: "
                            f"handlers {{ a: x.{b.name}, b: y.{b.name} }}")
            continue
        seen.add(b.name)
        if b.name.upper() == "EOQ":
            env.err(b.span, "'EOQ' is reserved: the decomposer writes [EOQ] to finish")
            continue
        if b.target.parts == (d.name,):
            bindings[b.name] = f"{env.cm.key}::{d.name}"  # self-recursion
            continue
        h = env.handler_by_ref(b.target, f"handler '{b.name}' of decompose '{d.name}'")
        if h is None:
            continue
        why = accepts_question(h)
        if why:
            env.err(b.target.span, f"'{b.target.dotted}' cannot take a sub-question: {why}")
        bindings[b.name] = h.key
    details["handlers"] = bindings
    fewshot: str | None = None
    if d.prompt is not None:
        if is_inline_text(d.prompt):
            fewshot = d.prompt.value
        else:
            path = resolve_file(env, d.prompt, "prompt file")
            if path is not None:
                try:
                    fewshot = path.read_text(encoding="utf-8")
                    details["prompt_path"] = str(path)
                except (OSError, UnicodeDecodeError) as exc:
                    env.err(d.prompt.span, f"cannot read prompt file '{d.prompt.value}': {exc}")
    if fewshot is not None:
        details["fewshot"] = fewshot
        unknown = sorted({m.group("h").strip() for line in fewshot.splitlines()
                          if (m := _STEP.match(line))} - set(bindings) - {"EOQ"})
        if unknown and d.handlers:
            env.warn(d.prompt.span if d.prompt else d.name_span,
                     f"the few-shot examples use handler{'s' if len(unknown) > 1 else ''} "
                     f"{', '.join(unknown)} not listed in `handlers`")
        known_ops = ("select", "foreach", "project_values", "foreach_merge",
                     "project_values_flat_unique", "filter")  # = runtime.decompose_ops.OPS
        bad_ops = sorted({op.strip() for line in fewshot.splitlines()
                          if (m := _STEP.match(line)) and (op := m.group("op")) is not None
                          and op.strip().lower() not in known_ops})
        if bad_ops:
            env.warn(d.prompt.span if d.prompt else d.name_span,
                     f"the few-shot examples use unknown op{'s' if len(bad_ops) > 1 else ''} "
                     f"{', '.join(f'({op})' for op in bad_ops)}; ops: {', '.join(known_ops)}")
    check_positive(env, d.max_steps, "max_steps")
    check_positive(env, d.max_depth, "max_depth")
    details["max_steps"] = d.max_steps.value if d.max_steps else 10
    details["max_depth"] = d.max_depth.value if d.max_depth else 8
    return details


# ------------------------------------------------------------------ route


def check_route(env: ModuleEnv, d: ast.RouteDecl, sig: Signature, ec: ExprChecker) -> dict[str, Any]:
    details: dict[str, Any] = {"model": check_model_ref(env, d.model),
                               "params": check_settings(env, d.settings)}
    if len(sig.params) != 1 or not is_assignable(sig.params[0].type, STR) \
            or not is_assignable(STR, sig.params[0].type):
        env.err(d.name_span, f"route '{d.name}' must take exactly one parameter of type str")
    by = d.by.name if d.by is not None else None
    if d.by is None:
        env.err(d.name_span, f"route '{d.name}' needs a router: `by embedding`, `by llm` or `by rule`")
    elif by not in ROUTERS:
        env.err(d.by.span, f"unknown router '{by}' (expected embedding, llm or rule)")
    details["by"] = by
    # `retries` (re-asks of the llm router and of an expert's reply): the route's own clause
    # once the syntax has one, else the default.
    retries = getattr(d, "retries", None)
    if retries is not None:
        check_positive(env, retries, "retries", 0)
    details["retries"] = retries.value if retries is not None else DEFAULT_RETRIES
    if d.embed is not None:
        if by != "embedding":
            env.err(d.embed.span, "`embed` is only used by `by embedding`")
        details["embed"] = check_model_ref(env, d.embed, embed=True)
    scope = _param_scope(sig)
    experts: dict[str, dict[str, Any]] = {}
    n = len(d.experts)
    for i, ex in enumerate(d.experts):
        info: dict[str, Any] = {"model": check_model_ref(env, ex.model)}
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
                info["delegate"] = h.key
        elif ex.instruction is None:
            env.err(ex.name_span, f"expert '{ex.name}' needs an `instruction` or `-> handler`")
        if ex.instruction is not None:
            info["instruction"] = ex.instruction.value
        if ex.demos is not None:
            info["demos"] = read_jsonl(env, ex.demos, "demos file", need_io=True)
        elif by == "embedding":
            env.err(ex.name_span, f"expert '{ex.name}' needs `demos`: the embedding router "
                                  f"places each expert at the centroid of its demos")
        experts[ex.name] = info
    if d.auto is not None:
        if by in ROUTERS and by != "embedding":
            env.err(d.auto.span, "`experts auto` needs `by embedding`")
        check_positive(env, d.auto.max_k, "max", 2)
        rows = read_jsonl(env, d.auto.path, "training file", need_io=True)
        path = env.project.resolve_file(env.path, d.auto.path.value, d.auto.path.span,
                                        "training file")[0] if rows is not None else None
        details["auto"] = {"max_k": d.auto.max_k.value, "rows": len(rows or []),
                           "demos": rows, "path": str(path) if path is not None else None}
        if rows is not None and len(rows) < d.auto.max_k.value:
            env.err(d.auto.max_k.span, f"max {d.auto.max_k.value} experts but the training file "
                                       f"has only {len(rows)} rows")
    details["experts"] = experts
    return details


# ------------------------------------------------------------------ sketch

def check_sketch(env: ModuleEnv, d: ast.SketchDecl, sig: Signature) -> dict[str, Any]:
    details: dict[str, Any] = {"model": check_model_ref(env, d.model),
                               "params": check_settings(env, d.settings)}
    decoder = "sequential"
    if isinstance(d.decoder, ast.Name):
        decoder = d.decoder.name
        if decoder == "beam":
            env.err(d.decoder.span, "beam needs a width: beam(N)")
        elif decoder not in ("sequential", "interleaved"):
            env.err(d.decoder.span, f"unknown decoder '{decoder}' (expected sequential, "
                                    f"interleaved or beam(N))")
    elif isinstance(d.decoder, ast.Call):
        assert isinstance(d.decoder.func, ast.Name)
        decoder = d.decoder.func.name
        width = d.decoder.args[0]
        if decoder != "beam":
            env.err(d.decoder.span, f"unknown decoder '{decoder}(...)' (expected beam(N))")
        elif isinstance(width, ast.Int) and width.value < 1:
            env.err(width.span, "beam width must be at least 1")
        details["beam"] = width.value if isinstance(width, ast.Int) else 1
    details["decoder"] = decoder
    if d.retries is not None:
        check_positive(env, d.retries, "retries", 0)
    details["retries"] = d.retries.value if d.retries is not None else DEFAULT_RETRIES
    if d.template is None:
        return details
    node = d.template
    tpl = parse_template(node.value)
    for he in tpl.errors:
        line, col = locate(node, node.value, he.start)
        env.err(Span.point(env.file, line, col, max(he.end - he.start, 1)), he.message)
    allowed = {p.name for p in sig.params}
    used: set[str] = set()
    for seg in tpl.segments:
        if isinstance(seg, Literal) and ("{" in seg.text):
            names, diags = check_template(node, allowed, f"template of '{d.name}'",
                                          piece=node.value[seg.start:seg.end], piece_offset=seg.start)
            env.diags.extend(diags)
            used |= names
    holes = tpl.holes
    details["holes"] = [h.name for h in holes]
    if not holes and not tpl.errors:
        env.err(node.span, f"sketch '{d.name}' has no holes: write [name] where the model fills in")
    for p in sig.params:
        if p.name not in used:
            env.warn(next(x.span for x in d.params if x.name == p.name),
                     f"parameter '{p.name}' of sketch '{d.name}' is not used in the template")
    ret = sig.returns
    hole_types: dict[str, Type] = {}
    for h in holes:
        if h.choices:
            hole_types[h.name] = LiteralType(tuple(h.choices))
        else:
            hole_types[h.name] = {"str": STR, "int": INT, "float": FLOAT, "bool": BOOL}.get(h.type, STR)

    def hole_span(h: Any) -> Span:
        line, col = locate(node, node.value, h.name_start)
        return Span.point(env.file, line, col, len(h.name))

    if isinstance(ret, RecordType):
        fields = {f.name: f for f in ret.fields}
        for h in holes:
            f = fields.get(h.name)
            if f is None:
                env.err(hole_span(h), f"hole '{h.name}' is not a field of the return type {ret.show()}")
            elif not is_assignable(hole_types[h.name], f.type):
                env.err(hole_span(h), f"hole '{h.name}' gives {hole_types[h.name].show()}, but field "
                                      f"'{h.name}' is {f.type.show()}")
        hole_names = {h.name for h in holes}
        for f in ret.fields:
            if f.required and f.name not in hole_names and not tpl.errors:
                where = d.returns.span
                if isinstance(d.returns, ast.RecordType):
                    where = next((x.span for x in d.returns.fields if x.name == f.name), where)
                env.err(where, f"field '{f.name}' of the return type has no hole in the template")
    elif isinstance(ret, (AnyType,)):
        pass
    elif len(holes) == 1 and is_assignable(hole_types[holes[0].name], ret):
        pass
    elif holes:
        env.err(d.returns.span, f"sketch '{d.name}' returns {ret.show()}: use a record type with "
                                f"one field per hole ({', '.join(h.name for h in holes)})")
    # What the model cannot enforce, and the runtime's fallback (a warning each).
    from .capabilities import check_sketch_capabilities

    check_sketch_capabilities(env, d, holes, details, hole_span)
    return details


# ------------------------------------------------------------------ hook


def check_hook(env: ModuleEnv, d: ast.HookDecl, ec: ExprChecker) -> HookInfo:
    scope = Scope({"text": STR, "segment": STR})
    groups: list[str] = []
    if isinstance(d.trigger, ast.Str):
        try:
            groups = list(re.compile(d.trigger.value).groupindex)
        except re.error as exc:
            groups = list(dict.fromkeys(re.findall(r"\(\?P<([A-Za-z_]\w*)>", d.trigger.value)))
            where = d.trigger.span
            if exc.pos is not None and d.trigger.span.line == d.trigger.span.end_line:
                line, col = d.trigger.origin(0, exc.pos)
                where = Span.point(env.file, line, col)
            env.err(where, f"invalid regular expression in hook '{d.name}': {exc.msg}")
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
    except re.error:
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
            if h is not None and not is_assignable(t, h.signature.returns):
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

