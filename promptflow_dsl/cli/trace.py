"""``pflow trace show [RUN]`` and ``pflow trace list``: the traces of past runs."""

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


def add_parser(sub: Any) -> None:
    t = sub.add_parser("trace", help="show the trace of a run",
                       description="Show a run's trace as a tree (RUN: a run id, a path, or "
                                   "`last`), or list the runs.")
    t.add_argument("action", choices=("show", "list"))
    t.add_argument("run", nargs="?", metavar="RUN")
    t.add_argument("--trace-dir", metavar="DIR")
    t.add_argument("--project", metavar="PATH", help="a file or folder of the project")
    t.add_argument("--json", action="store_true", help="print the trace JSON")
    t.add_argument("--limit", type=int, default=20, help="how many runs `list` shows")
    t.set_defaults(func=cmd_trace)
