"""``pflow test [FILE|DIR...]``: run the ``test`` blocks of ``.pflow`` files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..diagnostics import render
from .common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError, color, warnings_hint


def cmd_test(args: argparse.Namespace) -> int:
    from ..testing.discover import pflow_files
    from ..testing.session import render_outcome, run_files

    try:
        files = pflow_files(args.paths or ["."])
    except FileNotFoundError as exc:
        raise UsageError(f"pflow test: no such file or folder: {exc}") from None
    mode = "record" if args.record else ("live" if args.live else "replay")
    use_color = color(sys.stdout)
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    broken = 0
    ran_any = False
    for fr in run_files(files, args.k, mode, tuple(Path(a) for a in args.allow_path)):
        if fr.compile_error is not None:
            broken += 1
            print(render(fr.compile_error.diagnostics, fr.sources, color=color(sys.stderr)),
                  file=sys.stderr)
            continue
        if not args.quiet:
            warnings_hint(fr.warnings, fr.path)
        for o in fr.outcomes:
            ran_any = True
            counts[o.status] += 1
            if o.status != "passed" or not args.quiet:
                print(render_outcome(o, fr.sources, use_color))
            if args.exitfirst and o.status == "failed":
                break
        if args.exitfirst and counts["failed"]:
            break
    if not ran_any and not broken:
        where = ", ".join(args.paths or ["."])
        print(f"no tests in {where}" + (f" matching -k {args.k!r}" if args.k else ""))
        return EXIT_OK
    summary = f"{counts['passed']} passed, {counts['failed']} failed"
    if counts["skipped"]:
        summary += f", {counts['skipped']} skipped"
    print(summary)
    if broken:
        print(f"{broken} file{'s' if broken != 1 else ''} did not compile", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_FAILED if counts["failed"] else EXIT_OK


def add_parser(sub: Any) -> None:
    te = sub.add_parser("test", help="run the test blocks of .pflow files",
                        description="Run every `test` block in the given files and folders "
                                    "(default: the current folder), offline under their mocks. "
                                    "`live` tests replay their recording (NAME.pflow.replay.json) "
                                    "or are skipped when there is none.")
    te.add_argument("paths", nargs="*", metavar="FILE|DIR")
    te.add_argument("-k", metavar="PATTERN", help="only tests whose file::name matches (words "
                                                 "joined by and/or/not, case-insensitive)")
    te.add_argument("--record", action="store_true", help="run live tests against their real "
                                                          "models and record the replies")
    te.add_argument("--live", action="store_true", help="run live tests against real models "
                                                        "without recording")
    te.add_argument("-x", "--exitfirst", action="store_true", help="stop at the first failure")
    te.add_argument("-q", "--quiet", action="store_true", help="print only failures and the "
                                                               "summary (no warning counts)")
    te.add_argument("--allow-path", action="append", default=[], metavar="DIR")
    te.set_defaults(func=cmd_test)
