"""``pflow run FILE [HANDLER]``: run a handler against its models and print the result."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..diagnostics import render
from .common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    color,
    load_and_warn,
    parse_models,
    rel,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..check.program import CheckedProgram
    from ..runtime import RunConfig


def pick_handler(program: CheckedProgram, name: str | None) -> str:
    if name is not None:
        return name
    handlers = list(program.handlers)
    if len(handlers) == 1:
        return handlers[0]
    if "main" in program.handlers:
        return "main"
    raise UsageError(f"pflow run: name the handler to run (handlers: {', '.join(handlers) or 'none'})")


def parse_inputs(program: CheckedProgram, handler: str, pairs: list[str], blob: str | None) -> dict:
    from ..lang import jsondata
    from ..lang.types import STR, is_assignable

    try:
        h = program.handler(handler)
    except KeyError as exc:
        raise UsageError(f"pflow run: {exc.args[0]}") from None
    inputs: dict = {}
    if blob is not None:
        try:
            data = jsondata.loads(blob)  # bounded: nesting, integer digits, lone surrogates
        except jsondata.NotJSONData as exc:
            raise UsageError(f"pflow run: --input-json: {exc}") from None
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
            except UnicodeDecodeError as exc:
                raise UsageError(f"pflow run: --input {key}: {raw[1:]} is not UTF-8 text "
                                 f"(byte {exc.start}: {exc.reason})") from None
        p = h.signature.param(key)
        if p is not None and is_assignable(STR, p.type):
            inputs[key] = jsondata.fix_text(raw)  # text parameters take the value as written
            continue
        try:
            inputs[key] = jsondata.loads(raw)
        except jsondata.NotJSONData as exc:
            raise UsageError(f"pflow run: input '{key}': {exc}") from None
        except json.JSONDecodeError:
            if p is None:
                inputs[key] = raw
            else:
                raise UsageError(f"pflow run: input '{key}' must be {p.type.show()} written as "
                                 f"JSON, got {raw!r}") from None
    return inputs


def run_config(args: argparse.Namespace, label: str = "pflow run") -> RunConfig:
    from ..runtime import RunConfig
    from ..runtime.cache import CacheMode

    models = parse_models(args.model, label)
    if args.concurrency < 1:
        raise UsageError(f"{label}: --concurrency must be at least 1")
    mode = CacheMode.OFF if args.no_cache else (CacheMode.REFRESH if args.refresh else
                                                CacheMode.DEFAULT)
    cache_dir = getattr(args, "cache_dir", None)
    otel = bool(getattr(args, "otel", False))
    if otel:  # --otel without the extra is a usage error, before anything runs
        from ..telemetry import TelemetryUnavailable, tracer_provider

        try:
            tracer_provider()
        except TelemetryUnavailable as exc:
            raise UsageError(f"{label}: --otel: {exc}") from None
    return RunConfig(models=models, concurrency=args.concurrency, cache=mode,
                     cache_dir=Path(cache_dir).resolve() if cache_dir else None,
                     trace_dir=Path(args.trace_dir) if args.trace_dir else None,
                     write_trace=not args.no_trace, otel=True if otel else None)


class Progress:
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
        Progress.shown = True

    @staticmethod
    def clear() -> None:
        if Progress.shown:
            sys.stderr.write("\r\x1b[2K")
            sys.stderr.flush()
            Progress.shown = False


def show_value(value: object, as_json: bool) -> str:
    if isinstance(value, str) and not as_json:
        return value
    return json.dumps(value, ensure_ascii=False, indent=2)


def cmd_run(args: argparse.Namespace) -> int:
    program = load_and_warn(args)
    if program is None:
        return EXIT_USAGE
    from ..runtime import InputError, RunFailed, run
    from .data import check_run_data_args, cmd_run_data

    check_run_data_args(args)
    handler = pick_handler(program, args.handler)
    if args.data is not None:
        return cmd_run_data(args, program, handler, run_config(args))
    inputs = parse_inputs(program, handler, args.input or [], args.input_json)
    config = run_config(args)
    if not args.quiet and sys.stderr.isatty() and not args.stream:
        config.progress = Progress(handler)
    printed = False
    try:
        if args.stream:
            from .stream import run_streamed

            result, printed = run_streamed(program, handler, inputs, config, quiet=args.quiet)
        else:
            result = run(program, handler, inputs, config)
    except InputError as exc:
        raise UsageError(f"pflow run: {exc}") from None
    except RunFailed as exc:
        Progress.clear()
        print(render([exc.diagnostic()], program.sources, color=color(sys.stderr)), file=sys.stderr)
        if exc.detail:
            print(exc.detail, file=sys.stderr)
        if exc.trace_path is not None:
            print(f"trace: {rel(exc.trace_path)}  (pflow trace show {exc.trace.run_id})",
                  file=sys.stderr)
        return EXIT_FAILED
    Progress.clear()
    if not printed or args.json:
        print(show_value(result.value, args.json))
    if not args.quiet:
        t = result.trace.totals
        where = f" · trace {rel(result.trace_path)}" if result.trace_path else ""
        print(f"ok in {result.trace.wall_ms / 1000:.2f}s · {t.calls} model call"
              f"{'s' if t.calls != 1 else ''} ({t.cache_hits} cached){where}", file=sys.stderr)
    return EXIT_OK


def add_parser(sub: Any) -> None:
    from .data import add_executor_options, add_model_options, add_row_options

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
    add_model_options(r, concurrency="most model and tool calls in flight at once (default 64)",
                      trace_dir="where to write the trace", no_trace="do not write a trace")
    r.add_argument("--json", action="store_true", help="print the result as JSON even if text")
    r.add_argument("--stream", action="store_true",
                   help="print the result's text as the model writes it (when the last step is "
                        "a prompt with a str result) and a line per step on stderr")
    r.add_argument("-q", "--quiet", action="store_true", help="no summary or warning count on "
                                                              "stderr")
    r.add_argument("-v", "--verbose", action="store_true", help="print check warnings (not just "
                                                                "their count)")
    r.add_argument("--allow-path", action="append", default=[], metavar="DIR")
    d = r.add_argument_group("datasets", "run HANDLER once per row of a dataset (columns "
                                         "bind parameters by name) into a results file")
    d.add_argument("--data", metavar="PATH", help="a JSONL or CSV dataset: one call per row")
    d.add_argument("--out", metavar="PATH", help="the results file (JSONL, one line per row)")
    d.add_argument("--resume", action="store_true",
                   help="continue an existing --out: run only the rows it has no line for")
    add_row_options(d)
    add_executor_options(d)
    r.set_defaults(func=cmd_run)
