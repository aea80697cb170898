"""What a model can enforce, known before anything runs: the static capability
table the checker uses for sketches, the fallback rules shared with the runtime,
and the subset of regular expressions that becomes a GBNF grammar.

Nothing here imports litellm, llama-cpp or the model layer: the table mirrors
``models.remote.capabilities_for(..., ask_litellm=False)`` and the built-in
backends (a test keeps them in agreement), because importing the model layer
would cost ``pflow check`` a third of its time.

=========================================  ==========  =======  ========  =======
model id                                   completion  prefill  logprobs  grammar
=========================================  ==========  =======  ========  =======
``local/smollm2``                          ✓           ✓        ✓         ✓
``echo``                                   ✓           –        –         –
``text-completion-openai/…``               ✓           –        ✓         –
any id with ``api_base`` (OpenAI-style)    if declared –        = compl.  if declared
``anthropic/…``, ``claude-…``              –           ✓        –         –
anything else (``openai/…`` chat, …)       –           –        –         –
=========================================  ==========  =======  ========  =======

A model parameter named like a capability (``completion: true``, ``logprobs:
true``, ``grammar: true``, ...) overrides its row, as at run time.

The fallback rules (:func:`decoder_plan`, :func:`hole_method`) take any object
with the capability attributes, so the checker (with :class:`ModelCaps`) and the
runtime (with a backend's ``Capabilities``) decide the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

__all__ = ["ModelCaps", "Unsupported", "static_capabilities", "decoder_plan", "hole_kind",
           "hole_method", "regex_to_gbnf", "gbnf_literal", "gbnf_class_char", "reask_phrase",
           "sketch_warnings", "check_sketch_capabilities"]


@dataclass(frozen=True)
class ModelCaps:
    """The capabilities that decide how a sketch is decoded (names as in ``models.base``)."""

    chat: bool = True
    completion: bool = False
    prefill: bool = False
    logprobs: bool = False
    grammar: bool = False
    json_schema: bool = False


_NAMES = frozenset(f.name for f in fields(ModelCaps))
_PREFILL_PROVIDERS = frozenset({"anthropic", "bedrock_anthropic"})


def static_capabilities(model_id: str, params: Mapping[str, Any] | None = None) -> ModelCaps:
    """The table of the module docstring, then overrides from the model's ``params``."""
    params = dict(params or {})
    lower = model_id.lower()
    provider = lower.split("/", 1)[0] if "/" in lower else ("anthropic" if lower.startswith("claude")
                                                             else "")
    if model_id == "local/smollm2":
        caps = ModelCaps(completion=True, prefill=True, logprobs=True, grammar=True, json_schema=True)
    elif model_id == "echo":
        caps = ModelCaps(completion=True)
    elif "embed" in lower:
        caps = ModelCaps(chat=False)
    elif provider == "text-completion-openai":
        caps = ModelCaps(completion=True, logprobs=True)
    elif params.get("api_base"):
        completion = bool(params.get("completion", False))
        caps = ModelCaps(completion=completion, logprobs=completion,
                         json_schema=bool(params.get("json_schema", False)))
    else:
        caps = ModelCaps(prefill=provider in _PREFILL_PROVIDERS)
    overrides = {k: v for k, v in params.items() if k in _NAMES and isinstance(v, bool)}
    return replace(caps, **overrides) if overrides else caps


# ------------------------------------------------------------------ fallback rules


def decoder_plan(caps: Any, decoder: str, width: int = 1) -> tuple[str, str | None]:
    """(decoder the runtime uses, why it differs from the declared one or None).

    ``beam`` needs token log-probabilities and ``interleaved`` raw completion;
    without them the runtime decodes sequentially (one chat call per hole).
    """
    if decoder == "beam" and not caps.logprobs:
        return "sequential", f"beam({width}) needs token log-probabilities"
    if decoder == "interleaved" and not caps.completion:
        return "sequential", "interleaved decoding needs raw text completion"
    return decoder, None


def hole_kind(hole: Any) -> str:
    """``choice``, ``bool``, ``int``, ``float``, ``regex`` or ``str``."""
    if hole.choices:
        return "choice"
    if hole.type in ("bool", "int", "float"):
        return hole.type
    return "regex" if hole.regex is not None else "str"


def hole_method(caps: Any, hole: Any) -> tuple[str, str | None]:
    """How a hole's constraint is enforced on a model with ``caps``, and why not better.

    ``scored`` (each choice's continuation scored with log-probabilities; choices
    and bool), ``grammar`` (GBNF-constrained decoding), ``validated`` (the answer
    is checked and the model re-asked) or ``free`` (a plain text hole).
    """
    kind = hole_kind(hole)
    if kind == "str":
        return "free", None
    if kind in ("choice", "bool"):
        if caps.logprobs:
            return "scored", None
        if caps.grammar:
            return "grammar", None
        return "validated", "no token log-probabilities or grammar"
    if not caps.grammar:
        return "validated", "no grammar-constrained decoding"
    if kind == "regex":
        try:
            regex_to_gbnf(hole.regex)
        except Unsupported as exc:
            return "validated", f"the regex cannot become a grammar ({exc})"
    return "grammar", None


