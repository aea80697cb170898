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
from .diagnostics import CompileError, Diagnostic, mask_secrets, render, summary_line

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


def _warnings_hint(count: int, path: str | Path) -> None:
    """One line on stderr for the warnings ``pflow run`` and ``pflow test`` do not show."""
    if count:
        import shlex

        print(f"{count} warning{'s' if count != 1 else ''}; `pflow check {shlex.quote(str(path))}` "
              "shows them", file=sys.stderr)


def _diag_json(d: Diagnostic) -> dict:
    return {"severity": d.severity.value, "message": mask_secrets(d.message), "file": d.span.file,
            "line": d.span.line, "col": d.span.col, "end_line": d.span.end_line,
            "end_col": d.span.end_col,
            "notes": [{"message": mask_secrets(m), "file": s.file, "line": s.line, "col": s.col}
                      for s, m in d.notes]}


def _load(path: str, allow: list[str]):  # noqa: ANN202 - returns CheckedProgram
    from . import load

    p = Path(path)
    if not p.exists():
        raise UsageError(f"pflow: no such file: {path}")
    if p.is_dir():
        raise UsageError(f"pflow: {path} is a folder; give a .pflow file")
    return load(p, allow_paths=tuple(allow))


# ------------------------------------------------------------------ commands


def _check_files(paths: list[str]) -> list[str]:
    """The files to check: each FILE, and every ``.pflow`` file under each folder (found
    as ``pflow test`` finds them).  A folder without one is a usage error."""
    from .check.loader import pflow_files

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
    for path in _check_files(args.files):
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


def _pick_handler(program, name: str | None) -> str:  # noqa: ANN001
    if name is not None:
        return name
    handlers = list(program.handlers)
    if len(handlers) == 1:
        return handlers[0]
    if "main" in program.handlers:
        return "main"
    raise UsageError(f"pflow run: name the handler to run (handlers: {', '.join(handlers) or 'none'})")


def _parse_inputs(program, handler: str, pairs: list[str], blob: str | None) -> dict:  # noqa: ANN001
    from .lang.types import STR, is_assignable

    try:
        h = program.handler(handler)
    except KeyError as exc:
        raise UsageError(f"pflow run: {exc.args[0]}") from None
    inputs: dict = {}
    if blob is not None:
        try:
            data = json.loads(blob)
        except json.JSONDecodeError as exc:
            raise UsageError(f"pflow run: --input-json is not valid JSON: {exc.msg}") from None
        if not isinstance(data, dict):
            raise UsageError("pflow run: --input-json must be a JSON object of inputs")
        inputs.update(data)
    for pair in pairs:
        key, eq, raw = pair.partition("=")
        if not eq or not key:
            raise UsageError(f"pflow run: --input takes NAME=VALUE, got {pair!r}")
        if raw.startswith("@"):
            try:
                raw = Path(raw[1:]).read_text(encoding="utf-8")
            except OSError as exc:
                raise UsageError(f"pflow run: --input {key}: cannot read {raw[1:]}: "
                                 f"{exc.strerror}") from None
        p = h.signature.param(key)
        if p is not None and is_assignable(STR, p.type):
            inputs[key] = raw  # text parameters take the value as written
            continue
        try:
            inputs[key] = json.loads(raw)
        except json.JSONDecodeError:
            if p is None:
                inputs[key] = raw
            else:
                raise UsageError(f"pflow run: input '{key}' must be {p.type.show()} written as "
                                 f"JSON, got {raw!r}") from None
    return inputs


def _config(args: argparse.Namespace):  # noqa: ANN202 - RunConfig
    from .runtime import RunConfig
    from .runtime.cache import CacheMode

    models: dict[str, str] = {}
    for m in args.model or []:
        name, eq, ident = m.partition("=")
        if eq:
            if not name or not ident:
                raise UsageError(f"pflow run: --model takes ID or NAME=ID, got {m!r}")
            models[name] = ident
        else:
            models["default"] = m
    if args.concurrency < 1:
        raise UsageError("pflow run: --concurrency must be at least 1")
    mode = CacheMode.OFF if args.no_cache else (CacheMode.REFRESH if args.refresh else
                                                CacheMode.DEFAULT)
    return RunConfig(models=models, concurrency=args.concurrency, cache=mode,
                     trace_dir=Path(args.trace_dir) if args.trace_dir else None,
                     write_trace=not args.no_trace)


