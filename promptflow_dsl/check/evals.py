"""``eval`` declarations and ``evaluate(NAME)`` in tests.

An eval is checked after the module's handlers: its data file is found (relative to
the declaring file, inside the project) and **every row** is validated against the
row type (:mod:`promptflow_dsl.lang.row_types`), streaming, with the first
:data:`MAX_ROW_ERRORS` problems reported in the data file itself
(``data/tickets.jsonl:7:35``) and a count of the rest; ``run`` is typed with ``row`` in
scope, each metric with ``row`` and ``out``; thresholds must name a metric.  The
result is an :class:`EvalInfo`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

from ..diagnostics import Span, error
from ..lang.row_types import RowTypeError, missing_columns, row_value
from ..lang.rows import DatasetError, csv_header, dataset_format, validate_rows
from ..lang.types import (
    ANY,
    BOOL,
    FLOAT,
    INT,
    AnyType,
    Field,
    RecordType,
    Type,
    is_assignable,
    optional,
)
from ..syntax import ast
from ..syntax.builder import THRESHOLD_OPS, suggest
from ..syntax.source import display_name
from .env import ModuleEnv
from .exprs import ExprChecker, Scope, _as_ref, free_names
from .program import CheckedModule, EvalInfo, MetricInfo, Resolved, ThresholdInfo

MAX_ROW_ERRORS = 20
_NO_ROWS = RecordType(None, ())


def check_eval(env: ModuleEnv, d: ast.EvalDecl) -> EvalInfo:
    """Check one eval declaration; every problem is reported on ``env``."""
    row_t: Type = ANY
    info_row = _NO_ROWS
    data = env.path.parent if env.path is not None else env.project.root
    fmt, rows = "jsonl", 0
    if d.data is not None:
        row_t = env.type_of(d.data.row_type)
        if isinstance(row_t, RecordType):
            info_row = row_t
        elif not isinstance(row_t, AnyType):  # `any` here: an unknown type, already reported
            env.err(d.data.row_type.span, f"the row type of eval '{d.name}' must be a record "
                                          f"type (each row has named fields), not {row_t.show()}")
            row_t = ANY
        data, fmt, rows = _check_data(env, d.data, info_row if row_t != ANY else None)
    ec = ExprChecker(env)
    out_t: Type = ANY
    if d.run is not None:
        out_t = ec.check(d.run, Scope({"row": row_t}))
    names = {m.name for m in d.metrics} - {"row", "out"}
    metrics = tuple(_metric(env, ec, m, row_t, out_t, names) for m in d.metrics)
    thresholds = tuple(t for t in (_threshold(env, d, x, metrics) for x in d.thresholds)
                       if t is not None)
    return EvalInfo(f"{env.cm.key}::{d.name}", d.name, env.cm.key, d, data, fmt, info_row,
                    d.run if d.run is not None else ast.NoneLit(d.name_span), out_t, metrics,
                    thresholds, rows, tuple(dict.fromkeys(k for k, _ in ec.calls)))


# ------------------------------------------------------------------ expressions

_METRIC_TYPES = (optional(FLOAT), optional(BOOL))


def _metric(env: ModuleEnv, ec: ExprChecker, m: ast.EvalMetric, row_t: Type, out_t: Type,
            metric_names: set[str]) -> MetricInfo:
    scope = Scope({"row": row_t, "out": out_t})
    for n in free_names(m.value):
        if n.name in metric_names and n.name not in scope.vars:
            env.err(n.span, f"metric '{m.name}' reads metric '{n.name}': a metric sees only "
                            f"`row` and `out` (compute what both need in `run`)")
            scope.vars[n.name] = ANY
    t = ec.check(m.value, scope)
    if not any(is_assignable(t, want) for want in _METRIC_TYPES):
        env.err(m.value.span, f"metric '{m.name}' must be bool, int, float or an optional of "
                              f"those (none: not scored), got {t.show()}")
    return MetricInfo(m.name, m.value, t, m.name_span)


def _threshold(env: ModuleEnv, d: ast.EvalDecl, t: ast.EvalThreshold,
               metrics: tuple[MetricInfo, ...]) -> ThresholdInfo | None:
    metric = next((m for m in metrics if m.name == t.metric), None)
    if metric is None and not metrics:  # no metric at all: reported by the builder
        return None
    if metric is None:
        names = [m.name for m in metrics]
        env.err(t.metric_span, f"threshold on unknown metric '{t.metric}'"
                               f"{suggest(t.metric, names)} (metrics of eval '{d.name}': "
                               f"{', '.join(names) or 'none'})")
        return None
    if t.value is None or t.op not in THRESHOLD_OPS:  # reported by the builder
        return None
    value = float(t.value.value)
    rate = is_assignable(metric.type, optional(BOOL)) and not isinstance(metric.type, AnyType)
    if rate and not 0 <= value <= 1:
        hint = f"; did you mean {value / 100:g}?" if 1 < value <= 100 else ""
        env.warn(t.value.span, f"metric '{t.metric}' is a rate (a bool metric: the share of "
                               f"rows where it is true), between 0 and 1{hint}")
    return ThresholdInfo(t.metric, t.op, value, t.span)


# ------------------------------------------------------------------ data


def _check_data(env: ModuleEnv, data: ast.EvalData,
                row_t: RecordType | None) -> tuple[Path, str, int]:
    """The data file's path, format and row count; its rows validated against ``row_t``
    (``None``: the row type is wrong, rows are only read)."""
    rel = data.path.value
    base = env.path.parent if env.path is not None else env.project.root
    fallback = (base / rel) if rel else base
    if "\n" in rel or "\r" in rel:
        env.err(data.path.span, "a data file is named by its path, and this string has a line "
                                "break")
        return fallback, "jsonl", 0
    try:
        fmt = dataset_format(rel)
    except DatasetError:
        env.err(data.path.span, f"data file '{rel}' is neither JSONL nor CSV: name it *.jsonl, "
                                f"*.ndjson or *.csv")
        return fallback, "jsonl", 0
    path, diag = env.project.resolve_file(env.path, rel, data.path.span, "data file")
    if path is None:
        if diag is not None:
            env.diags.append(diag)
        return fallback.absolute(), fmt, 0  # no file-system call: the path may be no path
    checker = _RowChecker(row_t, fmt == "csv")
    problems: list[DatasetError] = []
    header: list[str] | None = None
    try:
        if fmt == "csv" and row_t is not None:
            header = csv_header(path)
            missing = missing_columns(header, row_t) if header is not None else []
            if missing:  # every row would repeat it: reported once, at the header
                line = _header_line(path)
                problems += [DatasetError(msg, path=str(path), line=line) for msg in missing]
                checker.row_t = None
        report = validate_rows(path, checker, max_reported=MAX_ROW_ERRORS)
    except DatasetError as exc:  # the file itself: unreadable, a FIFO, a bad CSV header
        env.err(data.path.span, f"data file '{rel}': {exc.message}")
        return path, fmt, 0
    if report.rows == 0:
        env.err(data.path.span, f"data file '{rel}' has no rows")
        return path, fmt, 0
    problems += report.errors
    if problems:
        uri = display_name(path)
        lines = _read_lines(path, {p.line for p in problems if p.line is not None})
        env.cm.data_lines.setdefault(uri, {}).update(lines)
        for p in problems:
            line = p.line or 1
            span = _locate(uri, line, lines.get(line, ""), p.column,
                           checker.fields.get(p.message), header if fmt == "csv" else None)
            diag = error(span, p.message)
            if diag not in env.diags:  # another eval of the same data and row type
                env.diags.append(diag)
    more = report.error_count - len(report.errors)
    if more:
        env.err(data.path.span, f"data file '{rel}' has {report.error_count} bad rows: the first "
                                f"{len(report.errors)} are shown above, {more} more are not")
    return path, fmt, report.rows


class _RowChecker:
    """The ``validate`` of :func:`validate_rows`: a row's problem, or ``None``; remembers
    which field each message is about (to point at it in the line)."""

    def __init__(self, row_t: RecordType | None, text_cells: bool) -> None:
        self.row_t = row_t
        self.text_cells = text_cells
        self.fields: dict[str, str | None] = {}

    def __call__(self, row: dict) -> str | None:
        if self.row_t is None:
            return None
        try:
            row_value(row, self.row_t, text_cells=self.text_cells)
        except RowTypeError as exc:
            message = f"the row does not fit {self.row_t.show()}: {exc.message}"
            if len(self.fields) < MAX_ROW_ERRORS:  # only the first ones are reported
                self.fields.setdefault(message, exc.field)
            return message
        return None


def _read_lines(path: Path, wanted: set[int]) -> dict[int, str]:
    """The text of the physical lines ``wanted`` of ``path`` (read again, streaming, up to
    the last one wanted); undecodable bytes shown as U+FFFD."""
    out: dict[int, str] = {}
    last = max(wanted, default=0)
    try:
        with path.open("rb") as f:
            for n, raw in enumerate(f, 1):
                if n > last:
                    break
                if n in wanted:
                    if n == 1 and raw.startswith(b"\xef\xbb\xbf"):
                        raw = raw[3:]
                    out[n] = raw.decode("utf-8", "replace").rstrip("\r\n")
    except OSError:
        pass
    return out


def _header_line(path: Path) -> int:
    """The line of a CSV file's header: its first line that is not empty."""
    with path.open("rb") as f:
        for n, raw in enumerate(f, 1):
            if raw.strip(b"\xef\xbb\xbf\r\n"):
                return n
    return 1


