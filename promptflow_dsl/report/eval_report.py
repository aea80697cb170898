"""Eval reports: one run (``pflow eval --show RUN --html``) or two compared
(``--compare``) as a self-contained HTML page.

A report shows the metric summary with its 95% intervals (a table and bars), the
thresholds, latency and cost histograms, and a table of the rows: the row's fields
(the fields named like a reference answer — :data:`GOLD_NAMES` — in a column of their
own), the output, each metric's value, latency, cost, and a link to the row's
trace in the trace viewer page. A comparison adds the paired difference of each
metric and the rows that changed, both runs side by side.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .page import esc, page
from .svg import Bar, bar_chart, histogram

GOLD_NAMES = frozenset({"gold", "expected", "answer", "label", "target", "reference", "truth",
                        "ground_truth", "solution", "correct", "gold_label", "expected_output"})
"""Row fields shown as the gold (reference) fields of a row."""

MAX_ROWS_SHOWN = 5000
"""The row table stops here (the page says how many more ``results.jsonl`` holds)."""

CELL = 240


@dataclass
class RunData:
    """One eval run as a report reads it: its id, meta, summary, winning result lines
    (in row order) and the href of its trace page (``None``: no traces)."""

    run_id: str
    meta: dict[str, Any]
    summary: dict[str, Any]
    rows: list[dict[str, Any]]
    traces_href: str | None = None

    @property
    def eval_name(self) -> str:
        return str((self.meta.get("options") or {}).get("eval") or "?")


def _short(value: Any, limit: int = CELL) -> str:
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _num(x: Any, signed: bool = False) -> str:
    if not isinstance(x, (int, float)):
        return "–"
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return f"{x:+.3f}" if signed else f"{x:.3f}"


def _ci(ci: Any, signed: bool = False) -> str:
    if not ci or len(ci) != 2:
        return "–"
    return f"[{_num(ci[0], signed)}, {_num(ci[1], signed)}]"


def _metric_value(v: Any) -> str:
    if v is None:
        return '<td class="muted">not scored</td>'
    if isinstance(v, bool):
        return f'<td class="{"ok" if v else "failed"}">{"✓ true" if v else "✗ false"}</td>'
    if isinstance(v, (int, float)):
        return f'<td class="num">{esc(f"{v:g}")}</td>'
    return f"<td>{esc(_short(v))}</td>"


def _bar(value: Any, ci: Any, series: int = 0) -> Bar:
    """A bar of ``value`` with its interval ``ci`` (a pair, or nothing)."""
    lo, hi = ci if isinstance(ci, (list, tuple)) and len(ci) == 2 else (None, None)
    return Bar(value if isinstance(value, (int, float)) else None, lo, hi, series)


def _split_fields(inputs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the row's other fields, its gold fields)."""
    if not isinstance(inputs, Mapping):
        return ({"row": inputs} if inputs is not None else {}), {}
    other = {k: v for k, v in inputs.items() if k.lower() not in GOLD_NAMES}
    gold = {k: v for k, v in inputs.items() if k.lower() in GOLD_NAMES}
    return other, gold


def _fields_cell(fields: Mapping[str, Any]) -> str:
    if not fields:
        return '<td class="muted">–</td>'
    return "<td>" + "<br>".join(f"<b>{esc(k)}</b>: {esc(_short(v, 160))}"
                                for k, v in fields.items()) + "</td>"


def _trace_link(run: RunData, line: Mapping[str, Any]) -> str:
    row = line.get("row")
    if not line.get("trace_id"):
        return '<span class="muted">no trace</span>'
    if run.traces_href is None:
        return f'<span class="muted">{esc(line["trace_id"])}</span>'
    return (f'<a href="{esc(run.traces_href)}#row-{esc(row)}" '
            f'title="{esc(line["trace_id"])}">trace</a>')


def metric_names(*runs: RunData) -> list[str]:
    """The metrics of the runs, in the order their summaries list them."""
    names: dict[str, None] = {}
    for run in runs:
        names.update(dict.fromkeys((run.summary.get("metrics") or {}).keys()))
        for line in run.rows[:1000]:
            names.update(dict.fromkeys((line.get("metrics") or {}).keys()))
    return list(names)


