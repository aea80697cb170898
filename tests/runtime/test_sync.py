"""Synchronous entry points (`program.run`, `Harness.run`, `run_sync`) called where an
event loop is already running, as in a Jupyter cell: the run goes to its own loop in
a worker thread and the caller gets the same result, the same exceptions and the
same Ctrl-C behaviour as outside a loop."""

from __future__ import annotations

import asyncio
import contextvars
import json
import signal
import threading
from pathlib import Path

import pytest

import promptflow_dsl as pf
from promptflow_dsl.runtime import InputError, RunConfig, RunFailed
from promptflow_dsl.runtime.cache import CacheMode
from promptflow_dsl.runtime.sync import run_sync
from promptflow_dsl.testing.harness import Harness

PROGRAM = '''
model default = "echo"
prompt hello(name: str) -> str = "Hello {{ name }}!"
tool boom(s: str) -> str = python "tools:boom"
tool hang(s: str) -> str = python "tools:hang"
flow greet(names: list[str]) -> list[str] {
  return [hello(name=n) for n in names]
}
'''

TOOLS = '''
import asyncio
import signal
import threading


def boom(s):
    raise ValueError(f"cannot handle {s!r}")


async def hang(s):
    """Press Ctrl-C (a SIGINT to the main thread), then wait for ever."""
    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
    await asyncio.Event().wait()
'''


@pytest.fixture
def program(tmp_path: Path):
    (tmp_path / "tools.py").write_text(TOOLS)
    (tmp_path / "p.pflow").write_text(PROGRAM)
    return pf.load(tmp_path / "p.pflow")


def cfg(tmp_path: Path) -> RunConfig:
    return RunConfig(trace_dir=tmp_path / "traces", cache=CacheMode.OFF)


def shape(result):
    """What a run gives, without the times and ids that differ between two runs."""
    steps = [(s.handler, s.kind, s.status, s.inputs, s.output, s.reply) for s in result.trace.steps]
    return result.value, result.trace.status, result.trace.output, steps


def test_program_run_inside_a_running_loop(program, tmp_path):
    outside = program.run("greet", config=cfg(tmp_path), names=["Ada", "Alan"])

    async def cell():
        return program.run("greet", config=cfg(tmp_path), names=["Ada", "Alan"])

    inside = asyncio.run(cell())
    assert inside.value == ["Hello Ada!", "Hello Alan!"]
    assert shape(inside) == shape(outside)
    assert inside.trace_path is not None and inside.trace_path.is_file()


def test_exceptions_propagate_from_inside_a_running_loop(program, tmp_path):
    async def cell(handler, **inputs):
        return program.run(handler, config=cfg(tmp_path), **inputs)

    with pytest.raises(RunFailed) as outside:
        program.run("boom", config=cfg(tmp_path), s="x")
    with pytest.raises(RunFailed) as inside:
        asyncio.run(cell("boom", s="x"))
    assert inside.value.message == outside.value.message
    assert "ValueError: cannot handle 'x'" in inside.value.message
    assert inside.value.trace.status == "failed"
    with pytest.raises(InputError, match="names"):
        asyncio.run(cell("greet", names=3))
    with pytest.raises(KeyError):
        asyncio.run(cell("nobody"))


def test_harness_run_inside_a_running_loop(program):
    async def cell():
        h = Harness(program)
        h.mock_model("default", ["Hi Ada.", "Hi Alan."])
        return h.run("greet", names=["Ada", "Alan"]), h.calls("hello")

    assert asyncio.run(cell()) == (["Hi Ada.", "Hi Alan."], 2)


def test_run_sync_runs_on_a_worker_thread_with_the_callers_context():
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    async def work():
        await asyncio.sleep(0)
        return threading.current_thread(), var.get()

    async def cell():
        var.set("caller")
        return run_sync(work())

    assert run_sync(work()) == (threading.current_thread(), "unset")  # no loop: right here
    thread, seen = asyncio.run(cell())
    assert thread is not threading.current_thread() and seen == "caller"


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs POSIX signals")
def test_ctrl_c_inside_a_running_loop_cancels_the_run_and_raises_keyboard_interrupt():
    """As with `asyncio.run`: the coroutine is cancelled, its `finally` runs, and the
    caller gets KeyboardInterrupt.  The outer loop is started without `asyncio.run`,
    whose own SIGINT handler would take the first Ctrl-C (as a notebook's does not)."""
    assert threading.current_thread() is threading.main_thread()
    started = threading.Event()
    seen: list[str] = []
    aborted: list[bool] = []  # the run never started: the presser must not press

    async def waits_forever():
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        finally:
            seen.append("finally")

    def press_ctrl_c():
        started.wait()
        if not aborted:
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    async def cell():
        return run_sync(waits_forever())

    presser = threading.Thread(target=press_ctrl_c)
    presser.start()
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(cell())
    finally:
        loop.close()
        if not started.is_set():
            aborted.append(True)
            started.set()
        presser.join()
    assert seen == ["cancelled", "finally"]
    assert not any(t.name == "pflow-run" for t in threading.enumerate())


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs POSIX signals")
def test_ctrl_c_during_a_run_inside_a_loop_is_as_outside(program, tmp_path):
    """Ctrl-C during `program.run`: KeyboardInterrupt, and the run's trace is written as
    interrupted, whether or not the caller is inside a running loop."""
    assert threading.current_thread() is threading.main_thread()

    def interrupted_trace(run) -> dict:
        folder = tmp_path / f"traces{len(list(tmp_path.glob('traces*')))}"
        with pytest.raises(KeyboardInterrupt):
            run(RunConfig(trace_dir=folder, cache=CacheMode.OFF))
        [path] = folder.glob("*.json")
        trace = json.loads(path.read_text())
        return {"status": trace["status"], "error": trace["error"],
                "steps": [(st["handler"], st["status"]) for st in trace["steps"]]}

    outside = interrupted_trace(lambda config: program.run("hang", config=config, s="x"))

    async def cell(config):
        return program.run("hang", config=config, s="x")

    def in_a_loop(config):
        loop = asyncio.new_event_loop()  # no asyncio.run: its SIGINT handler is not a notebook's
        try:
            loop.run_until_complete(cell(config))
        finally:
            loop.close()

    inside = interrupted_trace(in_a_loop)
    assert inside == outside
    assert inside["status"] == "failed" and "interrupted" in inside["error"]