class _Progress:
    """A one-line live count of handler calls on a terminal's stderr (10 updates/s at most)."""

    shown = False

    def __init__(self, handler: str) -> None:
        self.handler = handler
        self.last = 0.0

    def __call__(self, finished: int, running: int) -> None:
        import time

        now = time.monotonic()
        if now - self.last < 0.1:
            return
        self.last = now
        sys.stderr.write(f"\r\x1b[2K{self.handler}: {finished} call{'s' if finished != 1 else ''} "
                         f"done, {running} running")
        sys.stderr.flush()
        _Progress.shown = True

    @staticmethod
    def clear() -> None:
        if _Progress.shown:
            sys.stderr.write("\r\x1b[2K")
            sys.stderr.flush()
            _Progress.shown = False


def _show_value(value: object, as_json: bool) -> str:
    if isinstance(value, str) and not as_json:
        return value
    return json.dumps(value, ensure_ascii=False, indent=2)


def cmd_run(args: argparse.Namespace) -> int:
    try:
        program = _load(args.file, args.allow_path)
    except CompileError as exc:
        _print_diagnostics(exc.diagnostics, exc.sources)
        return EXIT_USAGE
    if args.verbose:
        _print_diagnostics(program.warnings, program.sources)
    elif not args.quiet:
        _warnings_hint(len(program.warnings), args.file)
    from .runtime import InputError, RunFailed, run

    handler = _pick_handler(program, args.handler)
    inputs = _parse_inputs(program, handler, args.input or [], args.input_json)
    config = _config(args)
    if not args.quiet and sys.stderr.isatty():
        config.progress = _Progress(handler)
    try:
        result = run(program, handler, inputs, config)
    except InputError as exc:
        raise UsageError(f"pflow run: {exc}") from None
    except RunFailed as exc:
        _Progress.clear()
        print(render([exc.diagnostic()], program.sources, color=_color(sys.stderr)), file=sys.stderr)
        if exc.detail:
            print(exc.detail, file=sys.stderr)
        if exc.trace_path is not None:
            print(f"trace: {_rel(exc.trace_path)}  (pflow trace show {exc.trace.run_id})",
                  file=sys.stderr)
        return EXIT_FAILED
    _Progress.clear()
    print(_show_value(result.value, args.json))
    if not args.quiet:
        t = result.trace.totals
        where = f" · trace {_rel(result.trace_path)}" if result.trace_path else ""
        print(f"ok in {result.trace.wall_ms / 1000:.2f}s · {t.calls} model call"
              f"{'s' if t.calls != 1 else ''} ({t.cache_hits} cached){where}", file=sys.stderr)
    return EXIT_OK


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _project_dir(args: argparse.Namespace) -> Path:
    from .check.loader import find_project_root

    start = Path(args.project) if getattr(args, "project", None) else Path.cwd()
    return find_project_root(start if start.is_dir() else start.parent)


def cmd_cache(args: argparse.Namespace) -> int:
    from .runtime.cache import ResponseCache, default_cache_dir

    directory = Path(args.cache_dir) if args.cache_dir else default_cache_dir(_project_dir(args))
    if args.action == "info":
        if not directory.exists():
            print(f"cache: {_rel(directory)} (empty: no cache yet)")
            return EXIT_OK
        with ResponseCache(directory) as cache:
            info = cache.info()
        print(f"cache: {_rel(directory)}\nentries: {info.get('entries', 0)}\n"
              f"size: {info.get('size', 0)} bytes\nformat: {info.get('format')}")
        return EXIT_OK
    if not directory.exists():
        print(f"cache: {_rel(directory)} is already empty")
        return EXIT_OK
    with ResponseCache(directory) as cache:
        n = cache.clear()
    print(f"cache: removed {n} entr{'y' if n == 1 else 'ies'} from {_rel(directory)}")
    return EXIT_OK


def cmd_trace(args: argparse.Namespace) -> int:
    from .runtime.trace import (
        TraceError,
        default_trace_dir,
        list_traces,
        load_trace,
        render_trace_tree,
    )

    directory = Path(args.trace_dir) if args.trace_dir else default_trace_dir(_project_dir(args))
    if args.action == "list":
        paths = list_traces(directory)
        if not paths:
            print(f"no traces in {_rel(directory)}")
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
        print(render_trace_tree(trace, color=_color(sys.stdout)))
    return EXIT_OK


