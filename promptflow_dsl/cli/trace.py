"""``pflow trace show [RUN]``, ``pflow trace view [RUN]`` and ``pflow trace list``: the
traces of past runs, as a text tree or as a self-contained HTML page."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .common import EXIT_OK, UsageError, color, project_dir, rel


def cmd_trace(args: argparse.Namespace) -> int:
    from ..runtime.trace import (
        TraceError,
        default_trace_dir,
        list_traces,
        load_trace,
        render_trace_tree,
    )

    directory = Path(args.trace_dir) if args.trace_dir else default_trace_dir(project_dir(args))
    if args.action != "view" and (args.open or args.output):
        raise UsageError(f"pflow trace {args.action}: --open and -o/--output go with `view`")
    if args.action == "view":
        return _view(args, directory)
    if args.action == "list":
        paths = list_traces(directory)
        if not paths:
            print(f"no traces in {rel(directory)}")
        for p in paths[: args.limit]:
            print(p.stem)
        return EXIT_OK
    try:
        trace = load_trace(args.run or "last", directory)
    except TraceError as exc:
        raise UsageError(f"pflow trace: {exc}") from None
    if args.json:
        print(trace.model_dump_json(indent=2))
    else:
        print(render_trace_tree(trace, color=color(sys.stdout)))
    return EXIT_OK


def _view(args: argparse.Namespace, directory: Path) -> int:
    """Write the viewer page of RUN (a trace file, a run folder, `last`, a run id or
    prefix, or an eval run of the project) and print its path. Raises
    :class:`UsageError`."""
    from ..report.sources import ReportError, resolve
    from ..report.trace_page import trace_page

    label = "pflow trace view"
    ref = args.run or "last"
    evals = project_dir(args) / ".pflow-cache" / "evals"
    rows = Path(args.trace_dir) if args.trace_dir else None
    try:
        source = resolve(ref, directory, evals, rows)
    except ReportError as exc:
        raise UsageError(f"{label}: {exc}") from None
    out = Path(args.output) if args.output else source.default_output
    if out.is_dir():
        raise UsageError(f"{label}: -o {out}: is a folder; name the .html file to write")
    write_page(out, trace_page(source.view, source.title))
    print(rel(out))
    if args.open:
        open_page(out)
    return EXIT_OK


def write_page(path: Path, html: str) -> None:
    """Write ``html`` to ``path`` (through a temporary file in the same folder, so a
    reader never sees half a page), readable as an ordinary new file. Raises
    ``OSError``."""
    from ..atomic import new_file_mode, write_atomic

    write_atomic(path, html.encode("utf-8"), mode=new_file_mode())


def open_page(path: Path) -> None:
    """Open ``path`` in the default browser (a note on stderr when there is none)."""
    import webbrowser

    if not webbrowser.open(path.resolve().as_uri()):
        print(f"pflow: no browser to open {rel(path)}", file=sys.stderr)


def add_parser(sub: Any) -> None:
    t = sub.add_parser("trace", help="show the trace of a run",
                       description="Show a run's trace as a tree (RUN: a run id, a path, or "
                                   "`last`), write it as an HTML page (`view`; RUN may also "
                                   "be a run folder or an eval run), or list the runs.")
    t.add_argument("action", choices=("show", "view", "list"))
    t.add_argument("run", nargs="?", metavar="RUN")
    t.add_argument("--trace-dir", metavar="DIR")
    t.add_argument("--project", metavar="PATH", help="a file or folder of the project")
    t.add_argument("--json", action="store_true", help="print the trace JSON")
    t.add_argument("--limit", type=int, default=20, help="how many runs `list` shows")
    t.add_argument("-o", "--output", metavar="FILE.html",
                   help="with `view`: where to write the page (default: beside the trace, "
                        "or traces.html in the run folder)")
    t.add_argument("--open", action="store_true", help="with `view`: open the page in the "
                                                         "default browser")
    t.set_defaults(func=cmd_trace)
