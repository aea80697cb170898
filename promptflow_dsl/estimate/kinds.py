"""How many model calls a call of each handler kind makes, and how large they are.

One function per kind, ``estimate_<kind>(estimator, handler, args) -> Outcome`` (the
table :data:`KINDS`); each reads its kind's facts through :mod:`.facts`. The requests
are built as the runtime builds them — the same message rendering, structured-output
request, router prompt, expert conversation, decomposer prefix and sketch pieces — and
counted with the model's tokenizer.

- **prompt**: 1 call, up to ``retries`` re-asks more (``1..retries+1``; a ``str`` reply is
  never re-asked); a re-ask resends
  the conversation plus the failed reply (at most ``max_tokens``) and the re-ask
  message. A prompt with hooks is not re-asked: 1 generation, up to one more per
  firing (``max_fires`` per hook, 20 in all per call), plus the hooks' programs (up to
  ``max_fires`` runs each); a call trigger or an ``if`` that calls handlers is asked at
  every sentence end, so its calls have no bound.
- **tool**: no model call; its result is unknown.
- **flow**: its statements in plan order (see :mod:`.walker`).
- **decompose**: 2 to ``max_steps + 1`` decomposer lines (a step and ``[EOQ]`` at the
  least), and 1 to ``max_steps`` steps, each one call of a bound handler (the cheapest
  at the low end, the costliest at the high end); a nested decomposer past
  ``max_depth`` fails at once. A ``foreach`` step calls its handler once per item: that
  is not counted.
- **route**: the router (``rule``: its ``when`` expressions; ``llm``: one chat call and
  up to ``retries`` re-asks; ``embedding``: one embedding call when the route names an
  ``embed`` model, none with the built-in embedder) plus one expert, the cheapest to
  the costliest of those that can be chosen (with known inputs a rule route's expert
  is known).
- **sketch**: per hole, by the decoder the model allows: ``sequential`` one chat call
  (up to ``retries`` re-asks), ``interleaved`` one completion (then up to ``retries``
  chat re-asks), ``beam(N)`` N completions and a score request per partial sketch
  (1 to N of them); a choice or bool hole on a model with log-probabilities is one
  score request per partial sketch. With every input known the template is rendered
  as the run renders it (a hole in a ``{% for %}`` counts once per iteration, one in a
  false ``{% if %}`` not at all); a hole in a loop over values known only at run time
  counts from zero to any number of times.

Typical reply lengths: a ``str`` reply :data:`~.values.TYPICAL_TEXT_TOKENS` tokens; a
literal union its longest value; any other type the JSON of a sample value
(:func:`~.values.sample`); a decomposer line and a sketch hole
:data:`TYPICAL_LINE_TOKENS`; each capped at the call's ``max_tokens``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..check.program import HandlerInfo
from ..kinds.flow.ast import FlowDecl
from ..kinds.prompt.ast import PromptDecl
from ..lang.types import STR, LiteralType, OptionalType, Type
from ..models.base import GenParams, Message
from ..syntax import ast
from .facts import decompose_facts, hook_facts, prompt_facts, sketch_facts
from .models import Model
from .tally import Price, Tally, Usage
from .values import (
    TYPICAL_TEXT_TOKENS,
    Known,
    Unknown,
    Value,
    literal_text,
    placeholder,
    references,
    sample,
)
from .walker import Estimator, KindEstimator, Outcome

#: a decomposer line or a sketch hole, typical length in tokens
TYPICAL_LINE_TOKENS = 24
#: the validation error a re-ask is counted with
SAMPLE_ERROR = "the reply is not JSON"


# ------------------------------------------------------------------ shared pieces

def _known(args: dict[str, Value]) -> dict[str, Any]:
    """Template variables: known values, and a placeholder for each unknown one."""
    return {k: v.value if isinstance(v, Known) else placeholder(v.type) for k, v in args.items()}


def _extra(sources: list[str], args: dict[str, Value]) -> tuple[int, int | None]:
    """(typical, bound) tokens the unknown arguments add to the rendered ``sources``."""
    unknown = {k: v for k, v in args.items() if isinstance(v, Unknown)}
    typical = 0
    bound: int | None = 0
    for src in sources:
        for name, n in references(src, frozenset(unknown)).items():
            v = unknown[name]
            typical += n * v.typical
            bound = None if bound is None or v.bound is None else bound + n * v.bound
    return typical, bound


def _add(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else a + b


def typical_reply(model: Model, ret: Type, max_tokens: int | None) -> int:
    """The typical length of a reply of type ``ret`` (see the module docstring)."""
    base = ret.inner if isinstance(ret, OptionalType) else ret
    tok = model.tokenizer
    if base == STR:
        n = TYPICAL_TEXT_TOKENS
    elif isinstance(base, LiteralType):
        n = max(tok.count(v) for v in base.values)
    else:
        n = tok.count(json.dumps(sample(ret), ensure_ascii=False))
    return n if max_tokens is None else min(n, max_tokens)


@dataclass
class ChatCall:
    """One chat request that may be re-asked: what it sends and may get back."""

    model: Model
    messages: list[Message]
    params: GenParams  # merged
    extra_typical: int = 0  # tokens unknown inputs add to the messages (low end)
    extra_bound: int | None = 0  # ... at most (high end)
    reask: str = ""  # the user turn of a re-ask
    price: Price | None = None
    raw: str | None = None  # a completion prompt's text, counted as it is (no chat template)

    def __post_init__(self) -> None:
        if not self.reask:
            from ..runtime.asking import reask

            self.reask = reask(SAMPLE_ERROR)

    def input(self) -> tuple[int, int | None]:
        base = (self.model.tokenizer.count(self.raw) if self.raw is not None
                else self.model.tokenizer.count_chat(self.messages))
        if self.params.json_schema is not None and self.model.id != "local/smollm2":
            # a hosted API turns a response schema into prompt tokens; counted as its JSON
            base += self.model.tokenizer.count(json.dumps(self.params.json_schema))
        return base + self.extra_typical, _add(base, self.extra_bound)

    def tally(self, retries: int, typical: int, max_tokens: int | None) -> Tally:
        """1 call, up to ``retries`` re-asks; each re-ask resends the conversation with the
        failed reply and the re-ask message."""
        low, high = self.input()
        grow = _reask_tokens(self.model.tokenizer, self.messages, self.reask)
        growth = sum(range(retries + 1))  # the k-th re-ask carries k failed replies
        step = _add(max_tokens, grow) if growth else 0
        high_total = _add(_mul(high, retries + 1), _mul(step, growth))
        return Tally(1, retries + 1, low, high_total, typical, _mul(max_tokens, retries + 1))

    def usage(self, key: tuple[str, str], retries: int, typical: int,
              max_tokens: int | None) -> Usage:
        return Usage.one(key, self.tally(retries, typical, max_tokens), self.price)


_REASK_TOKENS: dict[tuple[int, str], int] = {}


def _reask_tokens(tok: Any, messages: list[Message], reask: str) -> int:
    """Tokens a re-ask adds besides the failed reply: an empty assistant turn and the
    re-ask message (the same after any conversation: counted once per tokenizer)."""
    key = (id(tok), reask)
    if key not in _REASK_TOKENS:
        turn = [Message("assistant", ""), Message("user", reask)]
        _REASK_TOKENS[key] = tok.count_chat(messages + turn) - tok.count_chat(messages)
    return _REASK_TOKENS[key]


def _mul(a: int | None, n: int) -> int | None:
    if n == 0:
        return 0
    return None if a is None else a * n


def _chat(est: Estimator, h: HandlerInfo, model: Model, messages: list[Message],
          handler_params: dict[str, Any], ret: Type | None,
          extra: tuple[int, int | None]) -> ChatCall:
    """The chat request as the runtime sends it: a structured-output request for ``ret``
    (``None``: plain text), parameters merged."""
    from ..runtime.asking import structured_request

    params = GenParams(extra=dict(handler_params))
    if ret is not None:
        messages, params = structured_request(model.caps, ret, messages, params)
    merged = est.models.registry.gen_params(model.params, params)
    return ChatCall(model, messages, merged, extra[0], extra[1],
                    price=est.models.price(model.id))


def _retries(ret: Type, retries: int) -> int:
    """Re-asks a reply of type ``ret`` may need: none for text, which always validates."""
    from ..runtime.asking import is_text

    return 0 if is_text(ret) else retries


def _reply(est: Estimator, call: ChatCall, ret: Type) -> tuple[int, int | None]:
    """(typical, max) tokens of one reply."""
    max_tokens = est.models.max_tokens(call.model, call.params)
    if call.model.id == "echo":  # echo replies with the last user message
        last = next((m.content for m in reversed(call.messages) if m.role == "user"), "")
        n = call.model.tokenizer.count(last)
        return n + call.extra_typical, _add(n, call.extra_bound)
    return typical_reply(call.model, ret, max_tokens), max_tokens


# ------------------------------------------------------------------ prompt

def estimate_prompt(est: Estimator, h: HandlerInfo, args: dict[str, Value]) -> Outcome:
    from ..kinds.prompt.run import render_messages
    from ..runtime.errors import RunError

    decl = h.decl
    assert isinstance(decl, PromptDecl)
    f = prompt_facts(h)
    name = est.name(h.key)
    model = est.models.model(h.module_key, f.model)
    usage = Usage()
    ret = h.signature.returns
    if decl.completion is not None:  # the raw text, counted as it is sent
        from ..kinds.prompt.run import render_completion

        try:
            raw = render_completion(h, _known(args))
        except RunError:
            raw = literal_text(decl.completion.value)
            usage.note(f"{decl.name_span}: the completion text of '{name}' cannot be rendered "
                       f"without the run's values; its fixed text is counted")
        call = _chat(est, h, model, [], f.params, None, _extra([decl.completion.value], args))
        call.raw = raw
        typical, max_tokens = _reply(est, call, ret)
        resent = _retries(ret, f.retries) if call.params.temperature else 0  # only when sampling
        return Outcome(usage + call.usage((name, model.id), resent, typical, max_tokens),
                       Unknown(ret, typical, max_tokens))
    try:
        messages = render_messages(h, _known(args))
    except RunError:
        messages = [Message(m.role, literal_text(m.text.value)) for m in decl.messages]
        usage.note(f"{decl.name_span}: the messages of '{name}' cannot be rendered without "
                   f"the run's values; their fixed text is counted")
    call = _chat(est, h, model, messages, f.params, ret,
                 _extra([m.text.value for m in decl.messages], args))
    typical, max_tokens = _reply(est, call, ret)
    value = Unknown(ret, typical, max_tokens)
    if f.hooks:
        return _hooked(est, h, call, typical, usage)
    return Outcome(usage + call.usage((name, model.id), _retries(ret, f.retries), typical,
                                      max_tokens), value)


def _hooked(est: Estimator, h: HandlerInfo, call: ChatCall, typical: int, usage: Usage) -> Outcome:
    """A prompt with hooks: generations, the hooks' programs and triggers."""
    from ..kinds.prompt.hooks import HOOK_BUDGET

    name = est.name(h.key)
    hooks = [est.program.all_hooks()[k] for k in prompt_facts(h).hooks]
    fires = min(sum(hook_facts(k).max_fires for k in hooks), HOOK_BUDGET)
    per_generation = est.models.max_tokens(call.model, call.params)
    # an explicit max_tokens bounds the whole call; else each generation has the default
    explicit = call.params.max_tokens is not None
    total_max = per_generation if explicit else _mul(per_generation, fires + 1)
    low, high = call.input()
    high_total = _add(_mul(high, fires + 1), _mul(total_max, fires))  # continuations resend the text
    usage = usage + Usage.one((name, call.model.id),
                              Tally(1, fires + 1, low, high_total, typical, total_max), call.price)
    text = Unknown(STR, typical, total_max)
    for hook in hooks:
        facts = hook_facts(hook)
        module = est.program.module_of(hook.key)
        env: dict[str, Value] = {"text": text, "segment": Unknown(STR, 0, total_max)}
        env.update({g: Unknown(STR, 0, total_max) for g in hook.groups})
        hook_name = est.name(hook.key)
        if facts.program is not None:
            prog = est.eval(facts.program, env, module)
            usage = usage + prog.usage.times(facts.max_fires).maybe()
        asked = [e for e in (facts.condition, facts.trigger if facts.trigger_is_call else None)
                 if e is not None]
        for e in asked:
            got = est.eval(e, env, module)
            if got.usage.tallies and any(t.calls_max for t in got.usage.tallies.values()):
                usage = usage + got.usage.unbounded()
                usage.note(f"hook '{hook_name}': its trigger or condition calls handlers at every "
                           f"sentence end of '{name}'; how many sentences there are is not known")
    return Outcome(usage, Unknown(h.signature.returns, typical, total_max))


