"""``pflow check FILE|DIR...``: parse and check programs; report every error.

Start-up stays light: the checker is loaded, never the planner, the runtime or a
model library.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..diagnostics import CompileError, summary_line
from .common import EXIT_OK, EXIT_USAGE, UsageError, diag_json, load_program, print_diagnostics


def check_files(paths: list[str]) -> list[str]:
    """The files to check: each FILE, and every ``.pflow`` file under each folder (found
    as ``pflow test`` finds them).  A folder without one is a usage error."""
    from ..check.loader import pflow_files

    out: list[str] = []
    for path in paths:
        if not Path(path).is_dir():
            out.append(path)  # a file; a missing one is reported when it is loaded
            continue
        found = pflow_files([path])
        if not found:
            raise UsageError(f"pflow check: no .pflow files in {path}")
        out.extend(str(f) for f in found)
    unique: dict[Path, str] = {}
    for f in out:  # a file named and also found in a named folder is checked once
        unique.setdefault(Path(f).resolve(), f)
    return list(unique.values())


def cmd_check(args: argparse.Namespace) -> int:
    status = EXIT_OK
    report = []
    for path in check_files(args.files):
        try:
            program = load_program(path, args.allow_path)
        except CompileError as exc:
            status = EXIT_USAGE
            if args.format == "json":
                report.append({"file": path, "ok": False,
                               "diagnostics": [diag_json(d) for d in exc.diagnostics]})
            else:
                print_diagnostics(exc.diagnostics, exc.sources)
                print(f"{path}: {summary_line(exc.diagnostics)}", file=sys.stderr)
            continue
        warnings = program.warnings
        if args.strict and warnings:
            status = EXIT_USAGE
        if args.format == "json":
            report.append({"file": path, "ok": not (args.strict and warnings),
                           "handlers": {n: h.signature.show(n) for n, h in program.handlers.items()},
                           "tests": [t.name for t in program.tests],
                           "evals": {n: _eval_json(e) for n, e in program.evals.items()},
                           "diagnostics": [diag_json(d) for d in warnings]})
            continue
        print_diagnostics(warnings, program.sources)
        if not args.quiet:
            n_h, n_t, n_e = len(program.handlers), len(program.tests), len(program.evals)
            extra = f", {n_e} eval{'s' if n_e != 1 else ''}" if n_e else ""
            extra += f", {summary_line(warnings)}" if warnings else ""
            print(f"{path}: ok ({n_h} handler{'s' if n_h != 1 else ''}, "
                  f"{n_t} test{'s' if n_t != 1 else ''}{extra})")
    if args.format == "json":
        print(json.dumps(report, indent=2))
    return status


def _eval_json(info: Any) -> dict[str, Any]:
    from ..syntax.source import display_name

    return {"data": display_name(info.data), "rows": info.rows,
            "metrics": {m.name: m.type.show() for m in info.metrics},
            "thresholds": [t.text for t in info.thresholds]}


def add_parser(sub: Any) -> None:
    c = sub.add_parser("check", help="parse and check programs; report every error",
                       description="Parse and statically check .pflow files and everything they "
                                   "import: names, types, templates, files. Prints every error "
                                   "as file:line:col with the source line. A folder stands for "
                                   "every .pflow file under it.")
    c.add_argument("files", nargs="+", metavar="FILE|DIR")
    c.add_argument("--allow-path", action="append", default=[], metavar="DIR",
                   help="also allow files under DIR (outside the project folder)")
    c.add_argument("--format", choices=("text", "json"), default="text",
                   help="text (default) or a JSON report on stdout")
    c.add_argument("--strict", action="store_true", help="treat warnings as errors")
    c.add_argument("-q", "--quiet", action="store_true", help="print only problems")
    c.set_defaults(func=cmd_check)
