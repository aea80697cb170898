"""What ``pflow run --data`` and ``pflow eval`` share: the dataset options (rows,
``--map``, errors, resume), their checks, the progress display, and ``pflow run FILE
HANDLER --data PATH --out PATH`` itself."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from .common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError, rel

if TYPE_CHECKING:  # pragma: no cover
    from ..datasets import DatasetRun
    from ..datasets.programs import DataOptions
    from ..program import Program
    from ..runtime import RunConfig

EXIT_INTERRUPTED = 130
FAILURES_SHOWN = 3


def add_model_options(p: Any, *, concurrency: str, trace_dir: str, no_trace: str) -> None:
    """``--model``, ``--concurrency``, ``--no-cache``, ``--refresh``, ``--trace-dir``,
    ``--no-trace``, ``--cache-dir`` and ``--otel``, as ``pflow run`` and ``pflow eval``
    take them."""
    p.add_argument("-m", "--model", action="append", metavar="ID|NAME=ID",
                   help="use model ID for `default` (ID) or for model NAME (NAME=ID)")
    p.add_argument("--concurrency", type=int, default=64, metavar="N", help=concurrency)
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    p.add_argument("--refresh", action="store_true", help="call the models again and overwrite "
                                                          "the cached replies")
    p.add_argument("--trace-dir", metavar="DIR", help=trace_dir)
    p.add_argument("--no-trace", action="store_true", help=no_trace)
    p.add_argument("--cache-dir", metavar="DIR",
                   help="the response cache folder (default: .pflow-cache/responses in the "
                        "project, or PFLOW_CACHE_DIR)")
    p.add_argument("--otel", action="store_true",
                   help="export OpenTelemetry spans of the run (OTLP over HTTP to "
                        "OTEL_EXPORTER_OTLP_ENDPOINT, default http://localhost:4318; needs "
                        "promptflow-dsl[otel]); on without this flag when that variable is set")


def add_executor_options(p: Any) -> None:
    """``--executor``, ``--address``, ``--workers``, ``--worker-cpus`` and ``--worker-env``,
    as ``pflow run --data`` and ``pflow eval`` take them."""
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="where the rows run: in this process (local, the default) or on Ray "
                        "workers (ray; needs promptflow-dsl[ray])")
    p.add_argument("--address", metavar="ADDR",
                   help="with --executor ray: join this Ray cluster (auto, HOST:PORT or "
                        "ray://HOST:PORT) instead of starting a local one for the run")
    p.add_argument("--workers", type=int, metavar="N",
                   help="with --executor ray: worker processes (default: one per CPU of the "
                        "cluster); --concurrency is split evenly among them")
    p.add_argument("--worker-cpus", type=float, default=1.0, metavar="F",
                   help="with --executor ray: CPUs each worker reserves (default 1; 0.25 "
                        "puts four workers on a CPU, for slow remote models)")
    p.add_argument("--worker-env", action="append", default=[], metavar="NAME",
                   help="with --executor ray: pass the environment variable NAME to the "
                        "workers (repeatable; every api_key_env of the program's models "
                        "is passed already)")


def executor_of(args: argparse.Namespace, label: str) -> Any:
    """The executor the command line asks for: ``None`` (local) or a
    :class:`~promptflow_dsl.distributed.RayExecutor`. Raises :class:`UsageError` for
    Ray options without ``--executor ray``, bad values, or Ray not installed."""
    if getattr(args, "executor", "local") != "ray":
        given = [opt for opt, value in (("--address", args.address),
                                        ("--workers", args.workers),
                                        ("--worker-env", args.worker_env or None))
                 if value is not None]
        if args.worker_cpus != 1.0:
            given.append("--worker-cpus")
        if given:
            raise UsageError(f"{label}: {', '.join(given)} go with --executor ray")
        return None
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"{label}: --workers must be at least 1")
    if not args.worker_cpus > 0:
        raise UsageError(f"{label}: --worker-cpus must be more than 0")
    from ..distributed import RayExecutor, RayOptions, RayUnavailableError, import_ray

    try:
        import_ray()
    except RayUnavailableError as exc:
        raise UsageError(f"{label}: {exc}") from None
    return RayExecutor(RayOptions(address=args.address, workers=args.workers,
                                  cpus_per_worker=args.worker_cpus,
                                  env=tuple(args.worker_env)))


def executor_line(executor: Any) -> str | None:
    """``ray: 2 workers (8 rows in flight each) on 1 host, 3 rows re-run`` after a run
    on Ray; ``None`` for a local run. Never raises."""
    stats = getattr(executor, "stats", None)
    if stats is None or not stats.workers:
        return None
    hosts = len(set(stats.hosts))
    line = (f"ray: {count(stats.workers, 'worker')} ({stats.per_worker} rows in flight "
            f"each) on {count(hosts, 'host')}")
    if stats.reruns:
        line += f", {count(stats.reruns, 'row')} re-run after a worker was lost"
    return line


def add_row_options(p: Any, *, mapping: bool = True,
                    force: str = "overwrite an existing --out") -> None:
    """The options on the rows of a dataset run, for ``pflow run`` and ``pflow eval``
    (whose ``data ... as TYPE`` names the columns itself: no ``--map``)."""
    if mapping:
        p.add_argument("--map", action="append", default=[], metavar="PARAM=COLUMN",
                       help="bind PARAM from COLUMN instead of the column of its own name "
                            "(repeatable)")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N rows")
    p.add_argument("--sample", type=int, metavar="N",
                   help="N rows drawn at random (reservoir sampling; see --seed)")
    p.add_argument("--seed", type=int, default=0, metavar="S",
                   help="the seed of --sample (default 0): the same seed, the same rows")
    p.add_argument("--max-errors", type=int, metavar="N",
                   help="start no new row after N rows failed")
    p.add_argument("--retry-failed", action="store_true",
                   help="with --resume: run the failed rows again too")
    p.add_argument("--force", action="store_true", help=force)


def data_options(args: argparse.Namespace, label: str, *, resume: Any,
                 concurrency: int) -> DataOptions:
    """The :class:`DataOptions` of the command line. Raises :class:`UsageError`."""
    from ..datasets import Selection, make_progress
    from ..datasets.programs import DataOptions
    from ..datasets.rows import parse_mapping

    for name in ("limit", "sample"):
        value = getattr(args, name)
        if value is not None and value < 0:
            raise UsageError(f"{label}: --{name} must be at least 0")
    if args.limit is not None and args.sample is not None:
        raise UsageError(f"{label}: --limit and --sample cannot be used together")
    if args.max_errors is not None and args.max_errors < 1:
        raise UsageError(f"{label}: --max-errors must be at least 1")
    if args.retry_failed and not resume:
        raise UsageError(f"{label}: --retry-failed goes with --resume")
    try:
        mapping = parse_mapping(getattr(args, "map", None) or [])
    except ValueError as exc:
        raise UsageError(f"{label}: {exc}") from None
    progress = None if args.quiet else make_progress(sys.stderr, prefix="pflow")
    executor = executor_of(args, label)
    return DataOptions(selection=Selection(limit=args.limit, sample=args.sample, seed=args.seed),
                       mapping=mapping, concurrency=concurrency, max_errors=args.max_errors,
                       resume=resume, retry_failed=args.retry_failed, force=args.force,
                       progress=progress, args=list(getattr(args, "argv", None) or []),
                       handle_sigint=True, executor=executor)


def count(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def money(cost: float | None) -> str:
    if cost is None:
        return "cost unknown"
    return f"${cost:.4f}" if cost < 1 else f"${cost:,.2f}"


def rows_line(summary: dict[str, Any]) -> str:
    """``12 rows: 11 ok, 1 failed · 3.21 s · 1,234 tokens · $0.0012``."""
    rows = summary.get("rows") or {}
    parts = [f"{count(rows.get('total', 0), 'row')}: {rows.get('ok', 0):,} ok, "
             f"{rows.get('failed', 0):,} failed"]
    if rows.get("pending"):
        parts[0] += f", {rows['pending']:,} not run"
    parts.append(f"{summary.get('wall_time', 0.0):.2f} s")
    tokens = count(int(summary.get("tokens") or 0), "token")
    unknown = summary.get("usage_unknown")
    if isinstance(unknown, int) and unknown > 0:  # not counted: the numbers are lower bounds
        tokens = f"at least {tokens} (usage unknown for {count(unknown, 'call')})"
    parts.append(tokens)
    parts.append(money(summary.get("cost")))
    return " · ".join(parts)


def _span(value: Any, low: str, high: str, word: str) -> str | None:
    if not isinstance(value, dict):
        return None
    a, b = value.get(low), value.get(high)
    if not isinstance(a, int) or not isinstance(b, int):
        return None
    return count(a, word) if a == b else f"{a:,}–{count(b, word)}"


def estimate_line(summary: dict[str, Any]) -> str | None:
    """``estimated: 24–48 calls · 1,482–5,672 input tokens · $0.0010–$0.0040 (cost
    within the range)``, or the reason there is no estimate; ``None`` for a summary
    without one. Never raises."""
    est = summary.get("estimate")
    if not isinstance(est, dict):
        return None
    if "error" in est:
        return f"estimated: no estimate ({est['error']})"
    parts = [p for p in (_span(est.get("calls"), "min", "max", "call"),
                         _span(est.get("input_tokens"), "min", "max", "input token"))
             if p is not None]
    cost = est.get("cost")
    if isinstance(cost, dict):
        low, high = cost.get("low"), cost.get("high")
        if isinstance(low, int | float) and isinstance(high, int | float):
            parts.append(money(low) if low == high else f"{money(low)}–{money(high)}")
    line = "estimated: " + " · ".join(parts or ["nothing"])
    if "cost_within" in est:
        line += (" (cost within the range)" if est["cost_within"]
                 else " (cost OUTSIDE the range)")
    return line


class FailureNotes:
    """Wraps a row function to keep the errors of the first few failed rows."""

    def __init__(self, run_row: Any) -> None:
        self.run_row = run_row
        self.failures: list[tuple[int, str]] = []

    async def __call__(self, line: int, row: Any) -> Any:
        outcome = await self.run_row(line, row)
        if outcome.status == "failed" and len(self.failures) < FAILURES_SHOWN:
            self.failures.append((line, str(outcome.error or "failed")))
        return outcome

    def show(self, label: str) -> None:
        for line, text in self.failures:
            first, _, rest = text.partition("\n")
            print(f"{label}: row {line} failed: {first}", file=sys.stderr)


def finish_status(run: DatasetRun) -> str:
    """``interrupted``, ``stopped`` (``--max-errors``) or ``complete``."""
    return str(run.result.status)


def print_resume(run: DatasetRun) -> None:
    if run.resume_command:
        print(f"resume with: {run.resume_command}", file=sys.stderr)


# ------------------------------------------------------------------ pflow run --data

def check_run_data_args(args: argparse.Namespace) -> None:
    """The command-line checks of ``pflow run --data``. Raises :class:`UsageError`."""
    label = "pflow run"
    if args.data is None:
        for name in ("out", "limit", "sample", "max_errors"):
            if getattr(args, name) is not None:
                raise UsageError(f"{label}: --{name.replace('_', '-')} goes with --data")
        if args.map or args.resume or args.retry_failed or args.force:
            raise UsageError(f"{label}: --map, --resume, --retry-failed and --force go "
                             "with --data")
        if args.executor != "local":
            raise UsageError(f"{label}: --executor goes with --data")
        executor_of(args, label)  # Ray's other options go with --executor ray
        return
    if args.out is None:
        raise UsageError(f"{label}: --data needs --out PATH (where each row's result goes)")
    if args.input or args.input_json is not None:
        raise UsageError(f"{label}: with --data the inputs come from the rows; drop "
                         "--input/--input-json")
    if args.resume and args.force:
        raise UsageError(f"{label}: --resume continues --out and --force overwrites it; "
                         "give one")


def cmd_run_data(args: argparse.Namespace, program: Program, handler: str,
                 config: RunConfig) -> int:
    """``pflow run FILE HANDLER --data PATH --out PATH``: one call per row."""
    import asyncio
    from pathlib import Path

    from ..datasets import DatasetError, RunFolderError
    from ..datasets.programs import check_handler_columns, row_source
    from ..distributed import ClusterError

    label = "pflow run"
    try:
        program.handler(handler)
    except KeyError as exc:
        raise UsageError(f"{label}: {exc.args[0]}") from None
    options: DataOptions = data_options(args, label, resume=args.resume,
                                        concurrency=config.concurrency)
    data = Path(args.data)
    if not data.exists():
        raise UsageError(f"{label}: no such dataset: {args.data}")
    try:
        check_handler_columns(program, handler, data, options.mapping)
    except DatasetError as exc:
        raise UsageError(f"{label}: {exc}") from None
    except KeyError as exc:
        raise UsageError(f"{label}: {exc.args[0]}") from None
    config.progress = None
    if Path(args.out).exists() and not options.resume and not options.force:
        raise UsageError(f"{label}: {args.out} exists; --resume continues it, --force "
                         "overwrites it")

    async def go() -> DatasetRun:
        from ..datasets import DatasetSpec, run_dataset_to_file
        from ..datasets.programs import program_digest

        spec = DatasetSpec(data, program_digest=program_digest(program), args=options.args,
                           selection=options.selection, mapping=dict(options.mapping))
        async with row_source(program, config, options, kind="handler", name=handler,
                              dataset=data) as run_row:
            notes.run_row = run_row
            return await run_dataset_to_file(
                spec, notes, out=args.out, resume=bool(options.resume),
                retry_failed=options.retry_failed, force=options.force,
                concurrency=options.concurrency, max_errors=options.max_errors,
                grace=options.grace, progress=options.progress,
                handle_sigint=options.handle_sigint)

    notes = FailureNotes(None)
    try:
        run = asyncio.run(go())
    except (DatasetError, RunFolderError, ClusterError) as exc:
        raise UsageError(f"{label}: {exc}") from None
    notes.show(label)
    ran_on = executor_line(options.executor)
    if ran_on is not None and not args.quiet:
        print(ran_on, file=sys.stderr)
    if not args.quiet:
        print(f"{rows_line(run.summary)} · results {rel(Path(args.out))}", file=sys.stderr)
    status = finish_status(run)
    if status == "interrupted":
        print_resume(run)
        print("pflow: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    if status == "stopped":
        print(f"{label}: stopped after {count(run.result.failed, 'failed row')} "
              f"(--max-errors {args.max_errors})", file=sys.stderr)
        print_resume(run)
        return EXIT_FAILED
    return EXIT_FAILED if run.summary.get("rows", {}).get("failed") else EXIT_OK


__all__ = ["EXIT_INTERRUPTED", "EXIT_USAGE", "add_executor_options", "add_row_options",
           "check_run_data_args", "cmd_run_data", "data_options", "executor_line",
           "executor_of"]
