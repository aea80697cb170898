"""Programs over datasets: the bridge between a checked program and the dataset engine.

The engine (the other modules of this package) knows nothing of programs; this
module gives it row functions that run a program, on one shared
:class:`~promptflow_dsl.runtime.rows.RowRunner`:

* :func:`run_handler_dataset` — a handler once per row into a plain results file
  (``pflow run FILE HANDLER --data PATH --out PATH``);
* :func:`run_eval` — an ``eval`` declaration into a run folder (``pflow eval``);
* :func:`check_handler_columns` — the checks made before any call (``--map``
  parameters and columns, a parameter no column binds);
* :func:`program_digest` — the digest of a checked program's sources that a run folder
  records and a resume compares.

Each row's result line holds ``inputs``, ``output`` (for an eval, the value of its
``run``), ``usage`` (prompt and completion tokens, model calls, cache hits),
``trace_id`` and, for an eval, ``metrics`` and ``metric_errors``; the engine adds
``row``, ``status``, ``error``, ``tokens``, ``cost`` and ``latency``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import DatasetError, RunFolderError
from .progress import Progress
from .rows import dataset_format, iter_row_items, map_columns
from .runner import (
    DatasetRun,
    DatasetSpec,
    RowFunction,
    RowOutcome,
    run_dataset,
    run_dataset_to_file,
)
from .selection import Selection

if TYPE_CHECKING:  # pragma: no cover
    from ..check.program import CheckedProgram, EvalInfo
    from ..runtime.context import RunConfig
    from ..runtime.rows import RowCall, RowRunner

__all__ = ["DataOptions", "check_handler_columns", "eval_root", "eval_row_function",
           "handler_row_function", "model_ids", "program_digest", "program_path", "row_source",
           "run_eval", "run_handler_dataset"]


def program_digest(program: CheckedProgram) -> str:
    """``sha256:<hex>`` of the checked program's sources (every module it loaded, by
    path relative to the project root, with its text). Never raises."""
    h = hashlib.sha256()
    root = program.root
    for uri in sorted(program.sources):
        name = uri
        if root is not None:
            try:
                name = Path(uri).resolve().relative_to(root.resolve()).as_posix()
            except (ValueError, OSError):
                name = uri
        h.update(name.encode("utf-8", "surrogatepass") + b"\0")
        h.update(program.sources[uri].encode("utf-8", "surrogatepass") + b"\0")
    return "sha256:" + h.hexdigest()


def model_ids(program: CheckedProgram, overrides: Mapping[str, str] | None = None
              ) -> dict[str, str]:
    """Model name → id for the entry module's models (its own and ``alias.name`` of
    those it imports), with the ``--model`` overrides applied; ``default`` is always
    there. Never raises."""
    from ..models.registry import LOCAL_ID
    from ..runtime.context import declared_models

    overrides = dict(overrides or {})
    declared = declared_models(program).get(program.entry.key, {})
    out = {name: info.model_id for name, info in sorted(declared.items())}
    out.setdefault("default", LOCAL_ID)
    for name in out:
        bare = name.rpartition(".")[2]
        if name in overrides:
            out[name] = overrides[name]
        elif bare in overrides:
            out[name] = overrides[bare]
    return out


def eval_root(program: CheckedProgram) -> Path:
    """Where a program's eval runs go: ``.pflow-cache/evals`` in its project root.
    Never raises."""
    return (program.root or Path.cwd()) / ".pflow-cache" / "evals"


@dataclass
class DataOptions:
    """How to run a dataset: ``selection`` (``--limit`` / ``--sample`` ``--seed``),
    ``mapping`` (``--map``), ``concurrency`` (rows in flight, and the global limit of
    model and tool calls), ``max_errors``, resume / ``retry_failed`` / ``force``,
    ``progress``, ``args`` (the command line after ``pflow``, for the resume command),
    ``handle_sigint`` (a first Ctrl-C stops gracefully), ``grace`` (seconds in-flight
    rows get to finish when stopped), ``executor`` (``None``: the rows run in this
    process; else an object whose ``rows(program, config, kind=, name=, dataset=,
    concurrency=)`` is an async context manager yielding the row function, such as
    :class:`~promptflow_dsl.distributed.RayExecutor`)."""

    selection: Selection = field(default_factory=Selection)
    mapping: Mapping[str, str] = field(default_factory=dict)
    concurrency: int = 8
    max_errors: int | None = None
    resume: Any = None  # a run for run_eval; a bool for run_handler_dataset
    retry_failed: bool = False
    force: bool = False
    progress: Progress | None = None
    args: Sequence[str] = ()
    handle_sigint: bool = False
    grace: float = 5.0
    durable: bool = False
    executor: Any = None


@contextlib.asynccontextmanager
async def row_source(program: CheckedProgram, config: RunConfig | None,
                      options: DataOptions, *, kind: str, name: str,
                      dataset: str | os.PathLike[str],
                      runner: RowRunner | None = None) -> AsyncIterator[RowFunction]:
    """The row function of a dataset run (``kind`` ``"handler"`` or ``"eval"``, and its
    ``name``): on a :class:`RowRunner` in this process (``runner``, left open, or one
    made from ``config``), or on ``options.executor``'s workers.

    Raises ``KeyError`` for an unknown eval, and what the executor raises when its
    workers cannot start."""
    if options.executor is not None:
        async with options.executor.rows(program, config, kind=kind, name=name,
                                         dataset=dataset,
                                         concurrency=options.concurrency) as run_row:
            yield run_row
        return
    from ..runtime.rows import RowRunner

    rr = runner if runner is not None else RowRunner(program, config)
    try:
        if kind == "eval":
            yield eval_row_function(rr, program.eval(name))
        else:
            yield handler_row_function(rr, name, dataset)
    finally:
        if runner is None:
            await rr.aclose()


# ------------------------------------------------------------------ handler rows

def _first_row(path: str) -> tuple[int, dict[str, Any]] | None:
    for line, row in iter_row_items(path):
        if isinstance(row, dict):
            return line, row
    return None


def check_handler_columns(program: CheckedProgram, handler: str,
                          dataset: str | os.PathLike[str],
                          mapping: Mapping[str, str] | None = None) -> None:
    """The checks of ``pflow run --data`` before any call: every ``--map`` parameter is
    a parameter of ``handler``, every ``--map`` column and every required parameter
    without one is a column of the dataset (its CSV header, or the first row of a JSONL
    file; a dataset without a readable row is not checked).

    Raises :class:`DatasetError` located at the dataset (and the row) or ``KeyError``
    for an unknown handler; and like :func:`~promptflow_dsl.datasets.rows.iter_row_items`
    for a file that cannot be read.
    """
    from ..runtime.rows import missing_parameters

    h = program.handler(handler)
    path = os.fspath(dataset)
    mapping = dict(mapping or {})
    params = [p.name for p in h.signature.params]
    for param, column in mapping.items():
        if param not in params:
            raise DatasetError(f"--map {param}={column}: {handler} has no parameter "
                               f"'{param}' (parameters: {', '.join(params) or 'none'})")
    first = _first_row(path)
    if first is None:
        return
    line, row = first
    if dataset_format(path) == "csv":  # the columns are the header's
        line = 1
    row = map_columns(row, mapping, path=path, line=line)
    missing = missing_parameters(h, row)
    if missing:
        names = ", ".join(f"'{m}'" for m in missing)
        hint = " (add the column, or --map PARAM=COLUMN)"
        raise DatasetError(f"no column for parameter {names} of {h.signature.show(handler)}; "
                           f"columns: {', '.join(row) or 'none'}{hint}", path=path, line=line)


def _outcome(call: RowCall, fields: dict[str, Any], line: int, path: str) -> RowOutcome:
    fields.update(usage=call.usage(), trace_id=call.trace_id or None)
    if call.ok:
        return RowOutcome(fields=fields, tokens=call.tokens, cost=call.cost)
    assert call.error is not None
    text = call.error_text or "failed"
    if call.error.span is None:  # a row that did not bind: located at the row
        text = f"{path}:{line}: {text}"
    return RowOutcome(status="failed", fields=fields, error=text, tokens=call.tokens,
                      cost=call.cost, error_type=type(call.error).__name__)


def handler_row_function(runner: RowRunner, handler: str,
                         dataset: str | os.PathLike[str]) -> RowFunction:
    """``run_row(line, row)`` calling ``handler`` with the row's columns on ``runner``."""
    path = os.fspath(dataset)
    csv = dataset_format(path) == "csv"

    async def run_row(line: int, row: dict[str, Any]) -> RowOutcome:
        call = await runner.call(handler, row, text_cells=csv)
        fields = {"inputs": call.inputs, "output": call.value}
        return _outcome(call, fields, line, path)

    return run_row