# ------------------------------------------------------------------ tool, flow

def estimate_tool(est: Estimator, h: HandlerInfo, args: dict[str, Value]) -> Outcome:
    return Outcome(Usage.one((est.name(h.key), ""), Tally(), Price(0.0, 0.0)),
                   Unknown(h.signature.returns))


def estimate_flow(est: Estimator, h: HandlerInfo, args: dict[str, Value]) -> Outcome:
    from ..kinds.flow.run import statement_of
    from ..plan.planner import plan_for

    decl = h.decl
    assert isinstance(decl, FlowDecl)
    module = est.program.module_of(h.key)
    assigns = {st.name: st for st in decl.body if isinstance(st, ast.Assign)}
    order = list(dict.fromkeys(statement_of(sid) for sid in plan_for(est.program, h).order()))
    env: dict[str, Value] = dict(args)
    usage = Usage()
    for name in order:
        if name in assigns:
            out = est.eval(assigns[name].value, env, module)
            usage = usage + out.usage
            env[name] = out.value
    ret = next((st for st in decl.body if isinstance(st, ast.Return)), None)
    if ret is None:
        return Outcome(usage, Unknown(h.signature.returns))
    out = est.eval(ret.value, env, module)
    return Outcome(usage + out.usage, out.value)


# ------------------------------------------------------------------ decompose

