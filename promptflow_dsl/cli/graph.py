"""``pflow graph FILE [HANDLER]``: a handler's plan, or the call graph of every handler."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .common import EXIT_OK, EXIT_USAGE, UsageError, load_or_report


def cmd_graph(args: argparse.Namespace) -> int:
    program = load_or_report(args)
    if program is None:
        return EXIT_USAGE
    from ..plan import PlanError
    from ..plan.render import render as render_plan
    from ..plan.render import render_call_graph

    if args.handler is None:
        text = render_call_graph(program, args.format)
    else:
        try:
            plan = program.plan(args.handler)
        except KeyError as exc:
            raise UsageError(f"pflow graph: {exc.args[0]}") from None
        except PlanError as exc:
            print(f"pflow graph: {exc}", file=sys.stderr)
            return EXIT_USAGE
        text = render_plan(plan, args.format)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    return EXIT_OK


def add_parser(sub: Any) -> None:
    g = sub.add_parser("graph", help="render a handler's execution graph",
                       description="Render the plan of HANDLER (its call sites, data edges, "
                                   "fan-out and branches, and the handlers it may call); without "
                                   "HANDLER, the call graph of every handler in FILE.")
    g.add_argument("file", metavar="FILE")
    g.add_argument("handler", nargs="?", metavar="HANDLER")
    g.add_argument("--format", choices=("mermaid", "dot", "json"), default="mermaid")
    g.add_argument("-o", "--output", metavar="PATH", help="write to PATH instead of stdout")
    g.add_argument("--allow-path", action="append", default=[], metavar="DIR")
    g.set_defaults(func=cmd_graph)
