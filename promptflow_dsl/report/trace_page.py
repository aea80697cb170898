"""The trace viewer page: a header (the run, its totals, the model calls in flight
over time), a tree of the steps with a waterfall of their timing, and the details
of the selected step. The steps are the page's JSON data; ``assets/viewer.js``
renders only the rows in view."""

from __future__ import annotations

import json
from typing import Any

from ..runtime.trace import format_ms
from .page import esc, page
from .svg import step_chart
from .trace_data import ViewData

STATUSES = ("ok", "failed", "skipped", "not_taken", "running")


def _short(value: Any, limit: int = 160) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _totals(t: dict[str, Any]) -> str:
    text = (f"{t.get('calls', 0)} model calls ({t.get('cache_hits', 0)} cached) · "
            f"{t.get('prompt_tokens', 0)}+{t.get('completion_tokens', 0)} tokens")
    if t.get("usage_unknown"):
        text += f" (usage unknown for {t['usage_unknown']} calls)"
    if t.get("cost") is not None:
        text += f" · ${t['cost']:.4f}"
    return text


def _header(view: ViewData) -> str:
    h = view.header
    status = str(h.get("status", ""))
    mark = {"ok": "✓", "failed": "✗", "complete": "✓"}.get(status, "·")
    if h.get("kind") == "run":
        title = f"{h.get('title', 'dataset run')} · run {h.get('run_id', '?')}"
    else:
        title = f"run {h.get('run_id', '?')}"
    lines = [f'<h1>{esc(title)} <span class="{esc(status)}">{esc(mark)} {esc(status)}</span> '
             f'<span class="muted">{esc(format_ms(float(h.get("wall_ms") or view.span_ms)))}</span></h1>']
    facts = []
    if h.get("program"):
        facts.append(f"program <b>{esc(h['program'])}</b>")
    if h.get("entry"):
        facts.append(f"entry <b>{esc(h['entry'])}</b>")
    if h.get("rows") is not None:
        facts.append(f"{esc(h['rows'])} rows")
    facts.append(esc(_totals(h.get("totals") or {})))
    if h.get("models"):
        facts.append("models " + esc(", ".join(f"{k}={v}" for k, v in sorted(h["models"].items()))))
    lines.append(f'<div>{" · ".join(facts)}</div>')
    if h.get("inputs"):
        lines.append(f'<div class="muted">inputs: {esc(_short(h["inputs"]))}</div>')
    if h.get("error"):
        lines.append(f'<div class="failed">error: {esc(_short(h["error"], 400))}</div>')
    elif "output" in h and h.get("kind") == "trace":
        lines.append(f'<div class="muted">output: {esc(_short(h["output"]))}</div>')
    lines.append(step_chart(view.in_flight, title="model calls in flight", span=view.span_ms))
    return '<header class="top">' + "\n".join(lines) + "</header>"


TOOLBAR = (
    '<div class="toolbar"><input id="search" type="search" placeholder="search handler, model, '
    'reply, output, error…" aria-label="search">'
    '<label>status <select id="status"><option value="">all</option>'
    + "".join(f'<option value="{s}">{s.replace("_", " ")}</option>' for s in STATUSES)
    + '</select></label><label>model <select id="model"><option value="">all</option>'
    '</select></label><button id="expand" type="button">expand all</button>'
    '<button id="collapse" type="button">collapse all</button>'
    '<span id="count" class="muted"></span></div>')

MAIN = ('<div class="main"><div id="list" class="list"><div id="spacer" class="spacer"></div>'
        '</div><div id="detail" class="detail"><p class="muted">Select a step to see its '
        'messages, reply, value and events. ▸ opens the steps it called; ↑ ↓ move, ← → '
        'close and open.</p></div></div>')


def trace_page(view: ViewData, title: str) -> str:
    """The whole self-contained HTML page for ``view``."""
    body = _header(view) + TOOLBAR + MAIN
    return page(title, body, data=view.to_json(), styles=("base.css", "viewer.css"),
                scripts=("viewer.js",), body_class="viewer")
