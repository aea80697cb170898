"""The ``pflow`` command line: a thin layer over the library.

Exit status: 0 success; 1 a run or test failed; 2 a user error in the program
or on the command line; 70 an internal error (a bug in pflow, reported in one
line).  No input ever produces a Python traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .diagnostics import CompileError, Diagnostic, render, summary_line

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 70


class UsageError(Exception):
    """A mistake on the command line (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def _color(stream: object) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return bool(getattr(stream, "isatty", lambda: False)())


def _print_diagnostics(diags: list[Diagnostic], sources: dict[str, str]) -> None:
    if diags:
        print(render(diags, sources, color=_color(sys.stderr)), file=sys.stderr)


def _diag_json(d: Diagnostic) -> dict:
    return {"severity": d.severity.value, "message": d.message, "file": d.span.file,
            "line": d.span.line, "col": d.span.col, "end_line": d.span.end_line,
            "end_col": d.span.end_col,
            "notes": [{"message": m, "file": s.file, "line": s.line, "col": s.col} for s, m in d.notes]}


def _load(path: str, allow: list[str]):  # noqa: ANN202 - returns CheckedProgram
    from . import load

    p = Path(path)
    if not p.exists():
        raise UsageError(f"pflow: no such file: {path}")
    if p.is_dir():
        raise UsageError(f"pflow: {path} is a folder; give a .pflow file")
    return load(p, allow_paths=tuple(allow))


# ------------------------------------------------------------------ commands


def cmd_check(args: argparse.Namespace) -> int:
    status = EXIT_OK
    report = []
    for path in args.files:
        try:
            program = _load(path, args.allow_path)
        except CompileError as exc:
            status = EXIT_USAGE
            if args.format == "json":
                report.append({"file": path, "ok": False,
                               "diagnostics": [_diag_json(d) for d in exc.diagnostics]})
            else:
                _print_diagnostics(exc.diagnostics, exc.sources)
                print(f"{path}: {summary_line(exc.diagnostics)}", file=sys.stderr)
            continue
        warnings = program.warnings
        if args.strict and warnings:
            status = EXIT_USAGE
        if args.format == "json":
            report.append({"file": path, "ok": not (args.strict and warnings),
                           "handlers": {n: h.signature.show(n) for n, h in program.handlers.items()},
                           "tests": [t.name for t in program.tests],
                           "diagnostics": [_diag_json(d) for d in warnings]})
            continue
        _print_diagnostics(warnings, program.sources)
        if not args.quiet:
            n_h, n_t = len(program.handlers), len(program.tests)
            extra = f", {summary_line(warnings)}" if warnings else ""
            print(f"{path}: ok ({n_h} handler{'s' if n_h != 1 else ''}, "
                  f"{n_t} test{'s' if n_t != 1 else ''}{extra})")
    if args.format == "json":
        print(json.dumps(report, indent=2))
    return status


def cmd_graph(args: argparse.Namespace) -> int:
    try:
        program = _load(args.file, args.allow_path)
    except CompileError as exc:
        _print_diagnostics(exc.diagnostics, exc.sources)
        return EXIT_USAGE
    from .plan import PlanError
    from .plan.render import render as render_plan
    from .plan.render import render_call_graph

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


# ------------------------------------------------------------------ parser


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="pflow", description="Check, plan and run .pflow prompt programs.",
                epilog="Exit status: 0 ok, 1 run/test failed, 2 error in the program or "
                       "command line, 70 internal error.")
    p.add_argument("--version", action="version", version=f"pflow {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    c = sub.add_parser("check", help="parse and check programs; report every error",
                       description="Parse and statically check .pflow files and everything they "
                                   "import: names, types, templates, files. Prints every error "
                                   "as file:line:col with the source line.")
    c.add_argument("files", nargs="+", metavar="FILE")
    c.add_argument("--allow-path", action="append", default=[], metavar="DIR",
                   help="also allow files under DIR (outside the project folder)")
    c.add_argument("--format", choices=("text", "json"), default="text",
                   help="text (default) or a JSON report on stdout")
    c.add_argument("--strict", action="store_true", help="treat warnings as errors")
    c.add_argument("-q", "--quiet", action="store_true", help="print only problems")
    c.set_defaults(func=cmd_check)

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
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (never raises, except SystemExit from --help)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return EXIT_USAGE
        return int(args.func(args))
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("pflow: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - the one place internal errors are reported
        if os.environ.get("PFLOW_DEBUG"):
            raise
        print(f"pflow: internal error: {type(exc).__name__}: {exc} -- this is a bug in pflow; "
              f"set PFLOW_DEBUG=1 for the traceback", file=sys.stderr)
        return EXIT_INTERNAL


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    entry()
