"""`program.run` in a real Jupyter kernel, whose cells run while the kernel's event
loop is running: notebooks built here run on a kernel of this interpreter (a kernel
spec installed into a temporary folder, found through JUPYTER_PATH, importing this
checkout), so nothing outside the project's environment is used."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

import promptflow_dsl as pf

KERNEL = "pflow-test"

CELLS = [
    "import asyncio\n"
    "import sys\n"
    "import promptflow_dsl as pf\n"
    "from promptflow_dsl.testing.harness import Harness\n"
    "print('python:', sys.executable)\n"
    "print('loop running:', asyncio.get_running_loop().is_running())",

    "prog = pf.loads('''\n"
    "model default = \"echo\"\n"
    "prompt hello(name: str) -> str = \"Hello {{ name }}!\"\n"
    "flow greet(names: list[str]) -> list[str] {\n"
    "  return [hello(name=n) for n in names]\n"
    "}\n"
    "''')",

    "r = prog.run('greet', names=['Ada', 'Alan'])\n"
    "print('value:', r.value)\n"
    "print('trace:', r.trace.status, len(r.trace.steps), r.trace_path.is_file())",

    "h = Harness(prog)\n"
    "h.mock_model('default', ['Hi Ada.'])\n"
    "print('harness:', h.run('hello', name='Ada'), h.calls('hello'))",

    "try:\n"
    "    prog.run('greet', names=3)\n"
    "except Exception as exc:\n"
    "    print('error:', type(exc).__name__)",
]


@pytest.fixture
def kernel(tmp_path: Path, monkeypatch) -> Path:
    """Installs the kernel spec; returns the working folder for the kernel."""
    pytest.importorskip("ipykernel")
    from ipykernel.kernelspec import install

    package_root = str(Path(pf.__file__).resolve().parent.parent)
    pythonpath = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
    install(kernel_name=KERNEL, prefix=str(tmp_path / "jupyter"), env={"PYTHONPATH": pythonpath})
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter" / "share" / "jupyter"))
    work = tmp_path / "work"
    work.mkdir()
    return work


def test_program_run_in_a_jupyter_kernel(kernel: Path):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in CELLS]
    client = NotebookClient(nb, kernel_name=KERNEL, timeout=120, startup_timeout=120,
                            resources={"metadata": {"path": str(kernel)}})
    client.execute()

    outputs = []
    for cell in nb.cells:
        for out in cell.outputs:
            assert out.output_type == "stream" and out.name == "stdout", out
            outputs.append(out.text)
    assert "".join(outputs).splitlines() == [
        f"python: {sys.executable}",
        "loop running: True",
        "value: ['Hello Ada!', 'Hello Alan!']",
        "trace: ok 3 True",
        "harness: Hi Ada. 1",
        "error: InputError",
    ]
    assert list((kernel / ".pflow-cache" / "traces").glob("*.json"))  # the run wrote its trace


HANG_TOOL = '''
import asyncio


async def hang(s):
    print("waiting", flush=True)
    await asyncio.Event().wait()
'''

HANG_CELL = '''
import promptflow_dsl as pf
prog = pf.load("hang.pflow")
try:
    prog.run("hang", s="x")
except KeyboardInterrupt:
    print("interrupted")
'''


def test_interrupting_the_kernel_during_program_run(kernel: Path):
    """The notebook's stop button (SIGINT to the kernel) while `program.run` waits:
    the run is cancelled, writes its trace, and the cell gets KeyboardInterrupt."""
    from jupyter_client.manager import start_new_kernel

    (kernel / "tools.py").write_text(HANG_TOOL)
    (kernel / "hang.pflow").write_text('tool hang(s: str) -> str = python "tools:hang"\n')
    km, kc = start_new_kernel(kernel_name=KERNEL, startup_timeout=120, cwd=str(kernel))
    try:
        msg_id = kc.execute(HANG_CELL)
        stdout = []

        def next_output() -> dict:
            while True:
                msg = kc.get_iopub_msg(timeout=120)
                if msg["parent_header"].get("msg_id") == msg_id:
                    return msg

        def read_until(done) -> bool:
            """Collect stdout until ``done()``; False if the cell finished first."""
            while not done():
                msg = next_output()
                if msg["msg_type"] == "stream":
                    stdout.append(msg["content"]["text"])
                elif msg["msg_type"] == "error":
                    stdout.append(f"{msg['content']['ename']}: {msg['content']['evalue']}")
                elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                    return False
            return True

        if read_until(lambda: "waiting" in "".join(stdout)):  # the tool runs: the cell waits
            km.interrupt_kernel()
            read_until(lambda: False)
        reply = kc.get_shell_msg(timeout=120)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert reply["content"]["status"] == "ok"  # the cell caught the KeyboardInterrupt
    assert "".join(stdout).split() == ["waiting", "interrupted"]
    [path] = (kernel / ".pflow-cache" / "traces").glob("*.json")
    trace = json.loads(path.read_text())
    assert trace["status"] == "failed" and trace["error"] == "interrupted before it finished"
