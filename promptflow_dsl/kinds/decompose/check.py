"""The rules of ``decompose`` (check stage): the question parameter, the handler
bindings (each must take one string), the few-shot text (inline or a file) and the
handlers and ops it uses, the limits."""

from __future__ import annotations

import re

from ...check.decls import (
    accepts_question,
    check_model_ref,
    check_positive,
    check_settings,
    is_inline_text,
    resolve_file,
)
from ...check.env import ModuleEnv
from ...check.exprs import ExprChecker
from ...check.program import Signature
from ...lang.types import STR, is_assignable
from ...syntax.ast import Call, Int, Name
from .ast import DecomposeDecl
from .details import (
    DEFAULT_MAX_CALLS,
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_STEPS,
    MAX_DEPTH_LIMIT,
    DecomposeDetails,
    known_op,
)

PROTOCOLS = ("pflow", "decomp")
MAX_BEAM = 16
REF_OPS = ("select", "project", "projectValues", "projectKeys", "filter",
           "with sub-ops _flat _unique _keys _values")
_REF_STEP = re.compile(r"^\s*QS:\s*\((?P<op>.+)\) \[[^\]]+\] ")
_STEP = re.compile(r"^\s*QS:\s*(?:\((?P<op>[\w ]+)\)\s*)?\[(?P<h>[^\]]+)\]")


def check(env: ModuleEnv, d: DecomposeDecl, sig: Signature, exprs: ExprChecker) -> DecomposeDetails:
    model, params = check_model_ref(env, d.model), check_settings(env, d.settings)
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
    protocol, beam = _protocol(env, d), _search(env, d)
    if beam > 1 and protocol != "decomp":
        env.err(d.search.span if d.search else d.name_span,
                "`search beam(N)` needs `protocol decomp` (the default protocol follows one "
                "greedy path)")
    fewshot: str | None = None
    prompt_path: str | None = None
    if d.prompt is not None:
        if is_inline_text(d.prompt):
            fewshot = d.prompt.value
        else:
            path = resolve_file(env, d.prompt, "prompt file")
            if path is not None:
                try:
                    fewshot = path.read_text(encoding="utf-8")
                    prompt_path = str(path)
                except (OSError, UnicodeDecodeError) as exc:
                    env.err(d.prompt.span, f"cannot read prompt file '{d.prompt.value}': {exc}")
    if fewshot is not None:
        unknown = sorted({m.group("h").strip() for line in fewshot.splitlines()
                          if (m := _STEP.match(line))} - set(bindings) - {"EOQ"})
        if unknown and d.handlers:
            env.warn(d.prompt.span if d.prompt else d.name_span,
                     f"the few-shot examples use handler{'s' if len(unknown) > 1 else ''} "
                     f"{', '.join(unknown)} not listed in `handlers`")
        known_ops = ("select", "foreach", "project_values", "foreach_merge",
                     "project_values_flat_unique", "filter")  # = ops.OPS (run stage)
        if protocol == "decomp":
            bad_ops = sorted({m.group("op") for line in fewshot.splitlines()
                              if (m := _REF_STEP.match(line)) and not known_op(m.group("op"))})
            known_ops = REF_OPS
        else:
            bad_ops = sorted({op.strip() for line in fewshot.splitlines()
                              if (m := _STEP.match(line)) and (op := m.group("op")) is not None
                              and op.strip().lower() not in known_ops})
        if bad_ops:
            env.warn(d.prompt.span if d.prompt else d.name_span,
                     f"the few-shot examples use unknown op{'s' if len(bad_ops) > 1 else ''} "
                     f"{', '.join(f'({op})' for op in bad_ops)}; ops: {', '.join(known_ops)}")
    check_positive(env, d.max_steps, "max_steps")
    check_positive(env, d.max_depth, "max_depth")
    if d.max_depth is not None and d.max_depth.value > MAX_DEPTH_LIMIT:
        env.err(d.max_depth.span, f"max_depth of decompose '{d.name}' is {d.max_depth.value}; "
                                  f"it can be at most {MAX_DEPTH_LIMIT}")
    check_positive(env, d.max_calls, "max_calls")
    return DecomposeDetails(model=model, params=params, handlers=bindings, fewshot=fewshot,
                            prompt_path=prompt_path,
                            max_steps=d.max_steps.value if d.max_steps else DEFAULT_MAX_STEPS,
                            max_depth=d.max_depth.value if d.max_depth else DEFAULT_MAX_DEPTH,
                            max_calls=d.max_calls.value if d.max_calls else DEFAULT_MAX_CALLS,
                            protocol=protocol, beam=beam)


def _protocol(env: ModuleEnv, d: DecomposeDecl) -> str:
    if d.protocol is None:
        return "pflow"
    if d.protocol.name not in PROTOCOLS:
        env.err(d.protocol.span, f"unknown protocol '{d.protocol.name}' of decompose "
                                 f"'{d.name}' (protocols: {', '.join(PROTOCOLS)})")
        return "pflow"
    return d.protocol.name


def _search(env: ModuleEnv, d: DecomposeDecl) -> int:
    """The width of a ``search`` clause: ``greedy`` is 1, ``beam(N)`` is N."""
    node = d.search
    if node is None:
        return 1
    if isinstance(node, Name):
        if node.name == "greedy":
            return 1
        env.err(node.span, f"unknown search '{node.name}' (expected greedy or beam(N))")
        return 1
    assert isinstance(node, Call)
    func, width = node.func, node.args[0]
    if not isinstance(func, Name) or func.name != "beam":
        env.err(node.span, "unknown search (expected greedy or beam(N))")
        return 1
    assert isinstance(width, Int)
    if not 1 <= width.value <= MAX_BEAM:
        env.err(width.span, f"beam width must be from 1 to {MAX_BEAM}")
        return 1
    return width.value
