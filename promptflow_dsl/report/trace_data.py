"""Traces as the data of the trace viewer: one flat list of steps in which a step
names its parent by index, with its start as milliseconds from the start of the view.

A single run is viewed as its steps; a dataset run (a run folder) as one synthetic
``row`` step per result line, with the steps of that row's trace under it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ..runtime.trace import Step, Trace

@dataclass
class RowTrace:
    """One row of a dataset run: its result line, and its trace when there is one
    (``missing`` says why there is not)."""

    row: int
    result: dict[str, Any]
    trace: Trace | None = None
    missing: str | None = None


@dataclass
class ViewData:
    """What the viewer shows: a header (plain JSON data) and the steps."""

    header: dict[str, Any]
    steps: list[dict[str, Any]] = field(default_factory=list)
    span_ms: float = 0.0
    in_flight: list[tuple[float, int]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"header": self.header, "steps": self.steps, "span": self.span_ms}


def _ms(at: dt.datetime, origin: dt.datetime) -> float:
    return round((at - origin).total_seconds() * 1000.0, 3)


def _step_json(step: Step, index: int, parent: int, origin: dt.datetime,
               prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "i": index, "p": parent, "id": prefix + step.id, "h": step.handler, "k": step.kind,
        "st": step.status, "t": _ms(step.started_at, origin), "d": round(step.latency_ms, 3)}
    optional = {
        "m": step.model, "ab": step.answered_by, "c": step.cost, "ch": step.cache_hit,
        "n": step.calls, "nh": step.cache_hits, "e": step.error, "msg": step.messages,
        "rep": step.reply, "f": step.file, "l": step.line}
    out.update({k: v for k, v in optional.items() if v is not None})
    if step.usage is not None:
        out["tin"], out["tout"] = step.usage.prompt_tokens, step.usage.completion_tokens
    unknown = getattr(step, "usage_unknown", None)  # calls whose server reported no usage
    if unknown:
        out["uu"] = unknown
    if step.attempts != 1:
        out["a"] = step.attempts
    if step.inputs:
        out["in"] = step.inputs
    if step.status == "ok" or step.output is not None:
        out["out"] = step.output
    if step.events:
        out["ev"] = step.events
    if step.extra:
        out["x"] = step.extra
    return out


def _add_trace(steps: list[dict[str, Any]], trace: Trace, origin: dt.datetime,
               root_parent: int, prefix: str) -> None:
    """Append ``trace``'s steps (callers before callees, as recorded) to ``steps``."""
    index = {s.id: len(steps) + i for i, s in enumerate(trace.steps)}
    for step in trace.steps:
        own = len(steps)
        parent = index.get(step.parent, root_parent) if step.parent else root_parent
        if parent >= own:  # itself, or a step recorded after it: the tree needs callers first
            parent = root_parent
        steps.append(_step_json(step, own, parent, origin, prefix))


def _trace_header(trace: Trace) -> dict[str, Any]:
    t = trace.totals
    return {"kind": "trace", "run_id": trace.run_id, "program": trace.program,
            "entry": trace.entry, "status": trace.status, "error": trace.error,
            "wall_ms": trace.wall_ms, "started_at": trace.started_at.isoformat(),
            "inputs": trace.inputs, "output": trace.output, "models": trace.models,
            "totals": {"calls": t.calls, "cache_hits": t.cache_hits,
                       "prompt_tokens": t.prompt_tokens,
                       "completion_tokens": t.completion_tokens, "cost": t.cost,
                       "usage_unknown": getattr(t, "usage_unknown", 0)}}


def trace_view(trace: Trace) -> ViewData:
    """The view of one run's trace."""
    steps: list[dict[str, Any]] = []
    _add_trace(steps, trace, trace.started_at, -1, "")
    return _finish(ViewData(_trace_header(trace), steps))


def run_view(header: dict[str, Any], rows: Sequence[RowTrace]) -> ViewData:
    """The view of a dataset run: one ``row`` step per result line (in row order), the
    steps of its trace under it. ``header`` describes the run (plain JSON data)."""
    starts = [r.trace.started_at for r in rows if r.trace is not None]
    origin = min(starts) if starts else dt.datetime.now(dt.UTC)
    steps: list[dict[str, Any]] = []
    totals: dict[str, Any] = {"calls": 0, "cache_hits": 0, "prompt_tokens": 0,
                              "completion_tokens": 0, "cost": None}
    for r in sorted(rows, key=lambda r: r.row):
        res = r.result
        root: dict[str, Any] = {
            "i": len(steps), "p": -1, "id": f"row-{r.row}", "h": f"row {r.row}", "k": "row",
            "st": "ok" if res.get("status") == "ok" else "failed", "t": 0.0,
            "d": round(float(res.get("latency") or 0.0) * 1000.0, 3)}
        if isinstance(res.get("inputs"), dict):
            root["in"] = res["inputs"]
        if "output" in res:
            root["out"] = res["output"]
        if res.get("error"):
            root["e"] = str(res["error"])
        extra = {k: res[k] for k in ("metrics", "metric_errors", "trace_id") if res.get(k)}
        if r.missing:
            extra["trace"] = r.missing
        if extra:
            root["x"] = extra
        steps.append(root)
        if r.trace is not None:
            tr = r.trace
            root["t"] = _ms(tr.started_at, origin)
            root["d"] = round(tr.wall_ms, 3)
            t = tr.totals
            for key in ("calls", "cache_hits", "prompt_tokens", "completion_tokens"):
                totals[key] += getattr(t, key)
            if t.cost is not None:
                totals["cost"] = (totals["cost"] or 0.0) + t.cost
            if t.prompt_tokens or t.completion_tokens:
                root["tin"], root["tout"] = t.prompt_tokens, t.completion_tokens
            if t.cost is not None:
                root["c"] = t.cost
            _add_trace(steps, tr, origin, root["i"], f"row-{r.row}/")
    header = dict(header)
    header.setdefault("kind", "run")
    header["totals"] = totals
    return _finish(ViewData(header, steps))


def _finish(view: ViewData) -> ViewData:
    """Compute the span of the view and the model calls in flight over time."""
    span = 0.0
    changes: list[tuple[float, int]] = []
    for s in view.steps:
        end = s["t"] + s["d"]
        span = max(span, end)
        if "m" in s and s["st"] in ("ok", "failed") and s["k"] != "row":
            changes.append((s["t"], 1))
            changes.append((end, -1))
    changes.sort(key=lambda c: (c[0], c[1]))
    level = 0
    points: list[tuple[float, int]] = []
    for t, delta in changes:
        level += delta
        if points and points[-1][0] == t:
            points[-1] = (t, level)
        else:
            points.append((t, level))
    view.span_ms = round(span, 3)
    view.in_flight = points
    return view
