"""Running a ``sketch`` handler: a template whose holes the model fills in order.

The template is split by :func:`~promptflow_dsl.lang.holes.parse_template`; each
literal segment is rendered by Jinja with the handler's inputs, separately and in
order, and text a model wrote is never rendered.  The decoder is the declared one
unless the model lacks what it needs (:func:`~promptflow_dsl.lang.decoding.decoder_plan`:
``beam(n)`` needs log-probabilities, ``interleaved`` raw completion; otherwise
``sequential``), and each hole's constraint is enforced as
:func:`~promptflow_dsl.lang.decoding.hole_method` says: choices (and bools)
*scored* with log-probabilities, ints / floats / regexes decoded under a
*grammar*, or the answer *validated* and the model re-asked up to ``retries``
times.  Every value is validated, whatever enforced it.  The decoders live in
:mod:`.sketch_decoders`; this module holds the shared machinery: model calls
recorded on the step's ledger, the chat request that asks for one hole, choice scoring, raw
continuation, value parsing and the trace events.

Values: a hole's value is the generated text up to its terminator (its
``stop``, else the first characters of the template text after it, e.g. ``"."``
or ``"\\nAnswer:"``; a typed hole that ends the template ends at a newline),
without the terminator and stripped of surrounding whitespace; ``int``, ``float``
and ``bool`` holes give numbers and booleans, choice holes the choice's own
spelling.  The result is a record of the holes, or the
value itself when the return type is not a record (a single hole).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ...check.program import HandlerInfo
from ...diagnostics import Span
from ...lang.constraints import Constraints
from ...lang.decoding import decoder_plan, hole_method
from ...lang.grammars import free_text_grammar, hole_grammar
from ...lang.holes import Hole, hole_kind, parse_template
from ...lang.templates import locate, template_env
from ...lang.types import AnyType, OptionalType, RecordType, constraints_of
from ...lang.values import for_template
from ...models.base import GenParams, Message
from ...runtime.asking import NoValidReply, ask_until_valid
from ...runtime.errors import RunError
from ...runtime.ledger import HandlerRun
from ...syntax import ast
from .ast import SketchDecl
from .details import SketchDetails

if TYPE_CHECKING:  # pragma: no cover
    from ...runtime.context import RunContext
    from ...runtime.trace import Step

_DEFAULT_MAX_TOKENS = {"choice": 32, "bool": 16, "int": 16, "float": 24}
_FIRST_WORD = re.compile(r"\s*\S+")
_INT = re.compile(r"[+-]?\d+(?![\d.]\d)")
_FLOAT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_templates: dict[str, Any] = {}


@dataclass(frozen=True)
class HoleSpec:
    """A hole as the decoders see it."""

    hole: Hole
    kind: str  # choice | bool | int | float | regex | str
    method: str  # scored | grammar | validated | free
    stop: str | None  # the terminator: the hole's stop, else the next literal's first characters
    options: tuple[str, ...] | None  # the choices ("true", "false" for bool)
    span: Span
    constraints: Constraints | None = None  # of the field the hole fills (str(max_length=...))

    @property
    def name(self) -> str:
        return self.hole.name

    @property
    def max_tokens(self) -> int | None:
        return self.hole.max_tokens or _DEFAULT_MAX_TOKENS.get(self.kind)


@dataclass
class Filled:
    """A hole's answer: the typed value and the text it puts into the sketch."""

    value: Any
    text: str
    method: str  # scored | grammar | validated | free
    attempts: int = 1
    scores: dict[str, float] | None = None
    logprob: float = 0.0


def literal_stop(text: str) -> str | None:
    """The first characters of the literal after a hole: up to the end of its first
    word (``".\\nNext"`` → ``"."``, ``"\\nAnswer: "`` → ``"\\nAnswer:"``); a newline
    when it is only whitespace with a newline; None when empty or only spaces."""
    m = _FIRST_WORD.match(text)
    if m is None:
        return "\n" if "\n" in text else None
    return m.group()[:40]


