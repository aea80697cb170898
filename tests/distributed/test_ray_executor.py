"""``--executor ray``: dataset runs on Ray workers — a local instance, and a real
two-node cluster started here on 127.0.0.1 (``ray start --head`` and ``ray start
--address``) with one worker process killed mid-run — against the loopback fake
OpenAI server; the results are compared with the local executor's."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

from promptflow_dsl import cli

PROGRAM = '''
model default = "openai/fake" {{ api_base: "{base}", api_key: "sk-fake-0123456789" }}
type Row {{ id: int, text: str }}
prompt shout(text: str) -> str = "shout {{{{ text }}}}"
prompt say(text: str) -> str = "say {{{{ text }}}}"
eval echoes {{
  data "rows.jsonl" as Row
  run say(text=shout(text=row.text))
  metric ok = out == "say shout " + row.text
}}
'''
CALLS_PER_ROW = 2


def _have_ray() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


needs_ray = pytest.mark.skipif(not _have_ray(), reason="Ray is not installed "
                                                       "(pip install 'promptflow-dsl[ray]')")


def _project(tmp_path: Path, base: str, n: int) -> Path:
    (tmp_path / "pflow.toml").write_text("")
    (tmp_path / "e.pflow").write_text(PROGRAM.format(base=base))
    (tmp_path / "rows.jsonl").write_text("".join(
        json.dumps({"id": i, "text": f"row-{i}"}) + "\n" for i in range(n)))
    return tmp_path


def _results(project: Path) -> dict[int, dict]:
    [folder] = [p for p in (project / ".pflow-cache" / "evals").iterdir() if p.is_dir()]
    lines = [json.loads(x) for x in (folder / "results.jsonl").read_text().splitlines()]
    rows = [line["row"] for line in lines]
    assert len(rows) == len(set(rows)), "a row was recorded twice"
    return {line["row"]: line for line in lines}


def _summary(project: Path) -> dict:
    [folder] = [p for p in (project / ".pflow-cache" / "evals").iterdir() if p.is_dir()]
    return json.loads((folder / "summary.json").read_text())


def _comparable(line: dict) -> tuple:
    return (line["status"], line["inputs"], line["output"], line.get("metrics"),
            line["tokens"])


# ----------------------------------------------------------------- usage errors

@pytest.mark.parametrize(("argv", "message"), [
    (["eval", "e.pflow", "--address", "auto"], "pflow eval: --address go with --executor ray"),
    (["eval", "e.pflow", "--workers", "2", "--worker-env", "X"],
     "pflow eval: --workers, --worker-env go with --executor ray"),
    (["eval", "e.pflow", "--executor", "ray", "--workers", "0"],
     "pflow eval: --workers must be at least 1"),
    (["eval", "e.pflow", "--executor", "ray", "--worker-cpus", "0"],
     "pflow eval: --worker-cpus must be more than 0"),
    (["run", "e.pflow", "shout", "--executor", "ray"], "pflow run: --executor goes with --data"),
])
def test_executor_usage_errors_exit_2(tmp_path: Path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(_project(tmp_path, "http://127.0.0.1:9/v1", 3))
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_without_ray_the_executor_says_how_to_install_it(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.chdir(_project(tmp_path, "http://127.0.0.1:9/v1", 3))
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    assert cli.main(["eval", "e.pflow", "--executor", "ray"]) == 2
    err = capsys.readouterr().err
    assert "--executor ray needs Ray, which is not installed: " \
           "pip install 'promptflow-dsl[ray]'" in err
    assert not (tmp_path / ".pflow-cache" / "evals").exists()


# ----------------------------------------------------------------- a local instance

@needs_ray
def test_a_local_ray_run_gives_the_local_executors_results(tmp_path: Path, fake_openai):
    n = 60
    (tmp_path / "local").mkdir()
    (tmp_path / "ray").mkdir()
    local = _project(tmp_path / "local", fake_openai.base_url, n)
    dist = _project(tmp_path / "ray", fake_openai.base_url, n)
    base = [sys.executable, "-m", "promptflow_dsl", "eval", "e.pflow", "--no-cache"]
    done = subprocess.run([*base, "-q"], cwd=local, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    asked_local = len(fake_openai.requests)
    done = subprocess.run([*base, "--executor", "ray", "--workers", "2", "--concurrency", "8"],
                          cwd=dist, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "ray: 2 workers (4 rows in flight each) on 1 host" in done.stderr
    assert len(fake_openai.requests) - asked_local == n * CALLS_PER_ROW
    a, b = _results(local), _results(dist)
    assert sorted(b) == list(range(1, n + 1))
    assert {k: _comparable(v) for k, v in a.items()} == {k: _comparable(v) for k, v in b.items()}
    meta = json.loads(next((dist / ".pflow-cache" / "evals").glob("*/meta.json")).read_text())
    assert meta["options"]["executor"]["kind"] == "ray"
    assert meta["options"]["executor"]["workers"] == 2
    # each row's trace was written by its worker into the project, where `pflow trace` reads it
    trace_id = b[1]["trace_id"]
    assert trace_id and list((dist / ".pflow-cache").rglob(f"*{trace_id}*"))


@needs_ray
def test_a_program_that_differs_on_the_workers_is_refused(tmp_path: Path, monkeypatch, capsys):
    from promptflow_dsl.distributed import WorkerSetupError, WorkerSpec
    from promptflow_dsl.distributed.worker import load_worker_program

    _project(tmp_path, "http://127.0.0.1:9/v1", 3)
    spec = WorkerSpec(root=str(tmp_path), program="e.pflow", kind="eval", name="echoes",
                      dataset="rows.jsonl", digest="sha256:" + "0" * 64)
    with pytest.raises(WorkerSetupError, match="differs from the driver's"):
        load_worker_program(spec)
    missing = WorkerSpec(root=str(tmp_path / "nowhere"), program="e.pflow", kind="eval",
                         name="echoes", dataset="rows.jsonl", digest="")
    with pytest.raises(WorkerSetupError, match="e.pflow is not on worker"):
        load_worker_program(missing, cwd=tmp_path / "empty")


# ----------------------------------------------------------------- a real cluster

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pids_with(marker: str) -> list[int]:
    """Processes whose command line contains ``marker``."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline and int(entry.name) != os.getpid():
            out.append(int(entry.name))
    return out