def estimate_decompose(est: Estimator, h: HandlerInfo, args: dict[str, Value]) -> Outcome:
    from ..kinds.decompose.ops import build_prefix
    from ..kinds.decompose.run import DEFAULT_MAX_TOKENS

    f = decompose_facts(h)
    name = est.name(h.key)
    ret = h.signature.returns
    depth = est.decompose_depth + 1
    if depth > f.max_depth:
        return Outcome(Usage().note(f"decompose '{name}': a call at depth {depth} is past "
                                    f"max_depth {f.max_depth} and fails without a model call"),
                       Unknown(ret))
    model = est.models.model(h.module_key, f.model)
    own = f.params
    line_max = (None if "max_tokens" in own or "max_tokens" in model.params else DEFAULT_MAX_TOKENS)
    params = est.models.gen_params(model, own, max_tokens=line_max)
    line_max = est.models.max_tokens(model, params)
    question = args[h.signature.params[0].name]
    q_text = str(question.value) if isinstance(question, Known) else ""
    q_typ, q_bound = ((0, 0) if isinstance(question, Known) else (question.typical, question.bound))
    prefix = build_prefix(f.fewshot or "", q_text, [])
    tok = model.tokenizer
    base = tok.count(prefix) if model.caps.completion else tok.count_chat([Message("user", prefix)])
    line_typ = TYPICAL_LINE_TOKENS if line_max is None else min(TYPICAL_LINE_TOKENS, line_max)

    # the bound handlers, each called with a sub-question (one decomposer line)
    est.decompose_depth = depth
    try:
        subs = []
        for key in dict.fromkeys(f.handlers.values()):
            target = est.handlers[key]
            subs.append(est.call(key, {target.signature.params[0].name:
                                       Unknown(STR, line_typ, line_max)}))
    finally:
        est.decompose_depth = depth - 1
    steps = f.max_steps
    one = Usage()
    answer_typ = 0
    answer_bound: int | None = 0
    for i, s in enumerate(subs):
        one = s.usage if i == 0 else one.either(s.usage)
        v = s.value
        answer_typ = max(answer_typ, v.typical if isinstance(v, Unknown) else 0)
        answer_bound = (None if answer_bound is None or not isinstance(v, Unknown) or v.bound is None
                        else max(answer_bound, v.bound))
    step_tokens = _add(line_max, answer_bound)
    low = 2 * (base + q_typ) + line_typ + answer_typ  # the [EOQ] line sees one step
    calls_hi = steps + 1
    high = _add(_mul(_add(base, q_bound), calls_hi), _mul(step_tokens, sum(range(calls_hi))))
    lines = Usage.one((name, model.id), Tally(2, calls_hi, low, high, 2 * line_typ,
                                                _mul(line_max, calls_hi)),
                      est.models.price(model.id))
    usage = lines + one + one.times(steps - 1).maybe() if subs else lines
    usage.note(f"decompose '{name}': 2..{calls_hi} decomposer lines and 1..{steps} steps "
               f"(max_steps {steps}); a foreach step's calls per item are not counted")
    return Outcome(usage, Unknown(ret, answer_typ, answer_bound))


