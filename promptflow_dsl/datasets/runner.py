"""Running a row function over many dataset rows, each recorded exactly once.

* :func:`run_rows` — the engine: at most ``concurrency`` rows in flight, each row's
  outcome appended to a :class:`~promptflow_dsl.datasets.runfolder.ResultsWriter` as
  soon as it finishes (so lines are in the order rows *finish*, not row order),
  keep-going on failures, ``max_errors``, graceful interruption.
* :func:`run_dataset` — a dataset run in a run folder (``pflow eval``): digests, row
  selection, resume, the summary.
* :func:`run_dataset_to_file` — the same into a plain results file (``pflow run
  --data --out PATH``).
* :func:`resume_command` — the command line that resumes an interrupted run.

The engine knows nothing of programs: the caller gives ``run_row(line, row) ->
RowOutcome``, an async function that runs one row (a handler call, then metrics)
and says what to record. Memory does not grow with the number of rows: rows are
pulled from the file as slots free up and nothing of a finished row is kept but
counters (the summary reads the results file back).

**Interruption.** Setting the ``stop`` event, or cancelling the task that awaits
:func:`run_rows` (``asyncio.run`` does that on the first Ctrl-C), stops launching
rows; rows in flight get ``grace`` seconds to finish and be recorded, the rest are
cancelled (they stay pending) and the result says ``interrupted`` — the
cancellation is absorbed, not re-raised. A second cancellation during the grace
period cancels the rows in flight at once. With ``handle_sigint=True``,
:func:`run_dataset` installs a SIGINT handler doing the same: the first Ctrl-C is
graceful, the second immediate.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shlex
import signal
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import DatasetError
from .progress import Progress
from .rows import dataset_digest, dataset_format, iter_row_items, map_columns
from .runfolder import (
    ResultsWriter,
    RunFolder,
    check_resume,
    load_results_table,
    load_run,
    open_output,
    utc_now,
)
from .selection import SelectedRows, Selection, select

__all__ = ["DatasetRun", "DatasetSpec", "RESERVED_FIELDS", "RowOutcome", "RunResult",
           "resume_command", "run_dataset", "run_dataset_to_file", "run_rows"]

MetricValue = bool | int | float | None

RESERVED_FIELDS = frozenset({"row", "status", "metrics", "error", "error_type", "tokens",
                             "cost", "latency"})
"""Keys of a result line the engine writes; a :class:`RowOutcome`'s ``fields`` cannot
use them."""

SUMMARY_FORMAT = "pflow-summary/1"


@dataclass(frozen=True, slots=True)
class RowOutcome:
    """What one row produced: ``status`` (``ok``/``failed``), the caller's ``fields``
    for its result line (inputs, output, trace id, ...), metric values (``None`` = not
    scored), the error text of a failed row (located, as the caller renders it) and
    optionally its kind, the tokens and the cost (USD, ``None`` when unknown).

    Raises ``ValueError`` for another status or a reserved key in ``fields``.
    """

    status: str = "ok"
    fields: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, MetricValue] = field(default_factory=dict)
    error: str | None = None
    tokens: int = 0
    cost: float | None = None
    error_type: str | None = None

    def __post_init__(self) -> None:
        if self.status not in ("ok", "failed"):
            raise ValueError(f"a row's status is 'ok' or 'failed', not {self.status!r}")
        clash = RESERVED_FIELDS.intersection(self.fields)
        if clash:
            raise ValueError(f"result fields cannot be named {', '.join(sorted(clash))} "
                             "(the engine writes them)")

    @classmethod
    def failure(cls, error: str, **kwargs: Any) -> RowOutcome:
        """A failed outcome with ``error``. Raises like the constructor."""
        return cls(status="failed", error=error, **kwargs)


RowItem = tuple[int, "Mapping[str, Any] | DatasetError"]
RowFunction = Callable[[int, Any], Awaitable[RowOutcome]]


@dataclass
class RunResult:
    """How a :func:`run_rows` session ended.

    ``status`` is ``complete`` (no row left), ``interrupted`` (stopped or cancelled)
    or ``stopped`` (``max_errors`` failures); ``ok``/``failed`` count rows recorded in
    this session, ``new_rows`` those of them that had no line before (not retries),
    ``cancelled`` rows in flight cancelled after the grace period (not recorded).
    """

    status: str = "complete"
    ok: int = 0
    failed: int = 0
    new_rows: int = 0
    cancelled: int = 0
    tokens: int = 0
    cost: float | None = None
    elapsed: float = 0.0

    @property
    def recorded(self) -> int:
        """Rows recorded in this session. Never raises."""
        return self.ok + self.failed

    @property
    def interrupted(self) -> bool:
        """Whether the session was interrupted. Never raises."""
        return self.status == "interrupted"


def _describe(exc: BaseException) -> tuple[str, str]:
    text = str(exc)
    if isinstance(exc, KeyError) and len(exc.args) == 1:
        text = f"key {exc.args[0]!r} not found"
    return text or type(exc).__name__, type(exc).__name__


def _bad_metric(metrics: Mapping[str, Any]) -> str | None:
    for name, value in metrics.items():
        if value is None or isinstance(value, bool | int):
            continue
        if isinstance(value, float):
            if math.isfinite(value):
                continue
            return f"metric '{name}' is {value}, not a finite number"
        return f"metric '{name}' is a {type(value).__name__}, not a bool, number or none"
    return None


def _line_fields(outcome: RowOutcome, latency: float) -> tuple[str, dict[str, Any]]:
    status = outcome.status
    fields = dict(outcome.fields)
    error = outcome.error
    problem = _bad_metric(outcome.metrics)
    if problem is not None:
        status, error = "failed", problem
    elif outcome.metrics:
        fields["metrics"] = dict(outcome.metrics)
    if status == "failed" and not error:
        error = "failed"
    if error is not None:
        fields["error"] = error
        if outcome.error_type:
            fields["error_type"] = outcome.error_type
    fields["tokens"] = outcome.tokens
    if outcome.cost is not None:
        fields["cost"] = outcome.cost
    fields["latency"] = round(latency, 4)
    return status, fields


async def _call(run_row: RowFunction, line: int, row: Any) -> RowOutcome:
    try:
        outcome = await run_row(line, row)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        return RowOutcome(status="failed", error="the row was cancelled",
                          error_type="CancelledError")
    except Exception as exc:  # noqa: BLE001 - a row's failure is recorded, the run goes on
        text, kind = _describe(exc)
        return RowOutcome(status="failed", error=text, error_type=kind)
    if not isinstance(outcome, RowOutcome):
        return RowOutcome(status="failed", error=f"the row function returned "
                          f"{type(outcome).__name__}, not a RowOutcome")
    return outcome


def _uncancel() -> None:
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()


async def _tick(progress: Progress, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        progress.refresh()


async def run_rows(rows: Iterable[RowItem], run_row: RowFunction, *, writer: ResultsWriter,
                   concurrency: int = 8, max_errors: int | None = None,
                   progress: Progress | None = None, total: int | None = None,
                   done: int = 0, failed: int = 0, grace: float = 5.0,
                   stop: asyncio.Event | None = None, tick: float = 0.25) -> RunResult:
    """Run ``run_row(line, row)`` for each ``(line, row)`` of ``rows`` with at most
    ``concurrency`` in flight, and append each outcome to ``writer`` as it finishes.

    ``rows`` is iterated lazily, on the event loop's thread; an item whose row is a
    :class:`~promptflow_dsl.datasets.errors.DatasetError` is recorded as failed
    without calling ``run_row``. An exception of ``run_row`` becomes a failed line
    (``error``: its message, ``error_type``: its class). After ``max_errors`` failed
    rows no new row starts; the rows in flight finish. ``progress`` gets ``start(total,
    done, failed)``, one ``advance`` per row, a ``refresh`` every ``tick`` seconds and
    ``finish(status)``. Interruption (``stop`` set, or this task cancelled): see the
    module docstring.

    Raises ``ValueError`` for ``concurrency`` or ``max_errors`` below 1; an exception
    from iterating ``rows`` or from ``writer`` (after the other rows in flight had
    ``grace`` seconds to finish) propagates.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    if max_errors is not None and max_errors < 1:
        raise ValueError(f"max_errors must be >= 1, got {max_errors}")
    it: Iterator[RowItem] = iter(rows)
    result = RunResult()
    stopping = False
    in_flight: set[asyncio.Task[None]] = set()
    started = time.perf_counter()

    def record(line: int, outcome: RowOutcome, latency: float) -> None:
        nonlocal stopping
        status, fields = _line_fields(outcome, latency)
        retry = line in writer.failed
        try:
            writer.append(line, status, fields)
        except (TypeError, ValueError) as exc:
            status = "failed"
            fields = {"error": f"the row's result cannot be recorded as JSON: {exc}",
                      "error_type": type(exc).__name__, "tokens": outcome.tokens,
                      "latency": fields["latency"]}
            if outcome.cost is not None:
                fields["cost"] = outcome.cost
            writer.append(line, status, fields)
        if not retry:
            result.new_rows += 1
        if status == "ok":
            result.ok += 1
        else:
            result.failed += 1
        result.tokens += outcome.tokens
        if outcome.cost is not None:
            result.cost = (result.cost or 0.0) + outcome.cost
        if progress is not None:
            progress.advance(status == "ok", outcome.tokens, outcome.cost)
        if (status == "failed" and max_errors is not None and result.failed >= max_errors
                and not stopping):
            stopping = True
            result.status = "stopped"

    async def worker() -> None:
        me = asyncio.current_task()
        assert me is not None
        streak = 0
        while not stopping and not (stop is not None and stop.is_set()):
            try:
                line, row = next(it)
            except StopIteration:
                return
            t0 = time.perf_counter()
            if isinstance(row, DatasetError):
                outcome = RowOutcome(status="failed", error=str(row),
                                     error_type="DatasetError")
            else:
                in_flight.add(me)
                try:
                    outcome = await _call(run_row, line, row)
                finally:
                    in_flight.discard(me)
            record(line, outcome, time.perf_counter() - t0)
            streak += 1
            if streak >= 16:  # let the loop breathe even when rows never suspend
                streak = 0
                await asyncio.sleep(0)

    if progress is not None:
        progress.start(total if total is not None else 0, done, failed)
    workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
    ticker = asyncio.create_task(_tick(progress, tick)) if progress is not None else None
    stop_task = asyncio.create_task(stop.wait()) if stop is not None else None
    error: BaseException | None = None
    try:
        interrupted = False
        try:
            while True:
                broken = [w for w in workers
                          if w.done() and not w.cancelled() and w.exception() is not None]
                if broken:
                    error = broken[0].exception()
                    break
                active = {w for w in workers if not w.done()}
                if not active:
                    break
                waits: set[asyncio.Future[Any]] = set(active)
                if stop_task is not None:
                    waits.add(stop_task)
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                if stop_task is not None and stop_task.done():
                    interrupted = True
                    break
        except asyncio.CancelledError:
            interrupted = True
            _uncancel()
        stopping = True
        if interrupted:
            result.status = "interrupted"
        active = {w for w in workers if not w.done()}
        if active and grace > 0:
            try:
                await asyncio.wait(active, timeout=grace)
            except asyncio.CancelledError:
                _uncancel()
                result.status = "interrupted"
        for w in workers:
            if not w.done():
                if w in in_flight:
                    result.cancelled += 1
                w.cancel()
        try:
            await asyncio.gather(*workers, return_exceptions=True)
        except asyncio.CancelledError:  # pragma: no cover - a third cancellation
            _uncancel()
        if error is None:
            for w in workers:
                if w.done() and not w.cancelled() and w.exception() is not None:
                    error = w.exception()
                    break
    finally:
        for task in (ticker, stop_task):
            if task is not None:
                task.cancel()
        result.elapsed = time.perf_counter() - started
        if progress is not None:
            progress.finish(result.status if error is None else "failed")
    if error is not None:
        raise error
    return result


