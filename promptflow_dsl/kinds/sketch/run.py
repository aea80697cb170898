"""Running a ``sketch`` handler: a template whose holes the model fills in order.

The template is split by :func:`~promptflow_dsl.lang.holes.parse_template` and
rendered once by Jinja with the handler's inputs before any hole is filled
(:mod:`.render`: a ``{% for %}`` may repeat a hole, a literal may insert an earlier
hole's text); text a model wrote is never rendered.  The decoder is the declared one
unless the model lacks what it needs (:func:`~promptflow_dsl.lang.decoding.decoder_plan`:
``var(n)`` / ``beam_var(n)`` need log-probabilities, ``interleaved`` raw completion;
otherwise ``sequential``), and each hole's constraint is enforced as
:func:`~promptflow_dsl.lang.decoding.hole_method` says: choices (and bools)
*scored* with log-probabilities, ints / floats / regexes (and character bounds)
decoded under a *grammar*, or the answer *validated* and the model re-asked up to
``retries`` times.  Every value is validated, whatever enforced it.  The decoders
live in :mod:`.decoders`; this module holds the shared machinery: model calls
recorded on the step's ledger, the chat request that asks for one hole, choice
scoring, raw continuation, value parsing and the trace events.

Values: a hole's value is the generated text up to its terminator (the first of its
``stop`` strings, else the first characters of the template text after it, e.g. ``"."``
or ``"\\nAnswer:"``; a typed hole that ends the template ends at a newline),
without the terminator (with it for ``keep_stop``) and stripped of surrounding
whitespace; ``int``, ``float`` and ``bool`` holes give numbers and booleans, choice
holes the choice's own spelling.  The result is a record of the holes (a list for a
hole inside a loop, none for a hole that did not occur), or the value itself when the
return type is not a record (a single hole).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ...check.program import HandlerInfo
from ...diagnostics import Span
from ...lang.constraints import PATTERN_TIMEOUT, Constraints, full_match
from ...lang.decoding import decoder_plan, hole_method, length_grammar
from ...lang.grammars import free_text_grammar, hole_grammar
from ...lang.holes import Hole, hole_kind, parse_template, repeated_holes
from ...lang.templates import locate
from ...lang.types import AnyType, ListType, OptionalType, RecordType, constraints_of
from ...lang.values import for_template
from ...models.base import GenParams, Message, Scored
from ...runtime.asking import NoValidReply, ask_until_valid
from ...runtime.errors import RunError
from ...runtime.ledger import HandlerRun
from ...syntax import ast
from .ast import SketchDecl
from .details import SketchDetails
from .render import HoleAt, Markers, fill_refs, render_template, static_head

if TYPE_CHECKING:  # pragma: no cover
    from ...runtime.context import RunContext
    from ...runtime.trace import Step

_DEFAULT_MAX_TOKENS = {"choice": 32, "bool": 16, "int": 16, "float": 24}
_FIRST_WORD = re.compile(r"\s*\S+")
_INT = re.compile(r"[+-]?\d+(?![\d.]\d)")
_FLOAT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


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
    key: str = ""  # the occurrence: the name, or name[i] inside a loop
    stops: tuple[str, ...] = ()  # every stop string (the hole's, else the terminator)

    @property
    def name(self) -> str:
        return self.hole.name

    @property
    def id(self) -> str:
        """The occurrence's key (the name outside loops)."""
        return self.key or self.hole.name

    @property
    def terminators(self) -> tuple[str, ...]:
        return self.stops or ((self.stop,) if self.stop else ())

    @property
    def keep(self) -> bool:
        """The stop string that ended the value is part of it (``keep_stop``)."""
        return self.hole.keep_stop

    @property
    def bounded(self) -> bool:
        """The hole has a character length bound (``min_chars`` / ``max_chars``)."""
        return self.hole.min_chars is not None or self.hole.max_chars is not None

    @property
    def max_tokens(self) -> int | None:
        if self.hole.max_tokens is None and self.hole.max_chars is not None:
            return self.hole.max_chars + 1  # a token has at least one character (+ a lead space)
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
    kept = ""
    if spec.keep:  # the stop string that ended the value stays at its end
        for t in spec.terminators:
            if t.strip() and s.endswith(t.strip()):  # matched on the stripped answer
                kept = t.strip()
                s = s[:len(s) - len(kept)].strip()
                break
            if not t.strip() and s and raw.endswith(t):  # a blank stop ("\n"): strip drops it
                kept = t
                break
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
            try:
                matched = full_match(spec.hole.regex, cand)
            except TimeoutError:  # a pattern that backtracks without bound on this text
                raise ValueError(f"reply with shorter text that matches the regular expression "
                                 f"{spec.hole.regex} (it took more than {PATTERN_TIMEOUT:g} s "
                                 f"on this one)") from None
            if matched:
                return _within(spec, _length(spec, cand + kept)), cand + kept
        raise ValueError(f"reply with text that matches the regular expression {spec.hole.regex}")
    if not s:
        raise ValueError("the answer is empty")
    return _within(spec, _length(spec, s + kept)), s + kept


