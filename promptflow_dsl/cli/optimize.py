"""``pflow optimize FILE ROUTE --train T --eval E``: search better instructions for a
route's experts and write the route as a new ``.pflow`` file.

Exit statuses: 0 done; 1 the routing or a model failed (the error is shown at its
``.pflow`` line), or the written file does not check; 2 a mistake on the command
line.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..diagnostics import CompileError, render
from .common import EXIT_USAGE, UsageError, load_or_report
from .route import find_route, routing_config, show_failure

if TYPE_CHECKING:  # pragma: no cover
    from ..check.program import CheckedProgram

LABEL = "pflow optimize"


def read_rows(path: str, what: str) -> list[dict[str, Any]]:
    """JSONL rows with ``input`` (a string) and ``output``.  Raises :class:`UsageError`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{LABEL}: cannot read {what} {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{LABEL}: {what} {path} is not UTF-8 text") from None
    from ..check.jsonl import RowsError, parse_rows

    try:
        return parse_rows(text, need_io=True)
    except RowsError as exc:
        raise UsageError(f"{LABEL}: {what} {path} {exc}") from None


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


def cmd_optimize(args: argparse.Namespace) -> int:
    program = load_or_report(args)
    if program is None:
        return EXIT_USAGE
    from .. import load
    from ..kinds.route.emit import write_optimized
    from ..kinds.route.optimizer import MATCHES, PROPOSE_FROM, BudgetedContext, Options, optimize
    from ..runtime.errors import RunError
    from ..runtime.session import open_context

    h = find_route(program, args.route, LABEL)
    if args.budget < 1:
        raise UsageError(f"{LABEL}: --budget must be at least 1")
    if args.candidates < 0:
        raise UsageError(f"{LABEL}: --candidates must be at least 0")
    if args.match not in MATCHES or args.propose_from not in PROPOSE_FROM:
        raise UsageError(f"{LABEL}: bad --match or --propose-from")
    train = read_rows(args.train, "training file")
    evaluation = read_rows(args.eval, "evaluation file")
    options = Options(budget=args.budget, candidates=args.candidates, match=args.match,
                      propose_from=args.propose_from, seed=args.seed)
    out = Path(args.out) if args.out else default_out(program, h.key)
    bar = ProgressLine(args.budget) if (not args.quiet and sys.stderr.isatty()) else None
    config = routing_config(args, LABEL)

    async def go() -> Any:
        async with open_context(program, config, "optimize", BudgetedContext) as ctx:
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
        return show_failure(program, exc)
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


def add_parser(sub: Any) -> None:
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