def reask_phrase(retries: int) -> str:
    if retries <= 0:
        return "validates the answer and fails if it is not valid (retries 0)"
    times = "once" if retries == 1 else f"up to {retries} times"
    return f"validates the answer and re-asks {times}"


def sketch_warnings(caps: Any, model_id: str, decoder: str, width: int, holes: Any,
                    retries: int) -> tuple[str | None, list[tuple[Any, str]]]:
    """The checker's warnings: (for the decoder clause or None, [(hole, message)])."""
    used, why = decoder_plan(caps, decoder, width)
    on_decoder = None
    if why is not None:
        gives = "does not give" if decoder == "beam" else "does not offer"
        what = why.split(" needs ", 1)
        on_decoder = (f"{what[0]} needs {what[1]}, which model '{model_id}' {gives}: the runtime "
                      f"falls back to {used} decoding")
    out = []
    for hole in holes:
        method, reason = hole_method(caps, hole)
        if method != "validated":
            continue
        kind = hole_kind(hole)
        label = {"choice": "the choices", "bool": "a bool", "int": "an integer",
                 "float": "a number", "regex": "the regex"}[kind]
        if reason and reason.startswith("the regex"):
            msg = f"hole '{hole.name}': {reason}, so model '{model_id}' cannot enforce it while decoding"
        else:
            msg = (f"hole '{hole.name}': model '{model_id}' cannot enforce {label} while decoding "
                   f"({reason})")
        out.append((hole, f"{msg}: the runtime {reask_phrase(retries)}"))
    return on_decoder, out


# ------------------------------------------------------------------ regex -> GBNF


class Unsupported(ValueError):
    """A regular expression outside the subset that becomes a grammar (the message says why)."""


_MAX_EXPANSION = 64  # bounded repeats {m,n} are written out; larger counts are not converted
_MAX_GRAMMAR = 20_000


def gbnf_literal(text: str) -> str:
    """``text`` as a quoted GBNF string."""
    return '"' + "".join(_escape(ch, '"\\') for ch in text) + '"'


def gbnf_class_char(ch: str) -> str:
    """``ch`` written for the inside of a GBNF character class."""
    return _escape(ch, _CLASS_SPECIALS)


_CLASS_SPECIALS = "]\\-^["


def _escape(ch: str, specials: str) -> str:
    if ch in "-^" and ch in specials:  # llama.cpp knows no \- or \^ escape
        return f"\\x{ord(ch):02X}"
    if ch in specials:
        return "\\" + ch
    if ch == "\n":
        return "\\n"
    if ch == "\t":
        return "\\t"
    if ch == "\r":
        return "\\r"
    if ord(ch) < 0x20 or ord(ch) == 0x7F:
        return f"\\x{ord(ch):02X}"
    return ch


