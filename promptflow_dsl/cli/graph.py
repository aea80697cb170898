"""``pflow graph FILE [HANDLER]``: a handler's plan, or the call graph of every handler,
as text (Mermaid, DOT, JSON) or as a picture (SVG, PNG, a self-contained HTML page)."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from .common import EXIT_OK, EXIT_USAGE, UsageError, load_or_report

TEXT_FORMATS = ("mermaid", "dot", "json")
PICTURE_FORMATS = ("svg", "png", "html")


def cmd_graph(args: argparse.Namespace) -> int:
    picture = args.format in PICTURE_FORMATS
    if args.open and not picture:
        raise UsageError(f"pflow graph: --open needs a picture format "
                         f"(--format {'|'.join(PICTURE_FORMATS)}), not {args.format}")
    if args.format == "png" and not args.output and not args.open and sys.stdout.isatty():
        raise UsageError("pflow graph: a PNG is not written to a terminal: give -o FILE.png "
                         "(or --open, or redirect stdout)")
    program = load_or_report(args)
    if program is None:
        return EXIT_USAGE
    from ..plan import Plan, PlanError

    plan: Plan
    if args.handler is None:
        from ..picture import call_graph_plan

        plan = call_graph_plan(program)
        title = f"{Path(args.file).name}: call graph"
    else:
        try:
            plan = program.plan(args.handler)
        except KeyError as exc:
            raise UsageError(f"pflow graph: {exc.args[0]}") from None
        except PlanError as exc:
            print(f"pflow graph: {exc}", file=sys.stderr)
            return EXIT_USAGE
        title = f"{Path(args.file).name}: {args.handler}"
    if not picture:
        from ..plan.render import render

        text = render(plan, args.format)
        if not args.output:
            print(text)
            return EXIT_OK
        return _emit((text + "\n").encode("utf-8"), args)
    from ..picture import MissingExtra, draw

    try:
        data = draw(plan, args.format, title)
    except MissingExtra as exc:
        print(f"pflow graph: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return _emit(data, args)


def _emit(data: bytes, args: argparse.Namespace) -> int:
    """Write to ``-o``, else (with ``--open``) to a file in the temporary folder, else to
    stdout; ``--open`` then shows the file in the browser."""
    target: Path | None = Path(args.output) if args.output else None
    if target is None and args.open:
        name = "".join(c if c.isalnum() or c in "-_" else "_" for c in (args.handler or "calls"))
        target = Path(tempfile.gettempdir()) / f"pflow-graph-{name}.{args.format}"
    if target is None:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return EXIT_OK
    try:
        target.write_bytes(data)
    except OSError as exc:
        raise UsageError(f"pflow graph: cannot write {target}: {exc.strerror or exc}") from None
    if args.open:
        import webbrowser

        print(f"wrote {target}", file=sys.stderr)
        webbrowser.open(target.resolve().as_uri())
    return EXIT_OK


def add_parser(sub: Any) -> None:
    g = sub.add_parser("graph", help="render a handler's execution graph",
                       description="Render the plan of HANDLER (its call sites, data edges, "
                                   "fan-out and branches, and the handlers it may call); without "
                                   "HANDLER, the call graph of every handler in FILE. Pictures "
                                   "(svg, png, html) need the `graph` extra.")
    g.add_argument("file", metavar="FILE")
    g.add_argument("handler", nargs="?", metavar="HANDLER")
    g.add_argument("--format", choices=TEXT_FORMATS + PICTURE_FORMATS, default="mermaid",
                   help="text (mermaid, dot, json) or a picture (svg, png, html); default mermaid")
    g.add_argument("-o", "--output", metavar="PATH", help="write to PATH instead of stdout")
    g.add_argument("--open", action="store_true",
                   help="open the picture in the web browser (written to -o PATH, or to a "
                        "file in the temporary folder)")
    g.add_argument("--allow-path", action="append", default=[], metavar="DIR")
    g.set_defaults(func=cmd_graph)
