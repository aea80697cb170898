"""Running a coroutine from synchronous code.

:func:`run_sync` is ``asyncio.run`` with two differences:

- The coroutine's result is handed back outside the main task.  ``asyncio.run``
  installs a Ctrl-C handler that refers to the main task; restoring the previous
  handler at the end makes the ``signal`` module format that handler (and so the
  finished task, result included) with ``repr``.  For a run's result that is the
  whole trace, rendered for nothing: tens of milliseconds on a large run.
- It also works when an event loop is already running in the calling thread (a
  Jupyter notebook, an async web handler calling synchronous code), where
  ``asyncio.run`` refuses.  The coroutine then runs on a new loop of its own in a
  worker thread while the caller waits; the result, or the exception, is the same.
  Ctrl-C while waiting cancels the coroutine, waits for it to finish (its
  ``finally`` blocks run, so a run still writes its trace) and raises
  ``KeyboardInterrupt``, as ``asyncio.run`` does; a second Ctrl-C stops waiting.
  The caller's context variables are copied into the worker, as ``asyncio.run``
  copies them into its task.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Coroutine
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on a new event loop and return its result.

    Ctrl-C cancels the coroutine as with ``asyncio.run``.  Raises whatever the
    coroutine raises.  Inside a running event loop the coroutine runs on its own
    loop in a worker thread and this call blocks until it is done.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run_here(coro)
    return _run_in_thread(coro)


def _run_here(coro: Coroutine[Any, Any, T]) -> T:
    box: list[T] = []

    async def main() -> None:
        box.append(await coro)

    try:
        asyncio.run(main())
    except RuntimeError:
        coro.close()  # never awaited: no "coroutine was never awaited" warning
        raise
    return box[0]


class _Worker(threading.Thread, Generic[T]):
    """One coroutine on its own event loop in its own thread."""

    def __init__(self, coro: Coroutine[Any, Any, T]) -> None:
        super().__init__(name="pflow-run", daemon=True)
        self.coro = coro
        self.context = contextvars.copy_context()
        self.result: list[T] = []
        self.error: BaseException | None = None
        self.lock = threading.Lock()  # guards loop, task and cancelled
        self.loop: asyncio.AbstractEventLoop | None = None
        self.task: asyncio.Task[Any] | None = None
        self.cancelled = False
        self.done = threading.Event()

    def run(self) -> None:
        try:
            self.context.run(_run_here, self._main())
        except BaseException as exc:  # handed to the waiting caller
            self.error = exc
        finally:
            self.done.set()

    def wait(self) -> None:
        """Wait until the coroutine is done.  An ``Event``, not ``join()``: a
        ``KeyboardInterrupt`` during ``join()`` can mark a running thread as stopped
        (Python 3.11)."""
        self.done.wait()
        self.join()

    async def _main(self) -> None:
        with self.lock:
            self.loop = asyncio.get_running_loop()
            self.task = asyncio.current_task()
            if self.cancelled:  # Ctrl-C came before the loop started
                self.coro.close()
                raise asyncio.CancelledError
        self.result.append(await self.coro)

    def cancel(self) -> None:
        with self.lock:
            self.cancelled = True
            if self.loop is not None and self.task is not None:
                try:
                    self.loop.call_soon_threadsafe(self.task.cancel)
                except RuntimeError:  # the loop is already closed: nothing to cancel
                    pass


def _run_in_thread(coro: Coroutine[Any, Any, T]) -> T:
    worker: _Worker[T] = _Worker(coro)
    try:
        worker.start()
        worker.wait()
    except KeyboardInterrupt:
        worker.cancel()
        if worker.ident is None:  # interrupted before the thread existed
            with worker.lock:
                coro.close()
            raise
        worker.wait()  # a second Ctrl-C leaves the (daemon) worker to finish alone
        if isinstance(worker.error, asyncio.CancelledError):
            raise  # the KeyboardInterrupt, as asyncio.run raises it
    if worker.error is not None:
        raise worker.error
    return worker.result[0]