def _length(spec: HoleSpec, value: str) -> str:
    """``value`` when its length is within the hole's ``min_chars`` / ``max_chars``;
    raises ``ValueError`` saying what is wrong."""
    lo, hi = spec.hole.min_chars, spec.hole.max_chars
    if hi is not None and len(value) > hi:
        raise ValueError(f"the answer must have at most {hi} characters, got {len(value)}")
    if lo is not None and len(value) < lo:
        raise ValueError(f"the answer must have at least {lo} characters, got {len(value)}")
    return value


def _within(spec: HoleSpec, value: Any) -> Any:
    """``value`` when it meets the constraints of the hole's field; raises ``ValueError``
    with the violation (the hole is re-asked like any invalid answer)."""
    problem = spec.constraints.violation(value) if spec.constraints is not None else None
    if problem is not None:
        raise ValueError(problem)
    return value


def cut(text: str, stop: str | tuple[str, ...] | None, keep: bool = False) -> str:
    """``text`` up to the first of its stop strings (backends that ignore stop strings),
    with that stop string when ``keep``."""
    stops = (stop,) if isinstance(stop, str) else (stop or ())
    found = [(i, s) for s in stops if s and (i := text.find(s)) >= 0]
    if not found:
        return text
    i, s = min(found, key=lambda f: (f[0], -len(f[1])))
    return text[:i] + (s if keep else "")


def describe(spec: HoleSpec) -> str:
    """What the model is asked for, in words."""
    name = spec.name.replace("_", " ")
    lo, hi = spec.hole.min_chars, spec.hole.max_chars
    if lo is not None or hi is not None:
        size = (f"{lo} to {hi}" if lo is not None and hi is not None else
                f"at most {hi}" if hi is not None else f"at least {lo}")
        plain = replace(spec, hole=replace(spec.hole, min_chars=None, max_chars=None))
        return f"{describe(plain)} ({size} characters)"
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