def _locate(uri: str, line: int, text: str, column: int | None, field: str | None,
            columns: list[str] | None) -> Span:
    """Where in the data file's line a problem is: the column the reader gave, else the
    value of ``field`` (a JSON key's value, a CSV cell of a one-line record), else the
    whole line."""
    whole = Span(uri, line, 1, line, max(len(text), 1) + 1)
    if column is not None:
        return Span.point(uri, line, column)
    if field is None or not text:
        return whole
    if columns is None:  # JSONL
        found = [m for m in re.finditer(re.escape(json.dumps(field, ensure_ascii=False))
                                        + r"\s*:\s*", text)]
        if len(found) == 1:
            start = found[0].end()
            try:
                _, end = json.JSONDecoder().raw_decode(text, start)
            except ValueError:
                end = start + 1
            return Span(uri, line, start + 1, line, end + 1)
        return whole
    if columns is None or field not in columns:
        return whole
    return _csv_cell(uri, line, text, columns.index(field)) or whole


def _csv_cell(uri: str, line: int, text: str, index: int) -> Span | None:
    """Cell ``index`` of a CSV record written on one line (``None`` when the line does not
    hold the whole record)."""
    cells: list[tuple[int, int]] = []
    i, n = 0, len(text)
    while True:
        start = i
        if i < n and text[i] == '"':
            i += 1
            while True:
                j = text.find('"', i)
                if j < 0:
                    return None  # a quoted field that goes on on the next line
                if text.startswith('""', j):
                    i = j + 2
                    continue
                i = j + 1
                break
            if i < n and text[i] != ",":
                return None
        else:
            j = text.find(",", i)
            i = n if j < 0 else j
        cells.append((start, i))
        if i >= n:
            break
        i += 1
    if index >= len(cells):
        return None
    a, b = cells[index]
    return Span(uri, line, a + 1, line, max(b, a + 1) + 1)