# ----------------------------------------------------------------- dataset runs

def resume_command(args: Sequence[str], run: str | None = None, *, prog: str = "pflow") -> str:
    """The shell command that resumes a run: ``prog`` and the original ``args``
    (without the program name) with ``--resume RUN`` (or a bare ``--resume`` for a
    plain results file, ``run=None``) replacing any ``--resume`` they had. Never raises.
    """
    out: list[str] = []
    skip = False
    for i, arg in enumerate(args):
        if skip:
            skip = False
            continue
        if arg.startswith("--resume="):
            continue
        if arg == "--resume":
            nxt = args[i + 1] if i + 1 < len(args) else None
            skip = run is not None and nxt is not None and not nxt.startswith("-")
            continue
        out.append(arg)
    out += ["--resume", run] if run is not None else ["--resume"]
    return shlex.join([prog, *out])


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset run runs over and records.

    ``dataset`` the JSONL/CSV file; ``program_digest`` identifies the program (a
    resume refuses another); ``models`` (name → model id) and ``options`` are stored
    in ``meta.json``; ``args`` is the command line without the program name ``prog``
    (stored, and used for :func:`resume_command`); ``selection`` the rows;
    ``mapping`` the ``--map`` renames (``{param: column}``); ``metrics`` the metric
    names in summary order; ``thresholds`` checked against the summary; ``estimate``
    what the run was estimated to cost before any call (a ``pflow estimate --json``
    object, or ``{"error": ...}``), kept in ``meta.json`` and set next to the actual
    tokens and cost in ``summary.json``.
    """

    dataset: str | os.PathLike[str]
    program_digest: str = ""
    models: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    args: Sequence[str] = ()
    prog: str = "pflow"
    selection: Selection = field(default_factory=Selection)
    mapping: Mapping[str, str] = field(default_factory=dict)
    metrics: Sequence[str] = ()
    thresholds: Sequence[Any] = ()
    estimate: Mapping[str, Any] | None = None


def estimate_summary(estimate: Mapping[str, Any], tokens: int,
                     cost: float | None) -> dict[str, Any]:
    """The ``estimate`` entry of ``summary.json``: the estimated rows, calls, tokens and
    cost range next to the tokens and cost the run actually spent, and whether the
    actual cost fell within the range. Never raises."""
    if "error" in estimate or not isinstance(estimate.get("total"), Mapping):
        return {"error": str(estimate.get("error") or "no estimate")}
    total = estimate["total"]
    data = estimate.get("data") if isinstance(estimate.get("data"), Mapping) else {}
    out: dict[str, Any] = {
        "rows": (data or {}).get("estimated_rows"),
        "calls": total.get("calls"),
        "input_tokens": total.get("input_tokens"),
        "output_tokens": total.get("output_tokens"),
        "cost": total.get("cost"),
        "actual": {"tokens": tokens, "cost": cost},
    }
    low_high = total.get("cost") if isinstance(total.get("cost"), Mapping) else {}
    low, high = (low_high or {}).get("low"), (low_high or {}).get("high")
    if isinstance(low, int | float) and isinstance(high, int | float) and cost is not None:
        out["cost_within"] = low - 1e-12 <= cost <= high + 1e-12
    return out


@dataclass
class DatasetRun:
    """A finished (or interrupted) dataset session.

    ``summary`` is what ``summary.json`` holds (also for a plain results file, where
    it is not written anywhere); ``thresholds`` the checked thresholds;
    ``resume_command`` the command that continues the run when rows are left
    (``None`` when complete); ``changes`` what a forced resume accepted.
    """

    result: RunResult
    summary: dict[str, Any]
    results_path: Path
    folder: RunFolder | None = None
    resumed: bool = False
    resume_command: str | None = None
    changes: list[str] = field(default_factory=list)
    thresholds: list[Any] = field(default_factory=list)

    @property
    def run_id(self) -> str | None:
        """The run folder's id (``None`` for a plain results file). Never raises."""
        return self.folder.run_id if self.folder is not None else None

    @property
    def passed(self) -> bool:
        """No failed threshold. Never raises."""
        return all(t.passed for t in self.thresholds)