def parse_value(spec: HoleSpec, raw: str) -> tuple[Any, str]:
    """(value, text in the sketch) of an answer.  Raises ``ValueError`` with a message
    fit to send back to the model."""
    s = raw.strip()
    if spec.kind in ("choice", "bool"):
        options = spec.options or ()
        word = s.strip("\"'`*").strip().rstrip(".!,;:").strip("\"'`*").strip()
        found = next((o for o in options if word == o), None)
        found = found or next((o for o in options if word.lower() == o.lower()), None)
        if found is None and spec.kind == "bool" and word.lower() in ("yes", "no"):
            found = "true" if word.lower() == "yes" else "false"
        if found is None:  # the answer starts with one choice, then other words
            starts = [o for o in options if word.lower().startswith(o.lower())
                      and not word[len(o):len(o) + 1].isalnum()]
            found = max(starts, key=len) if starts else None
        if found is None:
            raise ValueError("reply with exactly one of: " + ", ".join(json.dumps(o) for o in options))
        return (found == "true" if spec.kind == "bool" else found), found
    if spec.kind in ("int", "float"):
        m = (_INT if spec.kind == "int" else _FLOAT).match(s)
        if m is None:
            raise ValueError("reply with an integer, in digits" if spec.kind == "int"
                             else "reply with a number, in digits")
        text = m.group().lstrip("+")
        return _within(spec, int(text) if spec.kind == "int" else float(text)), text
    if spec.kind == "regex":
        assert spec.hole.regex is not None
        for cand in (s, s.rstrip(".").strip(), s.split("\n", 1)[0].strip()):
            if re.fullmatch(spec.hole.regex, cand):
                return _within(spec, cand), cand
        raise ValueError(f"reply with text that matches the regular expression {spec.hole.regex}")
    if not s:
        raise ValueError("the answer is empty")
    return _within(spec, s), s


def _within(spec: HoleSpec, value: Any) -> Any:
    """``value`` when it meets the constraints of the hole's field; raises ``ValueError``
    with the violation (the hole is re-asked like any invalid answer)."""
    problem = spec.constraints.violation(value) if spec.constraints is not None else None
    if problem is not None:
        raise ValueError(problem)
    return value


def cut(text: str, stop: str | None) -> str:
    """``text`` up to its first ``stop`` (backends that ignore stop strings)."""
    if stop:
        i = text.find(stop)
        if i >= 0:
            return text[:i]
    return text


def describe(spec: HoleSpec) -> str:
    """What the model is asked for, in words."""
    name = spec.name.replace("_", " ")
    if spec.kind == "choice":
        return f"the {name}: exactly one of " + ", ".join(json.dumps(o) for o in spec.options or ())
    if spec.kind == "bool":
        return f"the {name}: true or false"
    if spec.kind == "int":
        return f"the {name}: an integer, in digits"
    if spec.kind == "float":
        return f"the {name}: a number, in digits"
    if spec.kind == "regex":
        return f"the {name}: text that matches the regular expression {spec.hole.regex}"
    return f"the {name}" + (", on one line" if spec.stop == "\n" else "")


def clean_chat_reply(prefix: str, reply: str, stop: str | None) -> str:
    """A chat reply as a continuation: an echoed prefix or repeated label dropped, cut at ``stop``."""
    text = reply
    head = prefix.rstrip()
    if head and text.startswith(head):
        text = text[len(head):]
    last = head.rsplit("\n", 1)[-1].strip()
    body = text.lstrip()
    if last and (not last[-1].isalnum() or len(last) >= 12) and body.startswith(last):
        text = body[len(last):]
    return cut(text.lstrip(), stop)