# ------------------------------------------------------------------ route

def estimate_route(est: Estimator, h: HandlerInfo, args: dict[str, Value]) -> Outcome:
    from ..kinds.route.experts import Expert, route_spec

    name = est.name(h.key)
    spec = route_spec(h, name)
    module = est.program.module_of(h.key)
    text = args[spec.param]
    usage = Usage()
    candidates: list[Expert] = list(spec.experts)
    if not candidates and spec.auto_rows is not None:  # automatic experts: demos unknown
        candidates = [Expert("expert_1"), Expert("expert_1", demos=tuple(spec.auto_rows))]
        usage.note(f"route '{name}': automatic experts; an expert is counted with none to "
                   f"all of the demos")
    if spec.by == "rule":
        candidates, usage = _rule_router(est, spec, text, module, usage)
    elif spec.by == "llm":
        usage = usage + _llm_router(est, h, spec, text)
    elif spec.embed is not None:
        emb = est.models.model(h.module_key, spec.embed)
        n = emb.tokenizer.count(str(text.value)) if isinstance(text, Known) else text.typical
        hi = n if isinstance(text, Known) else text.bound
        usage = usage + Usage.one((f"{name} (embed)", emb.id), Tally(1, 1, n, hi, 0, 0),
                                  est.models.price(emb.id))
        usage.note(f"route '{name}': the experts' demos are embedded once per run (and cached "
                   f"on disk); those embedding calls are not counted")
    outs = [_expert(est, h, spec, e, text) for e in candidates]
    if not outs:
        return Outcome(usage, Unknown(h.signature.returns))
    chosen = outs[0].usage
    for o in outs[1:]:
        chosen = chosen.either(o.usage)
    typ = min(o.value.typical if isinstance(o.value, Unknown) else 0 for o in outs)
    bounds = [o.value.bound if isinstance(o.value, Unknown) else 0 for o in outs]
    bound = None if None in bounds else max(b for b in bounds if b is not None)
    return Outcome(usage + chosen, Unknown(h.signature.returns, typ, bound))