async def run_handler_dataset(program: CheckedProgram, handler: str,
                              dataset: str | os.PathLike[str], out: str | os.PathLike[str],
                              *, config: RunConfig | None = None,
                              options: DataOptions | None = None,
                              runner: RowRunner | None = None) -> DatasetRun:
    """Run ``handler`` once per selected row of ``dataset`` into the results file ``out``.

    ``options.resume`` (true) continues an existing ``out``, ``options.force``
    overwrites it. Rows run on one :class:`RowRunner` made from ``config`` (or the
    ``runner`` given, which is left open).

    Raises :class:`DatasetError` (the checks of :func:`check_handler_columns`, a file
    that cannot be read), :class:`~promptflow_dsl.datasets.errors.RunFolderError`
    (``out`` exists without resume or force), ``KeyError`` for an unknown handler.
    """
    options = options or DataOptions()
    check_handler_columns(program, handler, dataset, options.mapping)
    spec = DatasetSpec(dataset, program_digest=program_digest(program),
                       args=list(options.args), selection=options.selection,
                       mapping=dict(options.mapping))
    if (options.executor is not None and Path(out).exists() and not options.resume
            and not options.force):  # refuse before any worker starts
        raise RunFolderError(f"{out} exists; --resume continues it, --force overwrites it")
    async with row_source(program, config, options, kind="handler", name=handler,
                          dataset=dataset, runner=runner) as run_row:
        return await run_dataset_to_file(
            spec, run_row, out=out,
            resume=bool(options.resume), retry_failed=options.retry_failed,
            force=options.force, concurrency=options.concurrency,
            max_errors=options.max_errors, grace=options.grace, progress=options.progress,
            handle_sigint=options.handle_sigint, durable=options.durable)


