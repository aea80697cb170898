"""How a sketch is decoded on a model with given capabilities: the fallback rules
shared by the checker (which warns, from the static capability table) and the runtime
(which decides, from a backend's ``Capabilities``).

Both functions take any object with the capability attributes (``completion``,
``logprobs``, ``grammar``...), so check and run decide the same way.
"""

from __future__ import annotations

from typing import Any

from .grammars import Unsupported, regex_to_gbnf
from .holes import hole_kind

__all__ = ["decoder_plan", "hole_method"]


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