def _rule_router(est: Estimator, spec: Any, text: Value, module: Any,
                 usage: Usage) -> tuple[list[Any], Usage]:
    """The experts a rule route may choose, and the usage of its ``when`` expressions."""
    out = []
    first = True
    for e in spec.experts:
        if e.when is None:
            out.append(e)
            break
        got = est.eval(e.when, {spec.param: text}, module)
        usage = usage + (got.usage if first else got.usage.maybe())
        first = False
        if isinstance(got.value, Known):
            if got.value.value:
                out.append(e)
                break
            continue
        out.append(e)
    return out, usage


def _llm_router(est: Estimator, h: HandlerInfo, spec: Any, text: Value) -> Usage:
    from types import SimpleNamespace

    from ..kinds.route.routers import gen_params, router_messages

    model = est.models.model(h.module_key, spec.model)
    shown = str(text.value) if isinstance(text, Known) else ""
    messages = router_messages(SimpleNamespace(program=est.program), spec, shown)  # type: ignore[arg-type]
    extra = (0, 0) if isinstance(text, Known) else (text.typical, text.bound)
    call = _chat(est, h, model, messages, gen_params(spec).extra, None, extra)
    max_tokens = est.models.max_tokens(model, call.params)
    typical = max((model.tokenizer.count(n) for n in spec.names), default=1)
    if max_tokens is not None:
        typical = min(typical, max_tokens)
    return call.usage((f"{spec.name} (router)", model.id), spec.retries, typical, max_tokens)


