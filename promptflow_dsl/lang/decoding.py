"""How a sketch is decoded on a model with given capabilities: the fallback rules
shared by the checker (which warns, from the static capability table) and the runtime
(which decides, from a backend's ``Capabilities``).

Both functions take any object with the capability attributes (``completion``,
``logprobs``, ``grammar``...), so check and run decide the same way.
"""

from __future__ import annotations

from typing import Any

from .grammars import Unsupported, gbnf_class_char, gbnf_literal, regex_to_gbnf
from .holes import hole_kind

__all__ = ["decoder_plan", "hole_method", "length_grammar"]


def decoder_plan(caps: Any, decoder: str, width: int = 1,
                 label: str | None = None) -> tuple[str, str | None]:
    """(decoder the runtime uses, why it differs from the declared one or None).

    ``beam`` (the variable-level searches ``var(N)``, ``beam_var(N)``, ``beam(N)``;
    ``label`` is how it was written, default ``beam(N)``) needs token
    log-probabilities and ``interleaved`` raw completion; without them the runtime
    decodes sequentially (one chat call per hole).
    """
    if decoder == "beam" and not caps.logprobs:
        return "sequential", f"{label or f'beam({width})'} needs token log-probabilities"
    if decoder == "interleaved" and not caps.completion:
        return "sequential", "interleaved decoding needs raw text completion"
    return decoder, None


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


def length_grammar(min_chars: int | None, max_chars: int | None, *, terminator: str | None = None,
                   lead_space: bool = False) -> str:
    """A GBNF grammar for a text hole of ``min_chars`` to ``max_chars`` characters: a
    first character that is not whitespace, then the rest up to the bound (never the
    one-character ``terminator``, which then ends the grammar, so generation stops by
    itself).  Used where the model takes grammars; every value is validated anyway."""
    lo = max(min_chars or 1, 1)
    c = gbnf_class_char(terminator) if terminator is not None and len(terminator) == 1 else ""
    rest = f"[^{c}]" if c else "[^\\x00]"
    if max_chars is None:
        body = f"{rest}{{{lo - 1},}}"
    else:
        body = f"{rest}{{{lo - 1},{max(max_chars, lo) - 1}}}"
    lead = '" "? ' if lead_space else ""
    end = f" {gbnf_literal(terminator)}" if c and terminator is not None else ""
    return f"root ::= {lead}[^ \\t\\n{c}] {body}{end}\n"
