"""Writing an optimized route back as a reviewable ``.pflow`` file.

The output is the route's own module with the route declaration replaced: the same
header (name, parameter, return type) and route clauses (``by``, ``model``, ``embed``,
``params``, copied from the source text), then one ``expert NAME { instruction "..."
demos "..." }`` block per expert, automatic experts written out as ordinary ones.
Each expert's demos are written to ``<out stem>.<expert>.jsonl`` beside the output,
so a diff shows every change.  A comment above the route records the scores.
Everything else in the module is kept as written; the output should therefore sit
in the module's folder (the default), where its relative paths still resolve.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...diagnostics import Span
from .ast import RouteDecl

if TYPE_CHECKING:  # pragma: no cover
    from ...check.program import CheckedProgram
    from .experts import Expert
    from .optimizer import Result


def offset(text: str, line: int, col: int) -> int:
    """The index in ``text`` of 1-based (line, col)."""
    start = 0
    for _ in range(line - 1):
        start = text.index("\n", start) + 1
    return start + col - 1


def cut(text: str, span: Span) -> str:
    return text[offset(text, span.line, span.col):offset(text, span.end_line, span.end_col)]


def pflow_string(s: str) -> str:
    """A ``"..."`` string literal of ``s`` (JSON's escapes are Python's)."""
    return json.dumps(s, ensure_ascii=False)


def write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")


def route_text(source: str, decl: RouteDecl, experts: list[Expert],
               demo_files: dict[str, str]) -> str:
    """The new route declaration."""
    header = source[offset(source, decl.span.line, decl.span.col):
                    offset(source, decl.returns.span.end_line, decl.returns.span.end_col)]
    lines = [header + " {"]
    if decl.by is not None:
        lines.append(f"  by {decl.by.name}")
    if decl.protocol is not None:
        lines.append(f"  protocol {decl.protocol.name}")
    if decl.model is not None:
        lines.append(f"  model {decl.model.dotted}")
    if decl.embed is not None:
        lines.append(f"  embed {decl.embed.dotted}")
    if decl.settings is not None:
        lines.append(f"  params {cut(source, decl.settings.span)}")
    written = {e.name: e for e in decl.experts}
    for e in experts:
        src = written.get(e.name)
        head = f"  expert {e.name}"
        if src is not None and src.when is not None:
            head += f" when {cut(source, src.when.span)}"
        if src is not None and src.delegate is not None:
            head += f" -> {src.delegate.dotted}"
        body = []
        if e.delegate is None:
            body.append(f"    instruction {pflow_string(e.instruction)}")
        if e.name in demo_files:
            body.append(f"    demos {pflow_string(demo_files[e.name])}")
        if src is not None and src.model is not None:
            body.append(f"    model {src.model.dotted}")
        lines.append(head + (" {" if body else ""))
        if body:
            lines.extend(body)
            lines.append("  }")
    lines.append("}")
    return "\n".join(lines)


def score_comment(result: Result, train: int, evaluation: int, match: str) -> str:
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# Optimized by `pflow optimize` on {when}: {train} training rows, {evaluation} "
             f"evaluation rows, {match} match, {result.calls} model calls"
             + (" (the budget ran out)" if result.exhausted else "") + "."]
    w = result.heldout
    if w is not None:
        low, high = w.interval
        lines.append(f"# Held-back rows: {w.n}, accuracy {w.before:.2f} -> {w.after:.2f}, win rate "
                     f"{w.rate:.2f} (95% interval {low:.2f}-{high:.2f}) against the route "
                     f"before optimizing.")
    for r in result.results:
        if r.skipped:
            lines.append(f"#   {r.name}: kept ({r.skipped})")
            continue
        base = "-" if r.baseline is None else f"{r.baseline:.2f}"
        best = "-" if r.score is None else f"{r.score:.2f}"
        lines.append(f"#   {r.name}: {r.region} evaluation inputs, score {base} -> {best} "
                     f"({len(r.candidates)} instructions tried)")
    return "\n".join(lines)


def write_optimized(program: CheckedProgram, result: Result, out: Path, *, train: int,
                    evaluation: int, match: str) -> list[Path]:
    """Write the optimized module to ``out`` and the demos beside it; returns the paths."""
    h = result.spec.h
    decl = h.decl
    assert isinstance(decl, RouteDecl)
    module = program.module_of(h.key)
    source = program.sources[module.uri]
    out.parent.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    demo_files: dict[str, str] = {}
    for e in result.experts:
        if not e.demos:
            continue
        path = out.parent / f"{out.stem}.{e.name}.jsonl"
        write_jsonl(path, e.demos)
        demo_files[e.name] = path.name
        written.append(path)
    start = offset(source, decl.span.line, decl.span.col)
    end = offset(source, decl.span.end_line, decl.span.end_col)
    text = (source[:start] + score_comment(result, train, evaluation, match) + "\n"
            + route_text(source, decl, result.experts, demo_files)
            + source[end:])
    out.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    return [out, *written]