def _expert(est: Estimator, h: HandlerInfo, spec: Any, expert: Any, text: Value) -> Outcome:
    from ..kinds.route.routers import gen_params
    from ..kinds.route.run import expert_messages

    if expert.delegate is not None:
        target = est.handlers[expert.delegate]
        return est.call(expert.delegate, {target.signature.params[0].name: text})
    model = est.models.model(h.module_key, spec.model_of(expert))
    shown = str(text.value) if isinstance(text, Known) else ""
    extra = (0, 0) if isinstance(text, Known) else (text.typical, text.bound)
    ret = h.signature.returns
    call = _chat(est, h, model, expert_messages(expert, shown), gen_params(spec).extra, ret, extra)
    typical, max_tokens = _reply(est, call, ret)
    key = (f"{spec.name}[{expert.name}]", model.id)
    return Outcome(call.usage(key, _retries(ret, spec.retries), typical, max_tokens),
                   Unknown(ret, typical, max_tokens))


# ------------------------------------------------------------------ sketch

@dataclass(frozen=True)
class _Text:
    """Literal sketch text, the template sources it was rendered from (for the tokens
    unknown values add) and the earlier holes it inserts (``{{ answer }}``)."""

    text: str
    sources: tuple[str, ...] = ()
    refs: tuple[str, ...] = ()


@dataclass(frozen=True)
class _HoleAt:
    """One occurrence of a hole; ``unbounded`` when it sits in a loop over values known
    only at run time (filled any number of times)."""

    hole: Any
    unbounded: bool = False


def _sketch_pieces(tpl: Any, args: dict[str, Value]) -> list[_Text | _HoleAt]:
    """The sketch as the run renders it. With every argument known, the whole template
    rendered once, as the run does: a hole inside a ``{% for %}`` once per iteration, a
    hole in a false ``{% if %}`` not at all. Otherwise (or when it fails to render) it
    is rendered segment by segment, each hole once, a hole inside a loop unbounded."""
    from ..kinds.sketch.render import HoleAt, Markers, render_template
    from ..lang.holes import Hole, repeated_holes
    from ..lang.templates import template_env

    variables = _known(args)
    if all(isinstance(v, Known) for v in args.values()):
        markers = Markers()
        try:
            rendered = render_template(tpl, variables, markers)
        except Exception:  # noqa: BLE001 - the run reports it; the segments are estimated
            pass
        else:
            return [_HoleAt(p.hole) if isinstance(p, HoleAt)
                    else _Text(markers.ref_re.sub("", p), (), tuple(markers.ref_re.findall(p)))
                    for p in rendered]
    repeated = repeated_holes(tpl)
    out: list[_Text | _HoleAt] = []
    for seg in tpl.segments:
        if isinstance(seg, Hole):
            out.append(_HoleAt(seg, seg.name in repeated))
            continue
        try:
            text = template_env().from_string(seg.text).render(**variables)
        except Exception:  # noqa: BLE001 - a value the run would have; its fixed text counts
            text = literal_text(seg.text)
        out.append(_Text(text, (seg.text,)))
    return out