# ------------------------------------------------------------------ evaluate(NAME)


def check_evaluate(env: ModuleEnv, call: ast.Call) -> Type:
    """The type of ``evaluate(NAME)`` in a test: ``{rows: int, failed: int, metrics:
    {M: float?, ...}}`` with one field per metric of the eval ``NAME`` (``name`` or
    ``alias.name``); records ``Resolved("eval", key)`` for the call."""
    if len(call.args) != 1 or call.kwargs:
        env.err(call.span, "evaluate() takes the name of one eval, e.g. evaluate(my_eval)")
        return ANY
    arg = call.args[0]
    ref = _as_ref(arg)
    if ref is None:
        env.err(arg.span, "evaluate() takes the name of an eval, not an expression")
        return ANY
    info = _eval_by_ref(env, ref)
    if info is None:
        return ANY
    env.cm.resolutions[call.span] = Resolved("eval", info.key)
    return evaluate_result(info)


def evaluate_result(info: EvalInfo) -> RecordType:
    """What ``evaluate(e)`` returns: the row counts and each metric's mean (``none`` when no
    row scored it)."""
    metrics = RecordType(None, tuple(Field(m.name, optional(FLOAT), False)
                                     for m in info.metrics))
    return RecordType(None, (Field("rows", INT, True), Field("failed", INT, True),
                             Field("metrics", metrics, True)))


def _eval_by_ref(env: ModuleEnv, ref: ast.Ref) -> EvalInfo | None:
    if len(ref.parts) == 2:
        found: EvalInfo | None = env._from_import(ref, "evals", "eval")
        return found
    name = ref.parts[0]
    info = env.cm.evals.get(name)
    if info is None and name not in env.evals:
        known = ", ".join(env.evals) or "none"
        decl = env.values.get(name)
        if decl is not None:
            kind = "module" if isinstance(decl, ast.ImportDecl) else getattr(decl, "kind", "name")
            env.err(ref.span, f"'{name}' is a {kind}, not an eval (evals: {known})")
        else:
            env.err(ref.span, f"unknown eval '{name}'{suggest(name, list(env.evals))} "
                              f"(evals: {known})")
    return info


def data_sources(modules: Iterable[CheckedModule]) -> dict[str, str]:
    """For :func:`~promptflow_dsl.diagnostics.render`: each data file the diagnostics of
    ``modules`` point into, as a text holding just those lines (the others empty), so
    that a 100,000-row file is never kept whole."""
    merged: dict[str, dict[int, str]] = {}
    for cm in modules:
        for uri, lines in cm.data_lines.items():
            merged.setdefault(uri, {}).update(lines)
    return {uri: "\n".join(lines.get(n, "") for n in range(1, max(lines, default=0) + 1))
            for uri, lines in merged.items()}
