"""What a report page is made from: a trace file, or a run folder of a dataset run
and the traces of its rows.

``RUN`` on the command line is a trace file, a run folder, a results file of
``pflow run --data --out`` (``.jsonl``), ``last`` (the newest trace), a run id or a
unique prefix of one in the trace folder, or else the id (or prefix) of an eval run of
the project.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .trace_data import RowTrace, ViewData, run_view, trace_view


class ReportError(Exception):
    """A trace or run folder that cannot be found or read; the message names the file
    or folder (and the newest runs when nothing matched)."""


@dataclass
class Source:
    """A view to draw, its title, and where its page goes unless told otherwise."""

    view: ViewData
    title: str
    default_output: Path


def _trace(ref: str, trace_dir: Path) -> tuple[Any, Path]:
    """(the trace, its file). Raises :class:`ReportError` (and lets ``TraceNotFound``
    through, so the caller can look for an eval run)."""
    from ..runtime.trace import TraceError, TraceNotFound, list_traces, load_trace

    try:
        if ref == "last":
            newest = list_traces(trace_dir)
            trace = load_trace("last", trace_dir)
            return trace, newest[0]
        trace = load_trace(ref, trace_dir)
    except TraceNotFound:
        raise
    except TraceError as exc:
        raise ReportError(str(exc)) from None
    given = Path(ref)
    path = given if given.is_file() else trace_dir / f"{trace.run_id}.json"
    return trace, path


def row_trace_dir(folder: Path, trace_dir: Path | None) -> Path:
    """Where the traces of a run folder's rows are: ``trace_dir`` when given, else
    ``$PFLOW_TRACE_DIR``, else the trace folder of the project whose
    ``.pflow-cache/evals`` holds the run."""
    if trace_dir is not None:
        return trace_dir
    from ..runtime.trace import default_trace_dir

    cache = folder.resolve().parent.parent
    project = cache.parent if cache.name == ".pflow-cache" else folder.parent
    return default_trace_dir(project)


def read_rows(folder: Path, trace_dir: Path | None, *, with_traces: bool = True
              ) -> list[RowTrace]:
    """The winning result line of each row of the run folder (or of a results file),
    each with its trace (``missing`` says why a row has none). Raises
    :class:`ReportError` when the results cannot be read."""
    from ..datasets import RunFolderError, read_results
    from ..runtime.trace import TraceError, load_trace

    results = folder if folder.is_file() else folder / "results.jsonl"
    if not results.is_file():
        raise ReportError(f"{folder}: not a run folder (no results.jsonl)")
    directory = row_trace_dir(folder if folder.is_dir() else folder.parent, trace_dir)
    rows = []
    try:
        lines = list(read_results(results))
    except RunFolderError as exc:
        raise ReportError(str(exc)) from None
    for line in lines:
        row = RowTrace(int(line.get("row", 0)), line)
        tid = line.get("trace_id")
        if not with_traces:
            pass
        elif not isinstance(tid, str) or not tid:
            row.missing = "no trace was written for this row"
        else:
            path = directory / f"{tid}.json"
            if not path.is_file():
                row.missing = f"trace {tid} not found in {directory}"
            else:
                try:
                    row.trace = load_trace(str(path), directory)
                except TraceError as exc:
                    row.missing = str(exc)
        rows.append(row)
    return rows


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object file of a run folder, or ``{}`` when it is missing or unreadable
    (a report shows what it can)."""
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def folder_view(folder: Path, trace_dir: Path | None) -> ViewData:
    """The trace view of a run folder: one ``row`` step per row, its trace under it.
    Raises :class:`ReportError`."""
    meta = read_json(folder / "meta.json")
    summary = read_json(folder / "summary.json")
    rows = read_rows(folder, trace_dir)
    options = meta.get("options") or {}
    name = options.get("eval") or options.get("handler")
    header = {"kind": "run", "run_id": meta.get("run_id") or folder.name,
              "title": f"eval {name}" if options.get("eval") else "dataset run",
              "program": options.get("program"), "status": summary.get("status"),
              "rows": len(rows), "wall_ms": float(summary.get("wall_time") or 0.0) * 1000.0,
              "models": meta.get("models") or {}}
    return run_view(header, rows)


def resolve(ref: str, trace_dir: Path, evals_root: Path | None,
            row_traces: Path | None = None) -> Source:
    """The view ``ref`` names (see the module's docstring). ``row_traces`` is where a
    run folder's row traces are (default: :func:`row_trace_dir`). Raises
    :class:`ReportError` with a message that names what was looked for and where."""
    from ..runtime.trace import TraceNotFound

    given = Path(ref)
    if ref != "last" and given.is_dir():
        return Source(folder_view(given, row_traces), f"run {given.name}", given / "traces.html")
    if given.suffix in (".jsonl", ".ndjson") and given.is_file():
        header = {"kind": "run", "run_id": given.name, "title": "dataset run"}
        view = run_view(header, read_rows(given, row_traces or trace_dir))
        view.header["rows"] = sum(1 for s in view.steps if s["k"] == "row")
        return Source(view, f"results {given.name}", given.with_suffix(".html"))
    try:
        trace, path = _trace(ref, trace_dir)
    except TraceNotFound as exc:
        folder = _eval_run(ref, evals_root)
        if folder is None:
            where = f"; no eval run '{ref}' in {evals_root} either" if evals_root else ""
            raise ReportError(f"{exc}{where}") from None
        return Source(folder_view(folder, row_traces), f"run {folder.name}",
                      folder / "traces.html")
    return Source(trace_view(trace), f"run {trace.run_id}", path.with_suffix(".html"))


def _eval_run(ref: str, evals_root: Path | None) -> Path | None:
    if evals_root is None or not evals_root.is_dir() or os.sep in ref:
        return None
    from ..datasets import RunFolderError, load_run

    try:
        return load_run(evals_root, ref).path
    except RunFolderError:
        return None