class SketchRun(HandlerRun):
    """One call of a sketch: rendered pieces, the model, and the calls it makes."""

    def __init__(self, ctx: RunContext, h: HandlerInfo, inputs: dict[str, Any], step: Step) -> None:
        decl, details = h.decl, h.details
        assert isinstance(decl, SketchDecl) and decl.template is not None
        assert isinstance(details, SketchDetails)
        model_name = decl.model.dotted if decl.model is not None else None
        model_id, backend, _ = ctx.backend_for(h, model_name)
        super().__init__(ctx, h, step, model_id)
        self.decl, self.details = decl, details
        self.model_name, self.model_id = model_name, model_id
        self.caps = backend.capabilities
        self.retries = details.retries
        self.params = dict(details.params)
        self.extra = self.params | {"pflow_handler": self.name}
        self.pieces = self._render(inputs)

    # -- template --------------------------------------------------------------

    def _render(self, inputs: dict[str, Any]) -> list[str | HoleSpec]:
        """Literal segments rendered (each on its own, in order) and hole specs."""
        node = self.decl.template
        assert node is not None
        variables = {k: for_template(v) for k, v in inputs.items()}
        pieces: list[str | HoleSpec] = []
        for seg in parse_template(node.value).segments:
            if isinstance(seg, Hole):
                pieces.append(self._spec(seg, node))
                continue
            try:
                tpl = _templates.get(seg.text)
                if tpl is None:
                    tpl = _templates[seg.text] = template_env().from_string(seg.text)
                pieces.append(tpl.render(**variables))
            except Exception as exc:  # a template error at run time (e.g. a none attribute)
                raise RunError(f"the template of sketch '{self.name}' failed to render: {exc}",
                               span=node.span, handler=self.name) from None
        for i, piece in enumerate(pieces):  # terminators: else the next literal's first characters
            if not isinstance(piece, HoleSpec) or piece.stop is not None:
                continue
            after = pieces[i + 1] if i + 1 < len(pieces) else None
            if isinstance(after, str):
                pieces[i] = replace(piece, stop=literal_stop(after))
            elif after is None and piece.kind != "str":  # a typed value ends the text: one line
                pieces[i] = replace(piece, stop="\n")
        return pieces

    def _spec(self, hole: Hole, node: ast.Str) -> HoleSpec:
        line, col = locate(node, node.value, hole.name_start)
        kind = hole_kind(hole)
        options = hole.choices if kind == "choice" else (("true", "false") if kind == "bool" else None)
        return HoleSpec(hole, kind, hole_method(self.caps, hole)[0], hole.stop, options,
                        Span.point(node.span.file, line, col, len(hole.name)),
                        self._constraints(hole.name))

    def _constraints(self, hole: str) -> Constraints | None:
        """The constraints of the field hole ``hole`` fills (the return type itself for a
        sketch with one hole and no record)."""
        ret = self.h.signature.returns
        if isinstance(ret, RecordType):
            f = ret.field(hole)
            t = f.type if f is not None else None
        else:
            t = ret
        if isinstance(t, OptionalType):
            t = t.inner
        return constraints_of(t) if t is not None else None

    @property
    def holes(self) -> list[HoleSpec]:
        return [p for p in self.pieces if isinstance(p, HoleSpec)]

    def decoder(self) -> tuple[str, str, int, str | None]:
        """(declared label, decoder used, beam width, why it fell back)."""
        declared = self.details.decoder
        width = self.details.beam or 1
        used, why = decoder_plan(self.caps, declared, width)
        label = f"beam({width})" if declared == "beam" else declared
        return label, used, width, why

    # -- model calls -------------------------------------------------------------

    def gen_params(self, spec: HoleSpec, *, grammar: str | None = None, stop: bool = True,
                   temperature: float | None = None, seed: int | None = None) -> GenParams:
        return GenParams(max_tokens=spec.max_tokens, stop=(spec.stop,) if stop and spec.stop else (),
                         grammar=grammar, temperature=temperature, seed=seed, extra=self.extra)

    async def complete(self, spec: HoleSpec, prefix: str, *, temperature: float | None = None,
                       seed: int | None = None) -> str:
        """Continue the sketch text ``prefix`` for one hole (trailing spaces held back,
        so the model writes ``" value"``); the text up to the hole's terminator."""
        head = prefix.rstrip(" \t")
        grammar = None
        if spec.method == "grammar":
            grammar = hole_grammar(spec.hole, lead_space=head != prefix, terminator=spec.stop,
                                   choices=spec.options)
        elif spec.kind == "str" and spec.stop and self.caps.grammar:
            grammar = free_text_grammar(spec.stop, lead_space=head != prefix)
        params = self.gen_params(spec, grammar=grammar, temperature=temperature, seed=seed)
        reply, hit, _ = await self.ctx.complete(self.h, self.model_name, head, params)
        self.ledger.record(reply.usage, hit)
        return cut(reply.text, spec.stop)

    async def score(self, prefix: str, continuations: list[str]) -> list[float]:
        rows, hit, _ = await self.ctx.score(self.h, self.model_name, prefix, continuations)
        self.ledger.record(None, hit)
        return [r.logprob for r in rows]

    # -- filling one hole ----------------------------------------------------------

    async def choose(self, spec: HoleSpec, prefix: str) -> Filled:
        """Score every option's full continuation (option + terminator); the best wins."""
        options = spec.options or ()
        term = spec.stop or ""
        lps = await self.score(prefix, [o + term for o in options])
        best = max(range(len(options)), key=lambda i: lps[i])
        value, text = parse_value(spec, options[best])
        return Filled(value, text, "scored", 1, dict(zip(options, lps, strict=True)), lps[best])

    async def ask(self, spec: HoleSpec, prefix: str, first: tuple[str, str] | None = None) -> Filled:
        """Ask for the hole in a chat request, validate, and re-ask up to ``retries`` times.

        ``first``: an earlier invalid answer (from a raw continuation) and its error,
        counted as the first attempt.  Raises :class:`RunError` naming the hole.
        """
        system = ("You fill in a template. Continue the text exactly where it stops. "
                  f"Reply with only {describe(spec)}; nothing else.")
        conversation = [Message("system", system), Message("user", prefix.rstrip(" \t") or "(empty)")]
        grammar = hole_grammar(spec.hole, choices=spec.options) if spec.method == "grammar" else None
        try:
            asked = await ask_until_valid(
                self.ctx, self.h, self.model_name, conversation, self.gen_params(spec, grammar=grammar),
                lambda answer: parse_value(spec, answer), retries=self.retries, ledger=self.ledger,
                show=False, first=first, clean=lambda reply: clean_chat_reply(prefix, reply, spec.stop),
                reask=lambda error: f"That answer is not valid: {error}. Reply again with only "
                                    f"{describe(spec)}.")
        except NoValidReply as exc:
            n = exc.attempts
            raise RunError(f"sketch '{self.name}': hole '{spec.name}' got no valid answer after {n} "
                           f"attempt{'s' if n != 1 else ''}: {exc.error} (last answer: "
                           f"{exc.answer.strip()!r})", span=spec.span, handler=self.name) from None
        value, text = asked.value
        method = spec.method if spec.method != "scored" else "validated"
        return Filled(value, text, method, asked.attempts)

    async def continue_or_ask(self, spec: HoleSpec, prefix: str) -> Filled:
        """Interleaved filling: continue the raw text; an invalid answer is re-asked in chat."""
        raw = await self.complete(spec, prefix)
        try:
            value, text = parse_value(spec, raw)
        except ValueError as exc:
            return await self.ask(spec, prefix, first=(raw, str(exc)))
        method = spec.method if spec.method in ("grammar", "free") else "validated"
        return Filled(value, text, method, 1)

    # -- trace -------------------------------------------------------------------

    def hole_event(self, spec: HoleSpec, f: Filled, decoder: str) -> None:
        how = f.method + (f", {f.attempts} attempts" if f.attempts > 1 else "")
        if f.scores:
            how += ": " + ", ".join(f"{json.dumps(o)} {lp:.3f}" for o, lp in f.scores.items())
        self.event("hole", f"{spec.name} = {json.dumps(f.value, ensure_ascii=False)} "
                           f"({decoder}, {how})",
                   hole=spec.name, value=f.value, text=f.text, decoder=decoder, method=f.method,
                   attempts=f.attempts, scores=f.scores, logprob=f.logprob if f.scores else None)