def regex_to_gbnf(pattern: str) -> str:
    """A GBNF expression whose language is the strings ``re.fullmatch(pattern, s)`` accepts.

    The subset: literals, ``.``, classes (ranges, negation, ``\\d \\w \\s`` inside and
    out; ``\\D \\W \\S`` alone), ``? * +`` and ``{m,n}`` (greedy or lazy: the same
    language under a full match), alternation, groups, and ``^``/``$`` at the ends.
    ``\\d`` and ``\\w`` become their ASCII forms (a subset of Python's, so every
    grammar output still matches; the runtime validates anyway).  Anything else —
    flags, back-references, look-arounds, ``\\b``, atomic or possessive groups —
    raises :class:`Unsupported`.
    """
    import re._constants as c
    import re._parser as p

    try:
        tree = p.parse(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        raise Unsupported(f"invalid regex: {exc}") from None
    flags = tree.state.flags & (re.IGNORECASE | re.DOTALL | re.MULTILINE | re.ASCII)
    if flags & ~(re.MULTILINE | re.ASCII):
        raise Unsupported("flags such as (?i) or (?s) are not supported")
    items = list(tree)
    if items and items[0] == (c.AT, c.AT_BEGINNING):
        items = items[1:]
    if items and items[-1] in ((c.AT, c.AT_END), (c.AT, c.AT_END_STRING)):
        items = items[:-1]
    out = _Converter(c).seq(items)
    if len(out) > _MAX_GRAMMAR:
        raise Unsupported("the grammar would be too large")
    return out or '""'


class _Converter:
    def __init__(self, c: Any) -> None:
        self.c = c
        self.categories = {
            c.CATEGORY_DIGIT: "0-9", c.CATEGORY_WORD: "0-9A-Za-z_",
            c.CATEGORY_SPACE: " \\t\\n\\r\\x0B\\x0C"}
        self.negated = {c.CATEGORY_NOT_DIGIT: c.CATEGORY_DIGIT, c.CATEGORY_NOT_WORD: c.CATEGORY_WORD,
                        c.CATEGORY_NOT_SPACE: c.CATEGORY_SPACE}

    def seq(self, items: Any) -> str:
        parts: list[str] = []
        literal = ""
        for op, av in items:
            if op is self.c.LITERAL:
                literal += chr(av)
                continue
            if literal:
                parts.append(gbnf_literal(literal))
                literal = ""
            parts.append(self.item(op, av))
        if literal:
            parts.append(gbnf_literal(literal))
        return " ".join(parts)

    def group(self, items: Any) -> str:
        body = self.seq(items)
        return f"({body})" if body else '""'

    def item(self, op: Any, av: Any) -> str:
        c = self.c
        if op is c.NOT_LITERAL:
            return "[^" + _escape(chr(av), _CLASS_SPECIALS) + "]"
        if op is c.ANY:
            return "[^\\n]"
        if op is c.IN:
            return self.klass(av)
        if op is c.SUBPATTERN:
            _, add, remove, sub = av
            if add or remove:
                raise Unsupported("inline flags in a group are not supported")
            return self.group(sub)
        if op is c.BRANCH:
            return "(" + " | ".join(self.seq(alt) or '""' for alt in av[1]) + ")"
        if op in (c.MAX_REPEAT, c.MIN_REPEAT):
            return self.repeat(*av)
        if op is c.AT:
            shown = {c.AT_BOUNDARY: "\\b", c.AT_NON_BOUNDARY: "\\B", c.AT_BEGINNING: "^",
                     c.AT_END: "$", c.AT_BEGINNING_STRING: "\\A", c.AT_END_STRING: "\\Z"}
            raise Unsupported(f"the anchor {shown.get(av, av)} is only supported as a leading ^ "
                              f"or a trailing $")
        name = {c.GROUPREF: "back-references", c.ASSERT: "look-arounds", c.ASSERT_NOT: "look-arounds"}
        raise Unsupported(f"{name.get(op, str(op).lower())} are not supported")

    def klass(self, items: Any) -> str:
        c = self.c
        negate = bool(items) and items[0][0] is c.NEGATE
        body = items[1:] if negate else items
        if len(body) == 1 and body[0][0] is c.CATEGORY and body[0][1] in self.negated:
            if negate:
                raise Unsupported("a negated class of a negated category")
            return "[^" + self.categories[self.negated[body[0][1]]] + "]"
        chars = []
        for op, av in body:
            if op is c.LITERAL:
                chars.append(_escape(chr(av), _CLASS_SPECIALS))
            elif op is c.RANGE:
                lo, hi = (_escape(chr(x), _CLASS_SPECIALS) for x in av)
                chars.append(f"{lo}-{hi}")
            elif op is c.CATEGORY and av in self.categories:
                chars.append(self.categories[av])
            else:
                raise Unsupported("\\D, \\W or \\S inside a character class")
        if not chars:
            raise Unsupported("an empty character class")
        return "[" + ("^" if negate else "") + "".join(chars) + "]"

    def repeat(self, lo: int, hi: Any, sub: Any) -> str:
        c = self.c
        if len(sub) == 1 and sub[0][0] is c.LITERAL:
            inner = gbnf_literal(chr(sub[0][1]))
        elif len(sub) == 1 and sub[0][0] in (c.IN, c.ANY, c.NOT_LITERAL):
            inner = self.item(*sub[0])
        else:
            inner = self.group(sub)
        unbounded = hi == self.c.MAXREPEAT
        if lo > _MAX_EXPANSION or (not unbounded and hi > _MAX_EXPANSION):
            raise Unsupported(f"repeat counts above {_MAX_EXPANSION}")
        if unbounded:
            if lo == 0:
                return f"{inner}*"
            return " ".join([inner] * (lo - 1) + [f"{inner}+"])
        parts = [inner] * lo
        optional = ""
        for _ in range(hi - lo):
            optional = f"({inner} {optional})?" if optional else f"{inner}?"
        if optional:
            parts.append(optional)
        return " ".join(parts) if parts else '""'


# ------------------------------------------------------------------ the checker's entry point


def check_sketch_capabilities(env: Any, d: Any, holes: Any, details: dict[str, Any],
                              hole_span: Any) -> None:
    """Warn where the sketch's model cannot do what its decoder or a hole's constraint
    needs, saying which fallback the runtime will use.  ``env`` is the module's
    ``ModuleEnv``, ``d`` the ``SketchDecl``; the model is the sketch's ``model``
    clause or ``default`` (an unknown model was reported already: no warning)."""
    ref = d.model
    if ref is None:
        info = env.cm.models.get("default")
    elif len(ref.parts) == 1:
        info = env.cm.models.get(ref.parts[0])
    else:
        mod = env.checked.get(env.lm.imports.get(ref.parts[0]))
        info = mod.models.get(ref.parts[1]) if mod is not None else None
    if info is None or info.embed:
        return
    caps = static_capabilities(info.model_id, info.params)
    on_decoder, on_holes = sketch_warnings(caps, info.model_id, details.get("decoder", "sequential"),
                                           int(details.get("beam", 1) or 1), holes,
                                           int(details.get("retries", 2)))
    if on_decoder is not None and d.decoder is not None:
        env.warn(d.decoder.span, on_decoder)
    for hole, message in on_holes:
        env.warn(hole_span(hole), message)