def _summary_section(run: RunData) -> str:
    s = run.summary
    rows = s.get("rows") or {}
    metrics = s.get("metrics") or {}
    errors = s.get("metric_errors") or {}
    parts = [f'<p>{esc(rows.get("total", len(run.rows)))} rows: '
             f'<span class="ok">{esc(rows.get("ok", "?"))} ok</span>, '
             f'<span class="failed">{esc(rows.get("failed", "?"))} failed</span>'
             + (f', {esc(rows["pending"])} pending' if rows.get("pending") else "")
             + f' · {esc(_num(s.get("wall_time")))} s'
             + (f' · {esc(s["tokens"])} tokens' if s.get("tokens") is not None else "")
             + (f" · ${s['cost']:.4f}" if isinstance(s.get("cost"), (int, float)) else "")
             + "</p>"]
    if metrics:
        table = ['<table class="grid"><tr><th>metric</th><th>kind</th><th class="num">mean</th>'
                 '<th>95% CI</th><th class="num">scored</th><th class="num">errors</th></tr>']
        for name, m in metrics.items():
            table.append(f'<tr><td>{esc(name)}</td><td>{esc(m.get("kind", ""))}</td>'
                         f'<td class="num">{esc(_num(m.get("mean")))}</td>'
                         f'<td>{esc(_ci(m.get("ci")))}</td>'
                         f'<td class="num">{esc(m.get("scored", 0))}/{esc(rows.get("ok", "?"))}</td>'
                         f'<td class="num">{esc(errors.get(name, "") or "")}</td></tr>')
        table.append("</table>")
        parts.append("".join(table))
        groups = [(name, [_bar(m.get("mean"), m.get("ci"))]) for name, m in metrics.items()]
        parts.append(bar_chart(groups, title="metric means with 95% intervals"))
    for t in s.get("thresholds") or []:
        ok = t.get("passed")
        actual = "no rows scored" if t.get("actual") is None else f"{t['actual']:.4g}"
        parts.append(f'<div class="{"ok" if ok else "failed"}">threshold '
                     f'{esc(t.get("threshold"))}: {esc(actual)} '
                     f'({"passed" if ok else "FAILED"})</div>')
    latencies = [float(x["latency"]) for x in run.rows
                 if isinstance(x.get("latency"), (int, float))]
    costs = [float(x["cost"]) for x in run.rows if isinstance(x.get("cost"), (int, float))]
    parts.append("<div>" + histogram(latencies, title="latency per row", unit=" s")
                 + histogram(costs, title="cost per row", unit=" $") + "</div>")
    return "\n".join(parts)


def _rows_table(run: RunData, names: Sequence[str]) -> str:
    head = ("<tr><th>row</th><th>status</th><th>fields</th><th>gold</th><th>output</th>"
            + "".join(f"<th>{esc(n)}</th>" for n in names)
            + '<th class="num">latency</th><th class="num">cost</th><th>trace</th></tr>')
    body = []
    for line in run.rows[:MAX_ROWS_SHOWN]:
        status = str(line.get("status", "?"))
        fields, gold = _split_fields(line.get("inputs"))
        metrics = line.get("metrics") or {}
        output = (f'<td class="failed">{esc(_short(line.get("error", "")))}</td>'
                  if status != "ok" else f"<td>{esc(_short(line.get('output')))}</td>")
        lat = line.get("latency")
        cost = line.get("cost")
        body.append(
            f'<tr class="r" id="row-{esc(line.get("row"))}" data-status="{esc(status)}">'
            f'<td class="num">{esc(line.get("row"))}</td><td class="{esc(status)}">{esc(status)}'
            f'</td>{_fields_cell(fields)}{_fields_cell(gold)}{output}'
            + "".join(_metric_value(metrics.get(n)) for n in names)
            + f'<td class="num">{esc(f"{lat:.3f} s") if isinstance(lat, (int, float)) else "–"}</td>'
            + f'<td class="num">{esc(f"${cost:.5f}") if isinstance(cost, (int, float)) else "–"}</td>'
            + f"<td>{_trace_link(run, line)}</td></tr>")
    more = len(run.rows) - MAX_ROWS_SHOWN
    note = (f'<p class="muted">… and {more} more rows in results.jsonl</p>' if more > 0 else "")
    return (FILTER + '<table class="grid rows">' + head + "".join(body) + "</table>" + note)


FILTER = ('<div class="filter"><input id="rowsearch" type="search" placeholder="filter rows…" '
          'aria-label="filter rows"> <label>status <select id="rowstatus"><option value="">'
          'all</option><option value="ok">ok</option><option value="failed">failed</option>'
          '</select></label> <span id="rowcount" class="muted"></span></div>')


def _head(title: str, run: RunData) -> str:
    s = run.summary
    status = str(s.get("status", "running or killed"))
    passed = s.get("passed")
    verdict = "" if passed is None else (' <span class="pill ok">thresholds passed</span>'
                                         if passed else
                                         ' <span class="pill failed">a threshold failed</span>')
    dataset = (run.meta.get("dataset") or {}).get("path")
    return (f'<header class="top"><h1>{esc(title)}</h1><div>{esc(status)}{verdict}'
            + (f' · dataset {esc(dataset)}' if dataset else "")
            + (f' · program {esc((run.meta.get("options") or {}).get("program"))}'
               if (run.meta.get("options") or {}).get("program") else "")
            + "</div></header>")


def eval_report(run: RunData) -> str:
    """The report page of one eval run."""
    names = metric_names(run)
    body = (_head(f"eval {run.eval_name} · run {run.run_id}", run)
            + '<main class="report"><h2>Summary</h2>' + _summary_section(run)
            + f"<h2>Rows ({len(run.rows)})</h2>" + _rows_table(run, names) + "</main>")
    return page(f"eval {run.eval_name} · {run.run_id}", body,
                styles=("base.css", "report.css"), scripts=("report.js",))