async def run(ctx: RunContext, h: HandlerInfo, inputs: dict[str, Any], step: Step) -> Any:
    """Run sketch ``h``; returns the record of its holes (or the single hole's value).
    Raises :class:`RunError`."""
    from .decoders import decode

    run = SketchRun(ctx, h, inputs, step)
    label, used, width, why = run.decoder()
    shown = f"beam({width})" if used == "beam" else used
    if why is not None:
        run.event("decoder", f"{label} -> {shown}: {why}, which model '{run.model_id}' lacks",
                  declared=label, used=shown, reason=why, model=run.model_id)
    else:
        run.event("decoder", f"{shown} on model '{run.model_id}'", declared=label, used=shown,
                  model=run.model_id)
    run.ledger.write()  # the model, before any call
    text, filled = await decode(run, used, width)
    holes = {name: f.value for name, f in filled.items()}
    ctx.annotate(step, reply=text, extra={
        "decoder": label, "decoder_used": shown, "fallback": why,
        "holes": {n: {"value": f.value, "method": f.method, "attempts": f.attempts,
                      "scores": f.scores} for n, f in filled.items()}})
    ret = h.signature.returns
    if isinstance(ret, (RecordType, AnyType)) or len(holes) != 1:
        return holes
    return next(iter(holes.values()))