def cmd_test(args: argparse.Namespace) -> int:
    from .testing.discover import pflow_files
    from .testing.session import render_outcome, run_files

    try:
        files = pflow_files(args.paths or ["."])
    except FileNotFoundError as exc:
        raise UsageError(f"pflow test: no such file or folder: {exc}") from None
    mode = "record" if args.record else ("live" if args.live else "replay")
    color = _color(sys.stdout)
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    broken = 0
    ran_any = False
    for fr in run_files(files, args.k, mode, tuple(Path(a) for a in args.allow_path)):
        if fr.compile_error is not None:
            broken += 1
            print(render(fr.compile_error.diagnostics, fr.sources, color=_color(sys.stderr)),
                  file=sys.stderr)
            continue
        if not args.quiet:
            _warnings_hint(fr.warnings, fr.path)
        for o in fr.outcomes:
            ran_any = True
            counts[o.status] += 1
            if o.status != "passed" or not args.quiet:
                print(render_outcome(o, fr.sources, color))
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


def _routing_command(args: argparse.Namespace, command: str, label: str) -> int:
    """Load FILE and run ``routing.commands.<command>`` on it; its errors are usage errors."""
    try:
        program = _load(args.file, args.allow_path)
    except CompileError as exc:
        _print_diagnostics(exc.diagnostics, exc.sources)
        return EXIT_USAGE
    from .routing import commands

    try:
        return int(getattr(commands, command)(program, args))
    except commands.CommandError as exc:
        raise UsageError(f"{label}: {exc}") from None


def cmd_optimize(args: argparse.Namespace) -> int:
    """`pflow optimize FILE ROUTE --train T --eval E`: see promptflow_dsl/routing/commands.py."""
    return _routing_command(args, "optimize_command", "pflow optimize")


def cmd_route_explain(args: argparse.Namespace) -> int:
    """`pflow route explain FILE ROUTE --input TEXT`: the distances and the choice."""
    return _routing_command(args, "explain_command", "pflow route explain")


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

    r = sub.add_parser("run", help="run a handler against its models and print the result",
                       description="Run HANDLER of FILE (the only handler, or `main`, when not "
                                   "named) and print its result: text for str, else JSON. Model "
                                   "replies are cached in .pflow-cache/ of the project; every run "
                                   "writes a trace there.")
    r.add_argument("file", metavar="FILE")
    r.add_argument("handler", nargs="?", metavar="HANDLER")
    r.add_argument("-i", "--input", action="append", metavar="NAME=VALUE",
                   help="an input; text parameters take VALUE as written, others as JSON; "
                        "NAME=@PATH reads the value from a file")
    r.add_argument("--input-json", metavar="JSON", help="all inputs as one JSON object")
    r.add_argument("-m", "--model", action="append", metavar="ID|NAME=ID",
                   help="use model ID for `default` (ID) or for model NAME (NAME=ID)")
    r.add_argument("--concurrency", type=int, default=64, metavar="N",
                   help="most model and tool calls in flight at once (default 64)")
    r.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    r.add_argument("--refresh", action="store_true", help="call the models again and overwrite "
                                                          "the cached replies")
    r.add_argument("--trace-dir", metavar="DIR", help="where to write the trace")
    r.add_argument("--no-trace", action="store_true", help="do not write a trace")
    r.add_argument("--json", action="store_true", help="print the result as JSON even if text")
    r.add_argument("-q", "--quiet", action="store_true", help="no summary or warning count on "
                                                              "stderr")
    r.add_argument("-v", "--verbose", action="store_true", help="print check warnings (not just "
                                                                "their count)")
    r.add_argument("--allow-path", action="append", default=[], metavar="DIR")
    r.set_defaults(func=cmd_run)

    c2 = sub.add_parser("cache", help="show or clear the response cache",
                        description="The response cache of the project in the current folder "
                                    "(.pflow-cache/responses, or PFLOW_CACHE_DIR).")
    c2.add_argument("action", choices=("info", "clear"))
    c2.add_argument("--cache-dir", metavar="DIR")
    c2.add_argument("--project", metavar="PATH", help="a file or folder of the project")
    c2.set_defaults(func=cmd_cache)

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

    from .routing.commands import add_parsers as add_route_parsers

    add_route_parsers(sub, cmd_optimize, cmd_route_explain)
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