def _install_sigint(stop: asyncio.Event) -> Callable[[], None] | None:
    """First SIGINT sets ``stop``; the second cancels the current task."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    presses = 0

    def on_sigint() -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            stop.set()
        elif task is not None:
            task.cancel()

    try:
        previous = signal.getsignal(signal.SIGINT)
        loop.add_signal_handler(signal.SIGINT, on_sigint)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
        return None

    def restore() -> None:
        with contextlib.suppress(Exception):
            loop.remove_signal_handler(signal.SIGINT)
            if previous is not None:
                signal.signal(signal.SIGINT, previous)

    return restore


def _thresholds(spec: DatasetSpec) -> list[Any]:
    from .stats import Threshold, parse_threshold

    return [t if isinstance(t, Threshold) else parse_threshold(str(t)) for t in spec.thresholds]


def _rows(path: str, selected: SelectedRows, want: Callable[[int], bool],
          mapping: Mapping[str, str]) -> Iterator[RowItem]:
    for line, row in iter_row_items(path, want=want):
        if selected.last is not None and line > selected.last:
            return
        if row is None:
            continue
        if not isinstance(row, DatasetError) and mapping:
            try:
                row = map_columns(row, mapping, path=path, line=line)
            except DatasetError as exc:
                row = exc
        yield line, row


async def _session(spec: DatasetSpec, run_row: RowFunction, writer: ResultsWriter,
                   selected: SelectedRows, *, retry_failed: bool, concurrency: int,
                   max_errors: int | None, grace: float, progress: Progress | None,
                   handle_sigint: bool) -> tuple[RunResult, int]:
    """Run the pending rows; return the result and the rows pending before."""
    path = os.fspath(spec.dataset)
    ok, failed = writer.ok, writer.failed
    done_before = failed_before = 0
    if len(ok) or len(failed):
        for line in selected.lines():
            if line in ok:
                done_before += 1
            elif line in failed:
                failed_before += 1
    pending_before = selected.total - done_before - failed_before

    def want(line: int) -> bool:
        return (line in selected and line not in ok
                and (retry_failed or line not in failed))

    stop = asyncio.Event()
    restore = _install_sigint(stop) if handle_sigint else None
    try:
        result = await run_rows(
            _rows(path, selected, want, spec.mapping), run_row, writer=writer,
            concurrency=concurrency, max_errors=max_errors, progress=progress,
            total=selected.total,
            done=done_before + (0 if retry_failed else failed_before),
            failed=0 if retry_failed else failed_before, grace=grace, stop=stop)
    finally:
        if restore is not None:
            restore()
    return result, pending_before


def _summary(spec: DatasetSpec, results_path: Path, *, run_id: str | None, status: str,
             total: int, pending: int, thresholds: list[Any], started_at: str,
             wall_time: float, result: RunResult | None, seed: int, resamples: int,
             error: str | None = None) -> tuple[dict[str, Any], list[Any]]:
    from .stats import ThresholdResult, check_thresholds, summarize_table

    table = load_results_table(results_path)
    metrics = summarize_table(table, spec.metrics, seed=seed, resamples=resamples)
    metrics_json = {name: m.to_json() for name, m in metrics.items()}
    checked = []
    for t in thresholds:
        if t.metric in metrics_json:
            checked.extend(check_thresholds([t], metrics_json))
        else:
            checked.append(ThresholdResult(t, None, False))
    summary: dict[str, Any] = {
        "format": SUMMARY_FORMAT,
        "run_id": run_id,
        "status": status,
        "dataset": os.fspath(spec.dataset),
        "rows": {"total": total, "ok": table.ok, "failed": table.failed, "pending": pending},
        "metrics": metrics_json,
        "thresholds": [c.to_json() for c in checked],
        "passed": all(c.passed for c in checked),
        "tokens": table.tokens,
        "cost": table.cost,
        "wall_time": round(wall_time, 3),
        "started_at": started_at,
        "finished_at": utc_now(),
    }
    if result is not None:
        summary["session"] = {"ok": result.ok, "failed": result.failed,
                              "cancelled": result.cancelled,
                              "elapsed": round(result.elapsed, 3)}
    if table.reruns:
        summary["reruns"] = table.reruns
    if table.usage_unknown:  # tokens and cost leave these calls out: lower bounds
        summary["usage_unknown"] = table.usage_unknown
    if spec.estimate is not None:
        summary["estimate"] = estimate_summary(spec.estimate, table.tokens, table.cost)
    if table.state.unreadable_count:
        summary["unreadable_lines"] = {"count": table.state.unreadable_count,
                                       "first": table.state.unreadable}
    if error is not None:
        summary["error"] = error
    return summary, checked


async def _run_and_summarize(spec: DatasetSpec, run_row: RowFunction, writer: ResultsWriter,
                             selected: SelectedRows, *, folder: RunFolder | None,
                             previous_wall: float, started_at: str, thresholds: list[Any],
                             resume_run: str | None, resumed: bool, changes: list[str],
                             retry_failed: bool, concurrency: int, max_errors: int | None,
                             grace: float, progress: Progress | None, handle_sigint: bool,
                             seed: int, resamples: int) -> DatasetRun:
    run_id = folder.run_id if folder is not None else None
    clock = time.perf_counter()
    try:
        try:
            result, pending_before = await _session(
                spec, run_row, writer, selected, retry_failed=retry_failed,
                concurrency=concurrency, max_errors=max_errors, grace=grace,
                progress=progress, handle_sigint=handle_sigint)
        except BaseException as exc:
            if folder is not None:
                stopped = isinstance(exc, KeyboardInterrupt | asyncio.CancelledError)
                status = "interrupted" if stopped else "error"
                with contextlib.suppress(Exception):
                    summary, _ = _summary(
                        spec, writer.path, run_id=run_id, status=status, total=selected.total,
                        pending=max(selected.total - writer.state.recorded, 0),
                        thresholds=thresholds, started_at=started_at,
                        wall_time=previous_wall + time.perf_counter() - clock, result=None,
                        seed=seed, resamples=resamples, error=str(exc) or type(exc).__name__)
                    folder.write_summary(summary)
            raise
        pending = max(pending_before - result.new_rows, 0)
        summary, checked = _summary(
            spec, writer.path, run_id=run_id, status=result.status, total=selected.total,
            pending=pending, thresholds=thresholds, started_at=started_at,
            wall_time=previous_wall + time.perf_counter() - clock, result=result,
            seed=seed, resamples=resamples)
        if folder is not None:
            folder.write_summary(summary)
    finally:
        writer.close()
    command = None
    if result.status != "complete" or pending:
        command = resume_command(spec.args, resume_run, prog=spec.prog)
    return DatasetRun(result=result, summary=summary, results_path=writer.path, folder=folder,
                      resumed=resumed, resume_command=command, changes=changes,
                      thresholds=checked)


async def run_dataset(spec: DatasetSpec, run_row: RowFunction, *,
                      root: str | os.PathLike[str], resume: str | None = None,
                      retry_failed: bool = False, force: bool = False, concurrency: int = 8,
                      max_errors: int | None = None, grace: float = 5.0,
                      progress: Progress | None = None, handle_sigint: bool = False,
                      durable: bool = False, seed: int = 0,
                      resamples: int = 2000) -> DatasetRun:
    """Run ``spec``'s rows through ``run_row`` into a run folder under ``root`` (a new
    one, or the run ``resume`` names: an id, a unique prefix or ``"last"``), then write
    ``summary.json``.

    A resumed run runs only its selected rows without a line (and its failed rows
    with ``retry_failed``: the new line supersedes the failed one); a changed program
    digest, dataset digest or selection is refused unless ``force``. ``seed`` and
    ``resamples`` drive the bootstrap intervals. A session that ends early (Ctrl-C,
    ``max_errors``) still writes its summary, and the result's ``resume_command``
    continues it.

    Raises :class:`~promptflow_dsl.datasets.errors.DatasetError` (the dataset cannot
    be read, or its CSV header is bad), :class:`~promptflow_dsl.datasets.errors.RunFolderError`
    (no such run, the folder cannot be written, another process is writing the run),
    :class:`~promptflow_dsl.datasets.errors.ResumeError`,
    :class:`~promptflow_dsl.datasets.errors.ThresholdError` (a malformed threshold),
    and ``ValueError`` like :func:`run_rows`; an error while rows run propagates after
    the summary was written with status ``error``.
    """
    path = os.fspath(spec.dataset)
    thresholds = _thresholds(spec)
    dataset_format(path)
    digest = dataset_digest(path)
    selected = select(path, spec.selection)
    started_at = utc_now()
    changes: list[str] = []
    previous_wall = 0.0
    if resume is not None:
        folder = load_run(root, resume)
        meta = folder.read_meta()
        changes = check_resume(meta, program_digest=spec.program_digest,
                               dataset_digest=digest, selection=spec.selection, force=force)
        writer = folder.open_writer(durable=durable)
        try:
            previous = folder.read_summary() or {}
            previous_wall = float(previous.get("wall_time") or 0.0)
            sessions = meta.setdefault("sessions", [])
            sessions.append({"started_at": started_at, "args": list(spec.args),
                             "retry_failed": retry_failed, "forced_changes": changes})
            if changes:
                meta.update(program_digest=spec.program_digest,
                            dataset={"path": path, "digest": digest},
                            selection=spec.selection.to_json())
                if "estimate" in meta:
                    meta["estimate"] = {"error": "made before the run was resumed with "
                                        "--force: " + "; ".join(changes)}
            folder.write_meta(meta)
        except BaseException:
            writer.close()
            raise
        started_at = str(meta.get("started_at") or started_at)
        if spec.estimate is None and isinstance(meta.get("estimate"), dict):
            spec = replace(spec, estimate=meta["estimate"])
    else:
        meta = {
            "program_digest": spec.program_digest,
            "dataset": {"path": path, "digest": digest},
            "models": dict(spec.models),
            "selection": spec.selection.to_json(),
            "options": dict(spec.options),
            "started_at": started_at,
            "args": list(spec.args),
            "command": shlex.join([spec.prog, *spec.args]),
            "sessions": [],
        }
        if spec.estimate is not None:
            meta["estimate"] = dict(spec.estimate)
        folder = RunFolder.create(root, meta)
        writer = folder.open_writer(durable=durable)
    return await _run_and_summarize(
        spec, run_row, writer, selected, folder=folder, previous_wall=previous_wall,
        started_at=started_at, thresholds=thresholds, resume_run=folder.run_id,
        resumed=resume is not None, changes=changes, retry_failed=retry_failed,
        concurrency=concurrency, max_errors=max_errors, grace=grace, progress=progress,
        handle_sigint=handle_sigint, seed=seed, resamples=resamples)


async def run_dataset_to_file(spec: DatasetSpec, run_row: RowFunction, *,
                              out: str | os.PathLike[str], resume: bool = False,
                              retry_failed: bool = False, force: bool = False,
                              concurrency: int = 8, max_errors: int | None = None,
                              grace: float = 5.0, progress: Progress | None = None,
                              handle_sigint: bool = False, durable: bool = False,
                              seed: int = 0, resamples: int = 2000) -> DatasetRun:
    """Like :func:`run_dataset` into the plain results file ``out`` (``pflow run
    --data --out PATH``): no meta and no digest check; the summary is returned, not
    written. ``resume`` continues an existing file, ``force`` overwrites it.

    Raises :class:`~promptflow_dsl.datasets.errors.RunFolderError` when ``out`` exists
    and neither ``resume`` nor ``force`` is given, and like :func:`run_dataset`.
    """
    path = os.fspath(spec.dataset)
    thresholds = _thresholds(spec)
    dataset_format(path)
    selected = select(path, spec.selection)
    writer = open_output(out, resume=resume, force=force, durable=durable)
    return await _run_and_summarize(
        spec, run_row, writer, selected, folder=None, previous_wall=0.0,
        started_at=utc_now(), thresholds=thresholds, resume_run=None, resumed=resume,
        changes=[], retry_failed=retry_failed, concurrency=concurrency,
        max_errors=max_errors, grace=grace, progress=progress,
        handle_sigint=handle_sigint, seed=seed, resamples=resamples)
