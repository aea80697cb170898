"""The sketch decoders: ``sequential``, ``interleaved`` and ``beam(n)``.

All three walk the sketch's pieces in order, appending each rendered literal and
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

``beam(n)``
    The sketch-aware beam search of Beurer-Kellner et al. (2023) over hole
    values, on models with log-probabilities.  ``n`` partial sketches are kept.
    At each hole every partial sketch is expanded with candidate values — all the
    options of a choice or bool hole; otherwise ``n`` raw continuations (one
    greedy, ``n - 1`` sampled at temperature 0.7 with seeds 1, 2, ... or the
    handler's ``temperature``/``seed``), invalid ones dropped (when none is valid,
    one chat request with re-asking gives the value) — and each candidate is
    scored with the log-probability of its text and terminator after that
    partial sketch.  A partial sketch's score is the sum over its holes (no
    length normalisation); the ``n`` best distinct sketches go on, and the best
    complete one is the result.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from typing import Any

from .run import Filled, HoleSpec, SketchRun, parse_value

SAMPLE_TEMPERATURE = 0.7


async def decode(run: SketchRun, decoder: str, width: int) -> tuple[str, dict[str, Filled]]:
    """Fill ``run``'s holes with ``decoder``; returns (the filled sketch, hole -> answer)."""
    if decoder == "beam":
        return await decode_beam(run, max(1, width))
    return await decode_linear(run, decoder)


async def decode_linear(run: SketchRun, decoder: str) -> tuple[str, dict[str, Filled]]:
    """``sequential`` and ``interleaved``: one hole after the other, one answer each."""
    text = ""
    filled: dict[str, Filled] = {}
    for piece in run.pieces:
        if isinstance(piece, str):
            text += piece
            continue
        if piece.method == "scored":
            f = await run.choose(piece, text)
        elif decoder == "interleaved":
            f = await run.continue_or_ask(piece, text)
        else:
            f = await run.ask(piece, text)
        run.hole_event(piece, f, decoder)
        filled[piece.name] = f
        text += f.text
    return text, filled


@dataclass
class Beam:
    """A partial sketch: its text, the answers so far and the sum of their log-probabilities."""

    text: str
    filled: dict[str, Filled]
    score: float = 0.0


async def decode_beam(run: SketchRun, width: int) -> tuple[str, dict[str, Filled]]:
    beams = [Beam("", {})]
    label = f"beam({width})"
    for piece in run.pieces:
        if isinstance(piece, str):
            for b in beams:
                b.text += piece
            continue
        spec = piece
        expansions = await _gather(run, [_expand(run, spec, b, width) for b in beams])
        best: dict[str, Beam] = {}
        for b in (x for group in expansions for x in group):
            if b.text not in best or b.score > best[b.text].score:
                best[b.text] = b
        ranked = sorted(best.values(), key=lambda b: -b.score)
        beams = ranked[:width]
        shown = "; ".join(f"{_short(b.filled[spec.name].text)} {b.score:.3f}" for b in ranked)
        run.event("beam", f"{spec.name}: kept {len(beams)} of {len(ranked)} partial sketches "
                          f"({shown})", hole=spec.name,
                  candidates=[{"value": b.filled[spec.name].value, "score": b.score,
                               "kept": i < width} for i, b in enumerate(ranked)])
    top = beams[0]
    for spec in run.holes:
        run.hole_event(spec, top.filled[spec.name], label)
    run.event("beam", f"best sketch: total log-probability {top.score:.3f}", score=top.score)
    return top.text, top.filled


async def _expand(run: SketchRun, spec: HoleSpec, beam: Beam, width: int) -> list[Beam]:
    cands = await candidates(run, spec, beam.text, width)
    return [Beam(beam.text + f.text, {**beam.filled, spec.name: f}, beam.score + f.logprob)
            for f in cands]


async def candidates(run: SketchRun, spec: HoleSpec, prefix: str, width: int) -> list[Filled]:
    """Scored candidate answers for one hole after ``prefix`` (see the module docstring)."""
    term = spec.stop or ""
    if spec.options is not None and spec.method == "scored":
        chosen = await run.choose(spec, prefix)
        scores = chosen.scores or {}
        out = []
        for option, lp in scores.items():
            value, text = parse_value(spec, option)
            out.append(Filled(value, text, "scored", 1, scores, lp))
        return out
    temperature = float(run.params.get("temperature") or SAMPLE_TEMPERATURE)
    seed = int(run.params.get("seed") or 0)
    jobs = [run.complete(spec, prefix, temperature=0.0)]
    jobs += [run.complete(spec, prefix, temperature=temperature, seed=seed + k) for k in range(1, width)]
    raws = await _gather(run, jobs)
    valid: dict[str, Filled] = {}
    first_error: tuple[str, str] | None = None
    for raw in raws:
        try:
            value, text = parse_value(spec, raw)
        except ValueError as exc:
            first_error = first_error or (raw, str(exc))
            continue
        method = spec.method if spec.method in ("grammar", "free") else "validated"
        valid.setdefault(text, Filled(value, text, method, 1))
    if not valid:
        asked = await run.ask(spec, prefix, first=first_error)
        valid[asked.text] = asked
    found = list(valid.values())
    lps = await run.score(prefix, [f.text + term for f in found])
    return [replace(f, logprob=lp) for f, lp in zip(found, lps, strict=True)]


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