def _diff_section(a: RunData, b: RunData, diffs: Sequence[Any], note: str | None) -> str:
    parts = [f"<p>run <b>{esc(b.run_id)}</b> minus run <b>{esc(a.run_id)}</b>, over the rows "
             "scored in both</p>"]
    if note:
        parts.append(f'<p class="muted">{esc(note)}</p>')
    table = ['<table class="grid"><tr><th>metric</th><th class="num">before</th>'
             '<th class="num">after</th><th class="num">diff</th><th>95% CI</th>'
             '<th class="num">paired</th><th class="num">changed</th></tr>']
    for d in diffs:
        table.append(f'<tr><td>{esc(d.name)}</td><td class="num">{esc(_num(d.mean_a))}</td>'
                     f'<td class="num">{esc(_num(d.mean_b))}</td>'
                     f'<td class="num">{esc(_num(d.diff, True))}</td>'
                     f'<td>{esc(_ci(d.ci, True))}</td><td class="num">{esc(d.paired)}</td>'
                     f'<td class="num">{len(d.changed)}</td></tr>')
    table.append("</table>")
    parts.append("".join(table))
    ma, mb = a.summary.get("metrics") or {}, b.summary.get("metrics") or {}
    groups = []
    for name in dict.fromkeys([*ma, *mb]):
        x, y = ma.get(name) or {}, mb.get(name) or {}
        groups.append((name, [_bar(x.get("mean"), x.get("ci"), 0),
                              _bar(y.get("mean"), y.get("ci"), 1)]))
    if groups:
        parts.append(bar_chart(groups, title="metric means with 95% intervals",
                               legend=(f"before: {a.run_id}", f"after: {b.run_id}")))
    diff_groups = [(d.name, [_bar(d.diff, d.ci, 2)]) for d in diffs]
    if diff_groups:
        parts.append(bar_chart(diff_groups, title="paired difference (after − before) with "
                                                  "95% interval"))
    return "\n".join(parts)


def _changed_rows(a: RunData, b: RunData, diffs: Sequence[Any], names: Sequence[str]) -> str:
    changed = sorted({c.row for d in diffs for c in d.changed})
    if not changed:
        return "<p>No row changed its metric values.</p>"
    by_a = {line.get("row"): line for line in a.rows}
    by_b = {line.get("row"): line for line in b.rows}
    moved = {(d.name, c.row) for d in diffs for c in d.changed}
    head = ("<tr><th>row</th><th>fields</th><th>gold</th><th>output before</th>"
            "<th>output after</th>" + "".join(f"<th>{esc(n)}</th>" for n in names)
            + "<th>traces</th></tr>")
    body = []
    for row in changed[:MAX_ROWS_SHOWN]:
        la, lb = by_a.get(row) or {}, by_b.get(row) or {}
        fields, gold = _split_fields(lb.get("inputs", la.get("inputs")))
        cells = []
        for n in names:
            va = (la.get("metrics") or {}).get(n)
            vb = (lb.get("metrics") or {}).get(n)
            cls = ' class="changed"' if (n, row) in moved else ""
            cells.append(f"<td{cls}>{esc(_short(va, 40))} → {esc(_short(vb, 40))}</td>")
        body.append("<tr>"
                    f'<td class="num">{esc(row)}</td>{_fields_cell(fields)}{_fields_cell(gold)}'
                    f"<td>{esc(_short(la.get('output')))}</td>"
                    f"<td>{esc(_short(lb.get('output')))}</td>" + "".join(cells)
                    + f"<td>before: {_trace_link(a, la)}<br>after: {_trace_link(b, lb)}</td></tr>")
    return '<table class="grid changes">' + head + "".join(body) + "</table>"


def compare_report(a: RunData, b: RunData, diffs: Sequence[Any], note: str | None) -> str:
    """The report page comparing run ``b`` with run ``a`` (``diffs``: the
    ``MetricDiff`` of each metric, b minus a)."""
    names = metric_names(a, b)
    body = (_head(f"eval {b.eval_name} · run {b.run_id} compared with run {a.run_id}", b)
            + '<main class="report"><h2>Difference</h2>' + _diff_section(a, b, diffs, note)
            + "<h2>Rows that changed</h2>" + _changed_rows(a, b, diffs, names)
            + f"<h2>Summary of run {esc(b.run_id)} (after)</h2>" + _summary_section(b)
            + f"<h2>Summary of run {esc(a.run_id)} (before)</h2>" + _summary_section(a)
            + f"<h2>Rows of run {esc(b.run_id)} ({len(b.rows)})</h2>" + _rows_table(b, names)
            + "</main>")
    return page(f"eval {b.eval_name} · {b.run_id} vs {a.run_id}", body,
                styles=("base.css", "report.css"), scripts=("report.js",))