def estimate_sketch(est: Estimator, h: HandlerInfo, args: dict[str, Value]) -> Outcome:
    from ..kinds.sketch.run import _DEFAULT_MAX_TOKENS, HoleSpec
    from ..lang.decoding import decoder_plan, hole_method
    from ..lang.holes import hole_kind, parse_template

    f, template = sketch_facts(h)
    name = est.name(h.key)
    model = est.models.model(h.module_key, f.model)
    decoder, _ = decoder_plan(model.caps, f.decoder, f.beam)
    width = f.beam if decoder == "beam" else 1
    tok = model.tokenizer
    total = Tally()
    prefix = ""  # the sketch so far, holes left empty
    extra: tuple[int, int | None] = (0, 0)  # tokens unknown values and holes add to it
    holes: list[Unknown] = []
    latest: dict[str, Unknown] = {}  # each hole's latest occurrence, for `{{ hole }}`
    looped: list[str] = []
    for piece in _sketch_pieces(parse_template(template), args):
        if isinstance(piece, _Text):
            prefix += piece.text
            more = _extra(list(piece.sources), args)
            for ref in piece.refs:
                v = latest.get(ref)
                if v is not None:
                    more = (more[0] + v.typical, _add(more[1], v.bound))
            extra = (extra[0] + more[0], _add(extra[1], more[1]))
            continue
        seg = piece.hole
        kind = hole_kind(seg)
        method = hole_method(model.caps, seg)[0]
        params = est.models.gen_params(model, f.params,
                                       max_tokens=seg.max_tokens or _DEFAULT_MAX_TOKENS.get(kind))
        hole_max = est.models.max_tokens(model, params)
        if kind == "choice" and seg.choices:
            typ = max(tok.count(c) for c in seg.choices)
        else:
            typ = TYPICAL_LINE_TOKENS if kind == "str" else 2
        typ = typ if hole_max is None else min(typ, hole_max)
        spec = HoleSpec(seg, kind, method, seg.stop, seg.choices, h.decl.name_span)
        calls = _hole(est, model, spec, params, f.retries, decoder, width, prefix, extra,
                      typ, hole_max, first=not holes)
        if piece.unbounded:
            calls = calls.unbounded()
            looped.append(seg.name)
        total = total + calls
        value = Unknown(STR, typ, None if piece.unbounded else hole_max)
        holes.append(value)
        latest[seg.name] = value
        extra = (extra[0] + typ, _add(extra[1], value.bound))
    typical = sum(v.typical for v in holes)
    bounds = [v.bound for v in holes]
    bound = None if None in bounds else sum(b for b in bounds if b is not None)
    usage = Usage.one((name, model.id), total, est.models.price(model.id))
    if decoder != f.decoder:
        usage.note(f"sketch '{name}': decoded {decoder} on {model.id} (declared {f.decoder})")
    for hole in looped:
        usage.note(f"sketch '{name}': hole '{hole}' is filled once per iteration of a loop "
                   "over values known only at run time, so its calls have no upper bound")
    return Outcome(usage, Unknown(h.signature.returns, typical, bound))


def _hole(est: Estimator, model: Model, spec: Any, params: GenParams, retries: int, decoder: str,
          width: int, prefix: str, extra: tuple[int, int | None], typ: int,
          hole_max: int | None, *, first: bool) -> Tally:
    """The calls that fill one hole after the sketch text ``prefix`` (see the module
    docstring)."""
    from ..kinds.sketch.run import describe

    tok = model.tokenizer
    raw_low = tok.count(prefix) + extra[0]
    raw_high = _add(tok.count(prefix), extra[1])
    beams = 1 if first else width
    if spec.method == "scored":  # one score request per partial sketch
        return Tally(1, beams, raw_low, _mul(raw_high, beams), 0, 0)
    if decoder == "beam":  # per partial sketch: `width` completions and a score request
        calls = beams * (width + 1)
        return Tally(width + 1, calls, (width + 1) * raw_low, _mul(raw_high, calls),
                     width * typ, _mul(hole_max, beams * width))
    system = ("You fill in a template. Continue the text exactly where it stops. "
              f"Reply with only {describe(spec)}; nothing else.")
    ask = ChatCall(model, [Message("system", system), Message("user", prefix.rstrip(" \t") or "(empty)")],
                   params, extra[0], extra[1],
                   f"That answer is not valid: {SAMPLE_ERROR}. Reply again with only {describe(spec)}.")
    if decoder == "interleaved":  # a continuation; an invalid one is re-asked in chat
        completion = Tally(1, 1, raw_low, raw_high, typ, hole_max)
        if retries == 0:
            return completion
        return completion + ask.tally(retries - 1, typ, hole_max).maybe()
    return ask.tally(retries, typ, hole_max)


KINDS: dict[str, KindEstimator] = {
    "prompt": estimate_prompt,
    "tool": estimate_tool,
    "flow": estimate_flow,
    "decompose": estimate_decompose,
    "route": estimate_route,
    "sketch": estimate_sketch,
}