# ------------------------------------------------------------------ eval rows

def eval_row_function(runner: RowRunner, info: EvalInfo) -> RowFunction:
    """``run_row(line, row)`` running one row of the eval ``info`` on ``runner``: the
    row's ``run``, then its metrics. A row whose ``run`` fails (or that does not fit
    the row type) is failed; a metric that fails is not scored and its error goes to
    the line's ``metric_errors``, the row stays ok."""
    path = os.fspath(info.data)

    async def run_row(line: int, row: dict[str, Any]) -> RowOutcome:
        call, got = await runner.evaluate(info, row)
        fields: dict[str, Any] = {"inputs": row, "output": call.value}
        outcome = _outcome(call, fields, line, path)
        if got is None:
            return outcome
        if got.metric_errors:
            fields["metric_errors"] = got.metric_errors
        return RowOutcome(fields=fields, metrics=got.metrics, tokens=call.tokens,
                          cost=call.cost)

    return run_row


async def run_eval(program: CheckedProgram, name: str, *, config: RunConfig | None = None,
                   options: DataOptions | None = None, root: str | os.PathLike[str] | None = None,
                   seed: int = 0, extra_options: Mapping[str, Any] | None = None,
                   estimate: bool = True) -> DatasetRun:
    """Run the eval ``name`` of ``program`` into a run folder under ``root`` (default:
    :func:`eval_root`), a new one or the one ``options.resume`` names (an id, a unique
    prefix, ``last``). The run folder's meta records the program digest, the dataset and
    its digest, the model ids, the options (the eval's name, the program's path relative
    to the project root, concurrency, ``--max-errors``, ``--map``, model overrides, the
    cache mode, and ``extra_options``) and the command line; the summary its metrics
    (mean, scored rows, 95% bootstrap interval), thresholds, rows, tokens, cost and wall
    time. ``seed`` drives the bootstrap. A new run (not a resume) with ``estimate``
    first estimates its rows' calls, tokens and cost (``pflow estimate``) and the
    summary sets the estimate next to what the run spent; an estimate that cannot be
    made is recorded as its error and does not stop the run.

    Raises ``KeyError`` for an unknown eval, and like
    :func:`~promptflow_dsl.datasets.runner.run_dataset` (a changed program or dataset
    on resume is a :class:`~promptflow_dsl.datasets.errors.ResumeError` unless
    ``options.force``).
    """
    options = options or DataOptions()
    info = program.eval(name)
    overrides = config.models if config is not None else {}
    made = (_estimate(program, name, overrides, options.selection)
            if estimate and options.resume is None else None)
    async with row_source(program, config, options, kind="eval", name=name,
                          dataset=info.data) as run_row:
        record = {**_options_record(program, name, config, options), **(extra_options or {})}
        stats = getattr(options.executor, "stats", None)
        if stats is not None:
            record["executor"] = stats.to_json()
        spec = DatasetSpec(
            info.data, program_digest=program_digest(program),
            models=model_ids(program, overrides), options=record, args=list(options.args),
            selection=options.selection, mapping=dict(options.mapping),
            metrics=[m.name for m in info.metrics],
            thresholds=[t.text for t in info.thresholds], estimate=made)
        return await run_dataset(
            spec, run_row, root=root or eval_root(program),
            resume=options.resume, retry_failed=options.retry_failed, force=options.force,
            concurrency=options.concurrency, max_errors=options.max_errors,
            grace=options.grace, progress=options.progress,
            handle_sigint=options.handle_sigint, durable=options.durable, seed=seed)


def _estimate(program: CheckedProgram, name: str, overrides: Mapping[str, str],
              selection: Selection) -> dict[str, Any]:
    """The eval's estimate for the rows ``selection`` covers, or ``{"error": ...}``.
    Never raises."""
    from ..estimate import estimate_eval

    try:
        return estimate_eval(program, name, models=dict(overrides), limit=selection.limit,
                             sample=selection.sample, seed=selection.seed)
    except Exception as exc:  # an estimate never stops the run it describes
        return {"error": str(exc) or type(exc).__name__}


def program_path(program: CheckedProgram) -> str:
    """The entry file's path relative to the project root (POSIX), else as loaded.
    Never raises."""
    uri = program.entry.uri
    if program.root is not None:
        try:
            return Path(uri).resolve().relative_to(program.root.resolve()).as_posix()
        except (ValueError, OSError):
            pass
    return uri


def _options_record(program: CheckedProgram, name: str, config: RunConfig | None,
                    options: DataOptions) -> dict[str, Any]:
    record: dict[str, Any] = {"eval": name, "program": program_path(program),
                              "concurrency": options.concurrency,
                              "max_errors": options.max_errors,
                              "mapping": dict(options.mapping)}
    if config is not None:
        record["models"] = dict(config.models)
        record["cache"] = str(config.cache)
    return record