def clean_chat_reply(prefix: str, reply: str, stop: str | tuple[str, ...] | None,
                     keep: bool = False) -> str:
    """A chat reply as a continuation: an echoed prefix or repeated label dropped, cut at ``stop``."""
    text = reply
    head = prefix.rstrip()
    if head and text.startswith(head):
        text = text[len(head):]
    last = head.rsplit("\n", 1)[-1].strip()
    body = text.lstrip()
    if last and (not last[-1].isalnum() or len(last) >= 12) and body.startswith(last):
        text = body[len(last):]
    return cut(text.lstrip(), stop, keep)


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
        self.markers = Markers()
        self.pieces = self._render(inputs)

    # -- template --------------------------------------------------------------

    def _render(self, inputs: dict[str, Any]) -> list[str | HoleSpec]:
        """The rendered literals and the hole occurrences, in order (:mod:`.render`)."""
        node = self.decl.template
        assert node is not None
        variables = {k: for_template(v) for k, v in inputs.items()}
        self.template = parse_template(node.value)
        try:
            rendered = render_template(self.template, variables, self.markers)
        except Exception as exc:  # a template error at run time (e.g. a none attribute)
            raise RunError(f"the template of sketch '{self.name}' failed to render: {exc}",
                           span=node.span, handler=self.name) from None
        pieces: list[str | HoleSpec] = [p if isinstance(p, str) else self._spec(p, node)
                                        for p in rendered]
        for i, piece in enumerate(pieces):  # terminators: else the next literal's first characters
            if not isinstance(piece, HoleSpec) or piece.stop is not None:
                continue
            after = pieces[i + 1] if i + 1 < len(pieces) else None
            if isinstance(after, str):
                pieces[i] = replace(piece, stop=literal_stop(static_head(after)))
            elif after is None and piece.kind != "str":  # a typed value ends the text: one line
                pieces[i] = replace(piece, stop="\n")
        return pieces

    def _spec(self, at: HoleAt, node: ast.Str) -> HoleSpec:
        hole = at.hole
        line, col = locate(node, node.value, hole.name_start)
        kind = hole_kind(hole)
        options = hole.choices if kind == "choice" else (("true", "false") if kind == "bool" else None)
        return HoleSpec(hole, kind, hole_method(self.caps, hole)[0], hole.stop, options,
                        Span.point(node.span.file, line, col, len(hole.name)),
                        self._constraints(hole.name), at.key, hole.stops or ())

    def literal(self, piece: str, filled: dict[str, Filled]) -> str:
        """A rendered literal with the holes it reads (``{{ answer }}``) filled in from
        ``filled`` (the latest occurrence of each).  Raises :class:`RunError` when the
        hole has no value (it was in a false ``{% if %}``)."""
        def lookup(name: str) -> str:
            for key in reversed(filled):
                if key == name or key.startswith(name + "["):
                    return filled[key].text
            raise RunError(f"sketch '{self.name}': the template reads hole '{name}', which has "
                           f"no value here", span=self.decl.span, handler=self.name)

        return fill_refs(piece, self.markers, lookup)

    def result(self, filled: dict[str, Filled]) -> dict[str, Any]:
        """The holes' values by name: a list for a hole inside a loop, None for a hole
        that did not occur."""
        repeated = repeated_holes(self.template)
        out: dict[str, Any] = {}
        for h in self.template.holes:
            if h.name in repeated:
                out[h.name] = [f.value for k, f in filled.items() if k.startswith(h.name + "[")]
            else:
                out[h.name] = filled[h.name].value if h.name in filled else None
        return out

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
        if isinstance(t, ListType):  # a hole inside a loop fills the items
            t = t.item
        return constraints_of(t) if t is not None else None

    @property
    def holes(self) -> list[HoleSpec]:
        return [p for p in self.pieces if isinstance(p, HoleSpec)]

    def decoder(self) -> tuple[str, str, int, str | None]:
        """(declared label, decoder used, beam width, why it fell back)."""
        declared = self.details.decoder
        width = self.details.beam or 1
        label = self.details.label or (f"beam({width})" if declared == "beam" else declared)
        used, why = decoder_plan(self.caps, declared, width, label=label)
        return label, used, width, why

    # -- model calls -------------------------------------------------------------

    def gen_params(self, spec: HoleSpec, *, grammar: str | None = None, stop: bool = True,
                   temperature: float | None = None, seed: int | None = None) -> GenParams:
        stops = spec.terminators if stop and not spec.keep else ()  # keep_stop: cut here
        return GenParams(max_tokens=spec.max_tokens, stop=stops,
                         grammar=grammar, temperature=temperature, seed=seed, extra=self.extra)

    async def complete(self, spec: HoleSpec, prefix: str, *, temperature: float | None = None,
                       seed: int | None = None) -> str:
        """Continue the sketch text ``prefix`` for one hole (trailing spaces held back,
        so the model writes ``" value"``); the text up to the hole's terminator."""
        head = prefix.rstrip(" \t")
        grammar = None
        one_stop = spec.stop if len(spec.terminators) <= 1 and not spec.keep else None
        if spec.method == "grammar":
            grammar = hole_grammar(spec.hole, lead_space=head != prefix, terminator=one_stop,
                                   choices=spec.options)
        elif spec.kind == "str" and spec.bounded and self.caps.grammar:
            grammar = length_grammar(spec.hole.min_chars, spec.hole.max_chars, terminator=one_stop,
                                     lead_space=head != prefix)
        elif spec.kind == "str" and one_stop and self.caps.grammar:
            grammar = free_text_grammar(one_stop, lead_space=head != prefix)
        params = self.gen_params(spec, grammar=grammar, temperature=temperature, seed=seed)
        reply, hit, _ = await self.ctx.complete(self.h, self.model_name, head, params)
        self.ledger.record(reply.usage, hit)
        return cut(reply.text, spec.terminators, spec.keep)

    async def score(self, prefix: str, continuations: list[str]) -> list[float]:
        return [r.logprob for r in await self.score_rows(prefix, continuations)]

    async def score_rows(self, prefix: str, continuations: list[str]) -> list[Scored]:
        """Each continuation's log-probability and token count after ``prefix`` (one request)."""
        rows, hit, _ = await self.ctx.score(self.h, self.model_name, prefix, continuations)
        self.ledger.record(None, hit)
        return rows

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
        if spec.kind == "str" and spec.bounded and self.caps.grammar:
            grammar = length_grammar(spec.hole.min_chars, spec.hole.max_chars)
        try:
            asked = await ask_until_valid(
                self.ctx, self.h, self.model_name, conversation, self.gen_params(spec, grammar=grammar),
                lambda answer: parse_value(spec, answer), retries=self.retries, ledger=self.ledger,
                show=False, first=first,
                clean=lambda reply: clean_chat_reply(prefix, reply, spec.terminators, spec.keep),
                reask=lambda error: f"That answer is not valid: {error}. Reply again with only "
                                    f"{describe(spec)}.")
        except NoValidReply as exc:
            n = exc.attempts
            raise RunError(f"sketch '{self.name}': hole '{spec.name}' got no valid answer after {n} "
                           f"attempt{'s' if n != 1 else ''}: {exc.error} (last answer: "
                           f"{exc.answer.strip()!r})", span=spec.span, handler=self.name) from None
        value, text = asked.value
        return Filled(value, text, self.method(spec, grammar is not None), asked.attempts)

    def method(self, spec: HoleSpec, grammar: bool) -> str:
        """How an asked or continued answer was enforced, for the trace."""
        if spec.method in ("grammar", "free"):
            if spec.bounded:
                return "grammar" if grammar else "validated"
            return spec.method
        return "validated"

    async def continue_or_ask(self, spec: HoleSpec, prefix: str) -> Filled:
        """Interleaved filling: continue the raw text; an invalid answer is re-asked in chat."""
        raw = await self.complete(spec, prefix)
        try:
            value, text = parse_value(spec, raw)
        except ValueError as exc:
            return await self.ask(spec, prefix, first=(raw, str(exc)))
        return Filled(value, text, self.method(spec, self.caps.grammar), 1)

    # -- trace -------------------------------------------------------------------

    def hole_event(self, spec: HoleSpec, f: Filled, decoder: str) -> None:
        how = f.method + (f", {f.attempts} attempts" if f.attempts > 1 else "")
        if f.scores:
            how += ": " + ", ".join(f"{json.dumps(o)} {lp:.3f}" for o, lp in f.scores.items())
        self.event("hole", f"{spec.id} = {json.dumps(f.value, ensure_ascii=False)} "
                           f"({decoder}, {how})",
                   hole=spec.id, value=f.value, text=f.text, decoder=decoder, method=f.method,
                   attempts=f.attempts, scores=f.scores, logprob=f.logprob if f.scores else None)


