"""The work behind ``pflow optimize`` and ``pflow route explain`` (``cli.py`` parses the
arguments, loads the program and maps :class:`CommandError` to exit status 2), and
:func:`open_context`: a run context outside ``pflow run``, which sets up what
:func:`promptflow_dsl.runtime.arun` would (the response cache in its mode, a trace
recorder, the model registry) for callers that use a route piece by piece (these
commands, the benchmark, tests).

Exit statuses: 0 done; 1 the routing or a model failed (the error is shown at its
``.pflow`` line), or the written file does not check; 2 a mistake on the command
line (:class:`CommandError`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ..check.program import CheckedProgram, HandlerInfo
    from ..runtime.context import RunConfig, RunContext


def find_route(program: CheckedProgram, name: str) -> HandlerInfo:
    """The route the entry module calls ``name``.  Raises ``KeyError`` with a message
    that lists the routes."""
    try:
        h = program.handler(name)
    except KeyError:
        h = None
    if h is None or h.kind != "route":
        routes = [n for n, x in program.handlers.items() if x.kind == "route"]
        what = "is not a route" if h is not None else "does not exist"
        raise KeyError(f"'{name}' {what} (routes: {', '.join(routes) or 'none'})")
    return h


@contextlib.asynccontextmanager
async def open_context(program: CheckedProgram, config: RunConfig | None = None,
                       entry: str = "route", context_class: type | None = None
                       ) -> AsyncIterator[RunContext]:
    """A :class:`RunContext` (or ``context_class``) for ``program``, closed on exit."""
    from ..runtime.cache import CacheMode, ResponseCache, default_cache_dir
    from ..runtime.context import RunConfig, RunContext
    from ..runtime.trace import TraceRecorder

    config = config or RunConfig()
    cache = None
    if config.cache != CacheMode.OFF:
        cache = ResponseCache(config.cache_dir or default_cache_dir(program.root or Path.cwd()))
    cls = context_class or RunContext
    ctx = cls(program, config, TraceRecorder(program.entry.uri, entry, {}), cache)
    try:
        yield ctx
    finally:
        await ctx.aclose()


class CommandError(Exception):
    """A mistake on the command line."""


def read_rows(path: str, what: str) -> list[dict[str, Any]]:
    """JSONL rows with ``input`` (a string) and ``output``.  Raises :class:`CommandError`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot read {what} {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CommandError(f"{what} {path} is not UTF-8 text") from None
    from ..check.jsonl import RowsError, parse_rows

    try:
        return parse_rows(text, need_io=True)
    except RowsError as exc:
        raise CommandError(f"{what} {path} {exc}") from None


def run_config(args: argparse.Namespace) -> RunConfig:
    from ..runtime import RunConfig
    from ..runtime.cache import CacheMode

    models: dict[str, str] = {}
    for m in getattr(args, "model", None) or []:
        name, eq, ident = m.partition("=")
        if eq and (not name or not ident):
            raise CommandError(f"--model takes ID or NAME=ID, got {m!r}")
        models[name if eq else "default"] = ident if eq else m
    mode = CacheMode.OFF if getattr(args, "no_cache", False) else (
        CacheMode.REFRESH if getattr(args, "refresh", False) else CacheMode.DEFAULT)
    return RunConfig(models=models, cache=mode, write_trace=False)


def _fail(program: CheckedProgram, exc: Exception) -> int:
    from ..diagnostics import render

    diag = exc.diagnostic()  # type: ignore[attr-defined]
    print(render([diag], program.sources, color=False), file=sys.stderr)
    return 1


# ------------------------------------------------------------------ route explain

def explain_command(program: CheckedProgram, args: argparse.Namespace) -> int:
    from ..runtime.errors import RunError
    from .explain import explain, render

    try:
        h = find_route(program, args.route)
    except KeyError as exc:
        raise CommandError(exc.args[0]) from None

    async def go() -> dict[str, Any]:
        async with open_context(program, run_config(args), "explain") as ctx:
            return await explain(ctx, h, args.input)

    try:
        from ..runtime.sync import run_sync

        report = run_sync(go())
    except RunError as exc:
        return _fail(program, exc)
    print(json.dumps(report, indent=2, ensure_ascii=False) if args.json else render(report))
    return 0


# ------------------------------------------------------------------ optimize

class ProgressLine:
    """``\\r[#####-----] 12/40 calls  expert_2: candidate 2/4`` on stderr."""

    def __init__(self, budget: int, stream: Any = None, width: int = 24) -> None:
        self.budget = max(1, budget)
        self.stream = stream or sys.stderr
        self.width = width
        self.spent = 0
        self.message = ""
        self.last = 0.0
        self.shown = False

    def line(self) -> str:
        filled = min(self.width, round(self.width * self.spent / self.budget))
        return (f"[{'#' * filled}{'-' * (self.width - filled)}] {self.spent}/{self.budget} "
                f"calls  {self.message}")

    def update(self, spent: int | None = None, message: str | None = None, force: bool = False) -> None:
        if spent is not None:
            self.spent = spent
        if message is not None:
            self.message = message
        now = time.monotonic()
        if not force and now - self.last < 0.1:
            return
        self.last = now
        self.stream.write("\r\x1b[2K" + self.line())
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()


def default_out(program: CheckedProgram, route_key: str) -> Path:
    module = program.module_of(route_key)
    base = module.path if module.path is not None else Path.cwd() / "route.pflow"
    return base.parent / f"{base.stem}.optimized.pflow"


def optimize_command(program: CheckedProgram, args: argparse.Namespace) -> int:
    from .. import CompileError, load
    from ..diagnostics import render
    from ..runtime.errors import RunError
    from .emit import write_optimized
    from .optimizer import MATCHES, PROPOSE_FROM, BudgetedContext, Options, optimize

    try:
        h = find_route(program, args.route)
    except KeyError as exc:
        raise CommandError(exc.args[0]) from None
    if args.budget < 1:
        raise CommandError("--budget must be at least 1")
    if args.candidates < 0:
        raise CommandError("--candidates must be at least 0")
    if args.match not in MATCHES or args.propose_from not in PROPOSE_FROM:
        raise CommandError("bad --match or --propose-from")
    train = read_rows(args.train, "training file")
    evaluation = read_rows(args.eval, "evaluation file")
    options = Options(budget=args.budget, candidates=args.candidates, match=args.match,
                      propose_from=args.propose_from, seed=args.seed)
    out = Path(args.out) if args.out else default_out(program, h.key)
    bar = ProgressLine(args.budget) if (not args.quiet and sys.stderr.isatty()) else None

    async def go() -> Any:
        async with open_context(program, run_config(args), "optimize", BudgetedContext) as ctx:
            assert isinstance(ctx, BudgetedContext)
            if bar is not None:
                ctx.on_call = lambda: bar.update(ctx.spent)
            return await optimize(ctx, h, train, evaluation, options,
                                  (lambda m: bar.update(message=m)) if bar else (lambda m: None))

    try:
        from ..runtime.sync import run_sync

        result = run_sync(go())
    except RunError as exc:
        if bar is not None:
            bar.clear()
        return _fail(program, exc)
    if bar is not None:
        bar.clear()
    paths = write_optimized(program, result, out, train=len(train), evaluation=len(evaluation),
                            match=args.match)
    print(f"route {result.spec.name}: {result.calls} model call{'s' if result.calls != 1 else ''}"
          f" (budget {result.budget}{', ran out' if result.exhausted else ''})")
    width = max(len("expert"), *(len(r.name) for r in result.results))
    print(f"  {'expert':<{width}}  region  before  after  instruction")
    for r in result.results:
        if r.skipped:
            print(f"  {r.name:<{width}}  {r.region:>6}  kept: {r.skipped}")
            continue
        before = "-" if r.baseline is None else f"{r.baseline:.2f}"
        after = "-" if r.score is None else f"{r.score:.2f}"
        shown = r.best if len(r.best) <= 60 else r.best[:57] + "..."
        print(f"  {r.name:<{width}}  {r.region:>6}  {before:>6}  {after:>5}  {shown!r}")
    print(f"wrote {', '.join(str(p) for p in paths)}")
    try:
        load(out, allow_paths=tuple(args.allow_path))
    except CompileError as exc:
        print(render(exc.diagnostics, exc.sources, color=False), file=sys.stderr)
        print(f"pflow optimize: the written file {out} does not check (write it into the "
              f"route's own folder, where its relative paths resolve)", file=sys.stderr)
        return 1
    return 0


def add_parsers(sub: Any, cmd_optimize: Any, cmd_route_explain: Any) -> None:
    """The ``optimize`` and ``route explain`` sub-commands."""
    o = sub.add_parser("optimize", help="search better instructions for a route's experts",
                       description="Region-based joint search (Mixture-of-Prompts): route the "
                                   "training and evaluation rows, propose instructions for each "
                                   "expert from the other experts' demos, score each only on the "
                                   "evaluation inputs routed to that expert, keep the best, and "
                                   "write the route as a reviewable .pflow file with its demos "
                                   "beside it.")
    o.add_argument("file", metavar="FILE")
    o.add_argument("route", metavar="ROUTE")
    o.add_argument("--train", required=True, metavar="T.jsonl", help="training rows "
                   "{\"input\", \"output\"}: proposal material")
    o.add_argument("--eval", required=True, metavar="E.jsonl", help="evaluation rows: scoring")
    o.add_argument("--budget", type=int, default=200, metavar="N",
                   help="most model calls (cache hits are free; default 200)")
    o.add_argument("--candidates", type=int, default=4, metavar="M",
                   help="instructions proposed per expert (default 4)")
    o.add_argument("--match", choices=("exact", "contains"), default="exact",
                   help="a reply is right when it equals (default) or contains the output")
    o.add_argument("--propose-from", choices=("others", "own", "all"), default="others",
                   help="whose demos proposals are made from (default: the other experts')")
    o.add_argument("--seed", type=int, default=0, help="seed for the demo samples")
    o.add_argument("--out", metavar="PATH", help="where to write (default: FILE's stem + "
                                                 ".optimized.pflow, beside it)")
    o.add_argument("-m", "--model", action="append", metavar="ID|NAME=ID")
    o.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    o.add_argument("--refresh", action="store_true", help="call the models again")
    o.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    o.add_argument("--allow-path", action="append", default=[], metavar="DIR")
    o.set_defaults(func=cmd_optimize)

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
