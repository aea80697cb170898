"""The worker side of a distributed dataset run: one long-lived process that checks
the program once and runs many rows of it.

:class:`RowWorker` is a plain class; the driver turns it into a Ray actor
(``ray.remote(RowWorker)``) so that this module never imports Ray. Its ``run``
method is a coroutine, which makes the actor an *async actor*: up to its
``max_concurrency`` rows run at once on the worker's event loop, on one
:class:`~promptflow_dsl.runtime.rows.RowRunner` (one model registry, one response
cache, one limit of calls in flight — the worker's share of the run's
``--concurrency``).
"""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .spec import WorkerSpec

if TYPE_CHECKING:  # pragma: no cover
    from ..datasets import RowFunction, RowOutcome
    from ..runtime.rows import RowRunner


class WorkerSetupError(Exception):
    """A worker could not get ready: the program does not check on its machine, or it
    is not the program the driver checked."""


def load_worker_program(spec: WorkerSpec, cwd: Path | None = None) -> Any:
    """The checked program ``spec`` names, as this machine has it.

    Raises :class:`WorkerSetupError` when the entry file is missing, the program does
    not check, or its digest differs from the driver's.
    """
    from ..check import check_file
    from ..datasets.programs import program_digest
    from ..diagnostics import CompileError

    path = spec.entry_file(cwd or Path.cwd())
    if not path.is_file():
        raise WorkerSetupError(f"{spec.program} is not on worker {socket.gethostname()} "
                               f"(looked in {spec.root} and in {cwd or Path.cwd()})")
    base = path.parents[len(Path(spec.program).parts) - 1]  # the project root here
    allow = tuple(Path(p) if Path(p).is_absolute() else base / p for p in spec.allow)
    try:
        program = check_file(path, allow)
    except CompileError as exc:
        first = exc.diagnostics[0].message if exc.diagnostics else "it does not check"
        raise WorkerSetupError(f"{spec.program} does not check on worker "
                               f"{socket.gethostname()}: {first}") from None
    digest = program_digest(program)
    if digest != spec.digest:
        raise WorkerSetupError(f"the program on worker {socket.gethostname()} differs from "
                               f"the driver's ({digest[:19]} != {spec.digest[:19]}): the "
                               "workers must see the same files")
    return program


def worker_config(spec: WorkerSpec) -> Any:
    """The :class:`~promptflow_dsl.runtime.context.RunConfig` of a worker. Never raises."""
    from ..runtime import RunConfig
    from ..runtime.cache import CacheMode

    return RunConfig(models=dict(spec.models), concurrency=spec.concurrency,
                     cache=CacheMode(spec.cache),
                     cache_dir=Path(spec.cache_dir) if spec.cache_dir else None,
                     trace_dir=Path(spec.trace_dir) if spec.trace_dir else None,
                     write_trace=spec.write_trace, timeout=spec.timeout)


class RowWorker:
    """Runs rows of one dataset run (see the module docstring).

    The program is checked in the constructor, so a worker that cannot run it fails
    at once (the driver sees it on :meth:`ready`); the runner opens on the first row.
    """

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.program = load_worker_program(spec)
        self._runner: RowRunner | None = None
        self._run_row: RowFunction | None = None
        self._lock: asyncio.Lock | None = None
        self.rows = 0

    def ready(self) -> dict[str, Any]:
        """Where this worker runs: ``pid`` and ``host``. Never raises."""
        return {"pid": os.getpid(), "host": socket.gethostname()}

    async def _row_function(self) -> RowFunction:
        if self._run_row is not None:
            return self._run_row
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._run_row is None:
                from ..datasets.programs import eval_row_function, handler_row_function
                from ..runtime.rows import RowRunner

                runner = RowRunner(self.program, worker_config(self.spec))
                if self.spec.kind == "eval":
                    run_row = eval_row_function(runner, self.program.eval(self.spec.name))
                else:
                    run_row = handler_row_function(runner, self.spec.name, self.spec.dataset)
                self._runner, self._run_row = runner, run_row
        assert self._run_row is not None
        return self._run_row

    async def run(self, line: int, row: Any) -> RowOutcome:
        """Run one row; a failure is in the outcome, as with the local executor.

        Raises only what the row function raises (the driver records it as a failed
        row) and ``asyncio.CancelledError`` when the driver cancels the row.
        """
        run_row = await self._row_function()
        self.rows += 1
        return await run_row(line, row)

    async def close(self) -> int:
        """Close the runner (model backends, the response cache); return the rows run.
        Never raises."""
        runner, self._runner, self._run_row = self._runner, None, None
        if runner is not None:
            try:
                await runner.aclose()
            except Exception:  # noqa: BLE001 - closing must not fail the run
                pass
        return self.rows