class Cluster:
    """A Ray head and a second node on 127.0.0.1, in a temp dir of their own so that
    their processes can be found (and stopped) by it."""

    def __init__(self) -> None:
        self.temp = Path(tempfile.mkdtemp(prefix="pfray", dir="/tmp"))
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.ray = str(Path(sys.executable).with_name("ray"))
        # the cluster, its nodes and the driver share one token (Ray's token authentication)
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
                    "RAY_AUTH_TOKEN": secrets.token_hex(32)}

    def _start(self, *args: str) -> None:
        done = subprocess.run([self.ray, "start", *args, "--num-cpus", "2",
                               "--node-ip-address", "127.0.0.1", "--disable-usage-stats"],
                              env=self.env, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stdout + done.stderr

    def __enter__(self) -> Cluster:
        try:
            self._start("--head", "--port", str(self.port), "--temp-dir", str(self.temp),
                        "--include-dashboard", "false")
            self._start("--address", self.address)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = _pids_with(str(self.temp))
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 10
            while _pids_with(str(self.temp)) and time.monotonic() < deadline:
                time.sleep(0.1)
        shutil.rmtree(self.temp, ignore_errors=True)


def _worker_pids() -> list[int]:
    return _pids_with("ray::RowWorker")


@needs_ray
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds Ray's processes in /proc")
def test_a_two_node_cluster_survives_a_killed_worker(tmp_path: Path, fake_openai):
    n = 1000
    fake_openai.set_latency(0.02)
    (tmp_path / "local").mkdir()
    (tmp_path / "ray").mkdir()
    local = _project(tmp_path / "local", fake_openai.base_url, n)
    dist = _project(tmp_path / "ray", fake_openai.base_url, n)
    base = [sys.executable, "-m", "promptflow_dsl", "eval", "e.pflow", "--no-cache", "-q",
            "--concurrency", "16"]
    done = subprocess.run(base, cwd=local, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    asked_local = len(fake_openai.requests)
    assert asked_local == n * CALLS_PER_ROW

    with Cluster() as cluster:
        proc = subprocess.Popen([*base, "--executor", "ray", "--address", cluster.address,
                                 "--workers", "4"], cwd=dist, env=cluster.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            killed = None
            deadline = time.monotonic() + 240
            root = dist / ".pflow-cache" / "evals"
            while time.monotonic() < deadline and proc.poll() is None:
                found = list(root.glob("*/results.jsonl")) if root.is_dir() else []
                if found and len(found[0].read_bytes().splitlines()) >= 200:
                    workers = _worker_pids()
                    if len(workers) >= 4:
                        killed = workers[0]
                        os.kill(killed, signal.SIGKILL)
                        break
                time.sleep(0.05)
            out, err = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert killed is not None, "no worker was killed: " + err
        assert proc.returncode == 0, err

    got = _results(dist)
    assert sorted(got) == list(range(1, n + 1))  # every row exactly once
    assert all(line["status"] == "ok" for line in got.values())
    want = _results(local)
    assert {k: _comparable(v) for k, v in got.items()} == \
           {k: _comparable(v) for k, v in want.items()}
    summary = _summary(dist)
    reruns = summary.get("reruns", 0)
    assert reruns >= 1  # the killed worker had rows in flight (4 rows each)
    assert sum(line.get("reruns", 0) for line in got.values()) == reruns
    asked = Counter(r["body"]["messages"][-1]["content"]
                    for r in fake_openai.requests[asked_local:])
    assert sum(asked.values()) <= n * CALLS_PER_ROW + reruns * CALLS_PER_ROW
    assert set(asked) == set(Counter(r["body"]["messages"][-1]["content"]
                                     for r in fake_openai.requests[:asked_local]))
    meta = json.loads(next((dist / ".pflow-cache" / "evals").glob("*/meta.json")).read_text())
    assert meta["options"]["executor"]["workers"] == 4
    assert not _pids_with(str(cluster.temp))  # the cluster's processes are gone


@needs_ray
def test_ctrl_c_on_ray_stops_writes_what_is_done_and_resumes(tmp_path: Path, fake_openai):
    n = 400
    fake_openai.set_latency(0.05)
    project = _project(tmp_path, fake_openai.base_url, n)
    base = [sys.executable, "-m", "promptflow_dsl", "eval", "e.pflow", "--executor", "ray",
            "--workers", "2", "--concurrency", "8"]
    proc = subprocess.Popen(base, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    root = project / ".pflow-cache" / "evals"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        found = list(root.glob("*/results.jsonl")) if root.is_dir() else []
        if found and len(found[0].read_bytes().splitlines()) >= 40:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "pflow: interrupted" in err
    resume = [line for line in err.splitlines() if "--resume" in line]
    assert resume and "--executor ray" in resume[-1]
    partial = _results(project)
    assert 40 <= len(partial) < n
    summary = _summary(project)
    assert summary["status"] == "interrupted" and summary["rows"]["pending"] == n - len(partial)
    run_id = next(root.iterdir()).name
    done = subprocess.run([*base, "--resume", run_id, "-q"], cwd=project, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    got = _results(project)
    assert sorted(got) == list(range(1, n + 1))
    assert all(line["status"] == "ok" for line in got.values())
