"""The sketch decoders: ``sequential``, ``interleaved``, and the variable-level searches
``var(n)`` and ``beam_var(n)`` (``beam(n)`` is another name of ``beam_var(n)``).

All of them walk the sketch's pieces in order, appending each rendered literal and
each hole's text to the sketch written so far (the *prefix*).

``sequential``
    One request per hole.  A choice or bool hole on a model with log-probabilities
    is decided by :meth:`SketchRun.choose` (every option's continuation scored
    after the prefix; never an invalid value).  Any other hole is a chat request
    (:meth:`SketchRun.ask`): the prefix as the user message, a system message
    asking to continue it with only the hole's value (and what the value must
    be); with a grammar where the hole has one and the model takes grammars; the
    answer validated and re-asked up to ``retries`` times.  Works on any chat
    model.

``interleaved``
    One continuing text, on completion-capable models: each hole is the raw
    continuation of the prefix (:meth:`SketchRun.complete`) up to its terminator,
    under the hole's grammar where it has one; choices are scored as above.  An
    answer that does not validate is re-asked in chat, the bad continuation
    counting as the first attempt.

``var(n)`` and ``beam_var(n)``
    The sketch-aware decoders of Beurer-Kellner et al., "Prompt Sketching for Large
    Language Models" (2023), as a beam over whole hole values on the
    continue / score interface (raw completion and the log-probability of a given
    continuation), on models with log-probabilities.  ``n`` partial sketches
    (*hypotheses*) are kept.  At each hole every hypothesis is expanded with
    candidate values: all options of a choice or bool hole; otherwise ``n`` raw
    continuations (``var``: all sampled, at the sketch's ``temperature`` or 1.0;
    ``beam_var``: one greedy and ``n - 1`` sampled at ``temperature`` or 0.7; seeds
    ``seed + 1``, ``seed + 2``, ...), invalid ones dropped (when none is valid, one
    chat request with re-asking gives the value).  Each candidate is scored with
    the log-probability of its value **and of the template text that follows it
    up to the next hole** (the deterministic chunk), after that hypothesis: so the
    follow-up instructions of the sketch take part in choosing the value.  Among
    the up to ``n·n`` expanded hypotheses the ``n`` best distinct ones go on, and
    after the last hole the best one is the result.  The ranking score
    (:func:`rank`) is length-normalised with ``alpha = 0.7``: ``var`` divides the
    summed log-probability of everything scored by ``tokens ** 0.7``;
    ``beam_var`` normalises the hole values and the template chunks separately and
    adds the two, so a long template chunk does not drown the values.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from typing import Any

from .run import Filled, HoleSpec, SketchRun, parse_value

#: the sampling temperature of var (all candidates sampled) and of beam_var (greedy + samples)
VAR_TEMPERATURE = 1.0
BEAM_VAR_TEMPERATURE = 0.7
#: the length-normalisation exponent of both searches
ALPHA = 0.7


async def decode(run: SketchRun, decoder: str, width: int, search: str = "beam_var",
                 label: str | None = None) -> tuple[str, dict[str, Filled]]:
    """Fill ``run``'s holes with ``decoder`` (``beam``: the ``search``, ``var`` or
    ``beam_var``); returns (the filled sketch, hole occurrence -> answer)."""
    if decoder == "beam":
        return await decode_search(run, search, max(1, width), label or f"{search}({width})")
    return await decode_linear(run, decoder)


async def decode_linear(run: SketchRun, decoder: str) -> tuple[str, dict[str, Filled]]:
    """``sequential`` and ``interleaved``: one hole after the other, one answer each."""
    text = ""
    filled: dict[str, Filled] = {}
    for piece in run.pieces:
        if isinstance(piece, str):
            text += run.literal(piece, filled)
            continue
        if piece.method == "scored":
            f = await run.choose(piece, text)
        elif decoder == "interleaved":
            f = await run.continue_or_ask(piece, text)
        else:
            f = await run.ask(piece, text)
        run.hole_event(piece, f, decoder)
        filled[piece.id] = f
        text += f.text
    return text, filled


@dataclass
class Hypothesis:
    """A partial sketch: its text, the answers so far, and what was scored of it
    (log-probability and tokens of the hole values and of the template chunks)."""

    text: str
    filled: dict[str, Filled] = field(default_factory=dict)
    value_lp: float = 0.0
    value_tokens: int = 0
    chunk_lp: float = 0.0
    chunk_tokens: int = 0

    @property
    def logprob(self) -> float:
        return self.value_lp + self.chunk_lp


def rank(search: str, h: Hypothesis) -> float:
    """The score hypotheses are ranked by (higher is better; see the module docstring)."""
    if search == "var":
        tokens = h.value_tokens + h.chunk_tokens
        return h.logprob / tokens ** ALPHA if tokens else 0.0
    values = h.value_lp / h.value_tokens ** ALPHA if h.value_tokens else 0.0
    chunks = h.chunk_lp / h.chunk_tokens ** ALPHA if h.chunk_tokens else 0.0
    return values + chunks


@dataclass
class Candidate:
    """A hole value for one hypothesis, with the template chunk that follows it."""

    filled: Filled
    chunk: str


async def decode_search(run: SketchRun, search: str, width: int,
                        label: str) -> tuple[str, dict[str, Filled]]:
    """``var(n)`` / ``beam_var(n)``: see the module docstring."""
    pieces = run.pieces
    hyps = [Hypothesis("")]
    for i, piece in enumerate(pieces):
        if isinstance(piece, str):
            if i == 0:  # the text before the first hole is the prompt: not scored
                hyps[0].text = run.literal(piece, {})
            continue  # a literal after a hole was scored with that hole's candidates
        after = pieces[i + 1] if i + 1 < len(pieces) else None
        groups = await _gather(run, [_expand(run, search, piece, after, h, width) for h in hyps])
        best: dict[str, Hypothesis] = {}
        for h in (x for group in groups for x in group):
            if h.text not in best or rank(search, h) > rank(search, best[h.text]):
                best[h.text] = h
        ranked = sorted(best.values(), key=lambda h: -rank(search, h))
        hyps = ranked[:width]
        shown = "; ".join(f"{_short(h.filled[piece.id].text)} {rank(search, h):.3f}" for h in ranked)
        run.event("beam", f"{piece.id}: kept {len(hyps)} of {len(ranked)} partial sketches "
                          f"({shown})", hole=piece.id,
                  candidates=[{"value": h.filled[piece.id].value, "score": rank(search, h),
                               "logprob": h.logprob, "kept": k < width}
                              for k, h in enumerate(ranked)])
    top = hyps[0]
    for spec in run.holes:
        if spec.id in top.filled:
            run.hole_event(spec, top.filled[spec.id], label)
    run.event("beam", f"best sketch: score {rank(search, top):.3f}, total log-probability "
                      f"{top.logprob:.3f}", score=rank(search, top), logprob=top.logprob)
    return top.text, top.filled


async def _expand(run: SketchRun, search: str, spec: HoleSpec, after: str | HoleSpec | None,
                  h: Hypothesis, width: int) -> list[Hypothesis]:
    """``h`` extended with each candidate value of ``spec`` and the chunk after it, scored."""
    found = await candidates(run, search, spec, h, width)
    cands = []
    for f in found:
        filled = {**h.filled, spec.id: f}
        chunk = run.literal(after, filled) if isinstance(after, str) else ""
        if not chunk and after is None and not spec.keep:
            chunk = spec.stop or ""  # the last hole: its terminator ends the sketch
        cands.append(Candidate(f, chunk))
    conts = [c.filled.text for c in cands] + [c.filled.text + c.chunk for c in cands]
    rows = await run.score_rows(h.text, conts)
    values, whole = rows[:len(cands)], rows[len(cands):]
    out = []
    for c, v, w in zip(cands, values, whole, strict=True):
        out.append(Hypothesis(
            h.text + c.filled.text + c.chunk, {**h.filled, spec.id: replace(c.filled, logprob=v.logprob)},
            h.value_lp + v.logprob, h.value_tokens + v.tokens,
            h.chunk_lp + (w.logprob - v.logprob), h.chunk_tokens + max(w.tokens - v.tokens, 0)))
    if spec.method == "scored":  # every option's ranking score after this hypothesis
        scores = {x.filled[spec.id].text: rank(search, x) for x in out}
        for x in out:
            x.filled[spec.id] = replace(x.filled[spec.id], scores=scores)
    return out


async def candidates(run: SketchRun, search: str, spec: HoleSpec, h: Hypothesis,
                     width: int) -> list[Filled]:
    """Candidate answers for one hole after hypothesis ``h`` (see the module docstring)."""
    prefix = h.text
    if spec.options is not None and spec.method == "scored":
        out = []
        for option in spec.options:
            value, text = parse_value(spec, option)
            out.append(Filled(value, text, "scored", 1))
        return out
    if search == "var":
        temperature = float(run.params.get("temperature") or VAR_TEMPERATURE)
        temps = [temperature] * width
    else:
        temperature = float(run.params.get("temperature") or BEAM_VAR_TEMPERATURE)
        temps = [0.0] + [temperature] * (width - 1)
    seed = int(run.params.get("seed") or 0)
    jobs = [run.complete(spec, prefix, temperature=t, seed=seed + k if t else None)
            for k, t in enumerate(temps, start=1 if search == "var" else 0)]
    raws = await _gather(run, jobs)
    valid: dict[str, Filled] = {}
    first_error: tuple[str, str] | None = None
    for raw in raws:
        try:
            value, text = parse_value(spec, raw)
        except ValueError as exc:
            first_error = first_error or (raw, str(exc))
            continue
        valid.setdefault(text, Filled(value, text, run.method(spec, run.caps.grammar), 1))
    if not valid:
        asked = await run.ask(spec, prefix, first=first_error)
        valid[asked.text] = asked
    return list(valid.values())


async def _gather(run: SketchRun, jobs: list[Any]) -> list[Any]:
    """Run coroutines concurrently, or one at a time in sequential mode (tests)."""
    if not run.ctx.sequential:
        return list(await asyncio.gather(*jobs))
    out = []
    try:
        for j in jobs:
            out.append(await j)
    finally:
        for j in jobs[len(out) + 1:]:
            j.close()  # never started: no "never awaited" warning
    return out


def _short(text: str, n: int = 40) -> str:
    s = text.replace("\n", "\\n")
    return repr(s if len(s) <= n else s[: n - 1] + "…")