async def run(ctx: RunContext, h: HandlerInfo, inputs: dict[str, Any], step: Step) -> Any:
    """Run sketch ``h``; returns the record of its holes (or the single hole's value).
    Raises :class:`RunError`."""
    from .decoders import decode

    run = SketchRun(ctx, h, inputs, step)
    label, used, width, why = run.decoder()
    shown = label if used == "beam" else used
    if why is not None:
        run.event("decoder", f"{label} -> {shown}: {why}, which model '{run.model_id}' lacks",
                  declared=label, used=shown, reason=why, model=run.model_id)
    else:
        run.event("decoder", f"{shown} on model '{run.model_id}'", declared=label, used=shown,
                  model=run.model_id)
    run.ledger.write()  # the model, before any call
    text, filled = await decode(run, used, width, run.details.search or "beam_var", label)
    holes = run.result(filled)
    ctx.annotate(step, reply=text, extra={
        "decoder": label, "decoder_used": shown, "fallback": why,
        "holes": {n: {"value": f.value, "method": f.method, "attempts": f.attempts,
                      "scores": f.scores} for n, f in filled.items()}})
    ret = h.signature.returns
    if isinstance(ret, (RecordType, AnyType)) or len(holes) != 1:
        return holes
    return next(iter(holes.values()))
