"""``pflow route explain FILE ROUTE --input TEXT``: how a route routes one input (the
distance to each expert, each rule, or the router's reply, and the choice).

Exit statuses: 0 done; 1 the routing or a model failed (the error is shown at its
``.pflow`` line); 2 a mistake on the command line.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from .common import EXIT_USAGE, UsageError, load_or_report, parse_models

if TYPE_CHECKING:  # pragma: no cover
    from ..check.program import CheckedProgram, HandlerInfo
    from ..runtime import RunConfig

LABEL = "pflow route explain"


def find_route(program: CheckedProgram, name: str, label: str = "pflow") -> HandlerInfo:
    """The route the entry module calls ``name``.  Raises :class:`UsageError` with a
    message that lists the routes."""
    try:
        h = program.handler(name)
    except KeyError:
        h = None
    if h is None or h.kind != "route":
        routes = [n for n, x in program.handlers.items() if x.kind == "route"]
        what = "is not a route" if h is not None else "does not exist"
        raise UsageError(f"{label}: '{name}' {what} (routes: {', '.join(routes) or 'none'})")
    return h


def routing_config(args: argparse.Namespace, label: str) -> RunConfig:
    """The run configuration of ``optimize`` and ``route explain`` (no trace is written)."""
    from ..runtime import RunConfig
    from ..runtime.cache import CacheMode

    models = parse_models(getattr(args, "model", None), label)
    mode = CacheMode.OFF if getattr(args, "no_cache", False) else (
        CacheMode.REFRESH if getattr(args, "refresh", False) else CacheMode.DEFAULT)
    return RunConfig(models=models, cache=mode, write_trace=False)


def show_failure(program: CheckedProgram, exc: Exception) -> int:
    """A run error at its ``.pflow`` line on stderr; exit status 1."""
    from ..diagnostics import render

    diag = exc.diagnostic()  # type: ignore[attr-defined]
    print(render([diag], program.sources, color=False), file=sys.stderr)
    return 1


def cmd_route_explain(args: argparse.Namespace) -> int:
    program = load_or_report(args)
    if program is None:
        return EXIT_USAGE
    from ..kinds.route.explain import explain, render
    from ..runtime.errors import RunError
    from ..runtime.session import open_context

    h = find_route(program, args.route, LABEL)
    config = routing_config(args, LABEL)

    async def go() -> dict[str, Any]:
        async with open_context(program, config, "explain") as ctx:
            return await explain(ctx, h, args.input)

    try:
        from ..runtime.sync import run_sync

        report = run_sync(go())
    except RunError as exc:
        return show_failure(program, exc)
    print(json.dumps(report, indent=2, ensure_ascii=False) if args.json else render(report))
    return 0


def add_parser(sub: Any) -> None:
    r = sub.add_parser("route", help="inspect a route's decisions",
                       description="Commands about `route` handlers.")
    rs = r.add_subparsers(dest="route_command", metavar="ACTION", parser_class=type(r))
    e = rs.add_parser("explain", help="show the distance to each expert and the choice",
                      description="Show how ROUTE of FILE routes TEXT: the distance to each "
                                  "expert (by embedding), each rule (by rule) or the router's "
                                  "reply (by llm), and the expert chosen.")
    e.add_argument("file", metavar="FILE")
    e.add_argument("route", metavar="ROUTE")
    e.add_argument("-i", "--input", required=True, metavar="TEXT", help="the input to route")
    e.add_argument("--json", action="store_true", help="print the decision as JSON")
    e.add_argument("-m", "--model", action="append", metavar="ID|NAME=ID")
    e.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    e.add_argument("--allow-path", action="append", default=[], metavar="DIR")
    e.set_defaults(func=cmd_route_explain)
