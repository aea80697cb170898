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
    from ..kinds.route.optimizer import (
        MATCHES,
        PROPOSE_FROM,
        BudgetedContext,
        Options,
        compare,
        optimize,
        split_holdout,
    )
    from ..runtime.errors import RunError
    from ..runtime.session import open_context

    h = find_route(program, args.route, LABEL)
    if args.budget < 1:
        raise UsageError(f"{LABEL}: --budget must be at least 1")
    if args.candidates < 0:
        raise UsageError(f"{LABEL}: --candidates must be at least 0")
    if args.match not in MATCHES or args.propose_from not in PROPOSE_FROM:
        raise UsageError(f"{LABEL}: bad --match or --propose-from")
    if not 0 <= args.holdout < 1:
        raise UsageError(f"{LABEL}: --holdout must be at least 0 and below 1 (a fraction of "
                         f"the evaluation rows)")
    train = read_rows(args.train, "training file")
    evaluation, held = split_holdout(read_rows(args.eval, "evaluation file"), args.holdout,
                                     args.seed)
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
            result = await optimize(ctx, h, train, evaluation, options,
                                    (lambda m: bar.update(message=m)) if bar else (lambda m: None))
            if held:
                if bar is not None:
                    bar.update(message="comparing on the held-back rows", force=True)
                result.heldout = await compare(ctx, result, held, args.match)
            return result

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
    search_calls = result.calls - (result.heldout.calls if result.heldout else 0)
    print(f"route {result.spec.name} (protocol {result.protocol}): {search_calls} model "
          f"call{'s' if search_calls != 1 else ''} (budget {result.budget}"
          f"{', ran out' if result.exhausted else ''})")
    for line in result.spending():
        print(f"  {line}")
    if result.protocol == "mop" and result.preselected:
        shown = ", ".join(repr(c if len(c) <= 40 else c[:37] + "...") for c in result.preselected)
        print(f"  pre-selected: {shown}")
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
    w = result.heldout
    if w is None:
        print("held-back rows: none (--holdout 0): no win rate")
    else:
        low, high = w.interval
        print(f"held-back rows: {w.n} (never seen by the search), {w.calls} model calls: "
              f"accuracy {w.before:.2f} -> {w.after:.2f}; against the un-optimized route "
              f"{w.wins} wins, {w.losses} losses, {w.ties} ties: win rate {w.rate:.2f} "
              f"(95% interval {low:.2f}-{high:.2f})")
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
                                   "beside it. A route with `protocol mop` is searched as "
                                   "Mixture-of-Prompts' code does (pooled candidates, global "
                                   "pre-selection, padded regions). The budget is split so "
                                   "every expert is scored; a held-back share of the evaluation "
                                   "rows gives the win rate against the un-optimized route.")
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
    o.add_argument("--seed", type=int, default=0, help="seed for the demo samples and the "
                   "held-back split")
    o.add_argument("--holdout", type=float, default=0.25, metavar="F",
                   help="fraction of the evaluation rows held back from the search and used "
                        "to compare the optimized route with the un-optimized one (default "
                        "0.25; 0: no comparison)")
    o.add_argument("--out", metavar="PATH", help="where to write (default: FILE's stem + "
                                                 ".optimized.pflow, beside it)")
    o.add_argument("-m", "--model", action="append", metavar="ID|NAME=ID")
    o.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    o.add_argument("--refresh", action="store_true", help="call the models again")
    o.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    o.add_argument("--allow-path", action="append", default=[], metavar="DIR")
    o.set_defaults(func=cmd_optimize)
