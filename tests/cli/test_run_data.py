"""``pflow run FILE HANDLER --data PATH --out PATH``: one call per dataset row."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pflow_cli import run

PROGRAM = '''
model default = "echo"
prompt say(text: str, n: int = 1) -> str = "say {{ text }} x{{ n }}"
tool mark(text: str) -> str = python "tools:mark"
flow main(text: str, n: int) -> {s: str, m: str} {
  s = say(text=text, n=n)
  m = mark(text=text)
  return {s: s, m: m}
}
'''

TOOLS = '''
import os, time
def mark(text):
    with open(os.environ["PFLOW_TEST_CALLS"], "a") as f:
        f.write(text + "\\n")
    time.sleep(float(os.environ.get("PFLOW_TEST_DELAY", "0")))
    if "bad" in text:
        raise ValueError(f"bad input {text!r}")
    return text.upper()
'''


@pytest.fixture
def project(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PFLOW_TEST_CALLS", str(tmp_path / "calls.txt"))
    (tmp_path / "pflow.toml").write_text("")
    (tmp_path / "p.pflow").write_text(PROGRAM)
    (tmp_path / "tools.py").write_text(TOOLS)
    rows = [{"id": i, "text": f"row{i}" if i != 3 else "bad", "n": i} for i in range(1, 6)]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path


def lines(path: Path) -> dict[int, dict]:
    return {json.loads(x)["row"]: json.loads(x) for x in path.read_text().splitlines()}


def calls(project: Path) -> list[str]:
    p = project / "calls.txt"
    return p.read_text().split() if p.exists() else []


def test_one_line_per_row_and_exit_1_when_a_row_failed(project: Path, capsys):
    code, out, err = run(["run", "p.pflow", "main", "--data", "rows.jsonl", "--out", "o.jsonl",
                          "-q"], capsys)
    assert code == 1 and out == ""
    got = lines(project / "o.jsonl")
    assert sorted(got) == [1, 2, 3, 4, 5]
    assert got[1]["output"] == {"s": "say row1 x1", "m": "ROW1"}
    assert set(got[1]) == {"row", "status", "inputs", "output", "usage", "trace_id", "tokens",
                           "cost", "latency"}
    assert got[3]["status"] == "failed" and got[3]["error"].startswith(
        "p.pflow:4:6: tool 'mark' raised ValueError: bad input 'bad'")
    assert "pflow run: row 3 failed: p.pflow:4:6: tool 'mark' raised" in err
    code, _, err = run(["run", "p.pflow", "main", "--data", "rows.jsonl", "--out", "o2.jsonl",
                        "--limit", "2"], capsys)
    assert code == 0 and sorted(lines(project / "o2.jsonl")) == [1, 2]
    assert "2 rows: 2 ok, 0 failed" in err and "results o2.jsonl" in err


def test_trace_ids_lead_to_each_rows_trace(project: Path, capsys):
    run(["run", "p.pflow", "main", "--data", "rows.jsonl", "--out", "o.jsonl", "-q",
         "--limit", "1"], capsys)
    trace_id = lines(project / "o.jsonl")[1]["trace_id"]
    code, out, _ = run(["trace", "show", trace_id], capsys)
    assert code == 0 and "main" in out and "row1" in out
    run(["run", "p.pflow", "main", "--data", "rows.jsonl", "--out", "o2.jsonl", "-q",
         "--limit", "1", "--no-trace"], capsys)
    assert lines(project / "o2.jsonl")[1]["trace_id"] is None


def test_an_existing_out_needs_resume_or_force(project: Path, capsys):
    base = ["run", "p.pflow", "main", "--data", "rows.jsonl", "--out", "o.jsonl", "-q"]
    run([*base, "--limit", "2"], capsys)
    code, _, err = run(base, capsys)
    assert code == 2 and "o.jsonl exists; --resume continues it, --force overwrites it" in err
    assert sorted(calls(project)) == ["row1", "row2"]  # rows run concurrently
    code, _, _ = run([*base, "--resume"], capsys)
    assert code == 1 and sorted(lines(project / "o.jsonl")) == [1, 2, 3, 4, 5]
    assert sorted(calls(project)) == sorted(["row1", "row2", "bad", "row4", "row5"])
    code, _, _ = run([*base, "--resume", "--retry-failed"], capsys)
    assert code == 1 and calls(project).count("bad") == 2 and calls(project).count("row1") == 1
    code, _, _ = run([*base, "--force", "--limit", "1"], capsys)
    assert code == 0 and sorted(lines(project / "o.jsonl")) == [1]


@pytest.mark.parametrize(("extra", "message"), [
    (["--map", "text=txet"], "pflow run: rows.jsonl:1: no column 'txet' (for --map "
                             "text=txet); did you mean 'text'? (columns: id, text, n)"),
    (["--map", "zz=text"], "pflow run: --map zz=text: main has no parameter 'zz' "
                           "(parameters: text, n)"),
    (["--map", "text"], "pflow run: --map expects PARAM=COLUMN, got 'text'"),
    (["--resume", "--force"], "pflow run: --resume continues --out and --force overwrites it"),
    (["--retry-failed"], "pflow run: --retry-failed goes with --resume"),
    (["-i", "text=x"], "pflow run: with --data the inputs come from the rows"),
    (["--limit", "1", "--sample", "1"], "pflow run: --limit and --sample cannot be used together"),
    (["--max-errors", "0"], "pflow run: --max-errors must be at least 1"),
    (["--concurrency", "0"], "pflow run: --concurrency must be at least 1"),
])
def test_usage_errors_exit_2_before_any_call(project: Path, capsys, extra, message):
    code, _, err = run(["run", "p.pflow", "main", "--data", "rows.jsonl", "--out", "o.jsonl",
                        *extra], capsys)
    assert code == 2 and err.startswith(message), err
    assert calls(project) == [] and not (project / "o.jsonl").exists()


def test_a_parameter_without_a_column_exits_2(project: Path, capsys):
    (project / "r.csv").write_text("body,n\nhello,1\n")
    code, _, err = run(["run", "p.pflow", "main", "--data", "r.csv", "--out", "o.jsonl"], capsys)
    assert code == 2 and err.startswith(
        "pflow run: r.csv:1: no column for parameter 'text' of main(text: str, n: int)")
    code, _, _ = run(["run", "p.pflow", "main", "--data", "r.csv", "--out", "o.jsonl",
                      "--map", "text=body", "-q"], capsys)
    assert code == 0 and lines(project / "o.jsonl")[2]["inputs"] == {"text": "hello", "n": 1}


def test_options_without_data_and_missing_files(project: Path, capsys):
    code, _, err = run(["run", "p.pflow", "main", "--out", "o.jsonl"], capsys)
    assert code == 2 and "pflow run: --out goes with --data" in err
    code, _, err = run(["run", "p.pflow", "main", "--data", "rows.jsonl"], capsys)
    assert code == 2 and "--data needs --out PATH" in err
    code, _, err = run(["run", "p.pflow", "main", "--data", "nope.jsonl", "--out", "o"], capsys)
    assert code == 2 and "pflow run: no such dataset: nope.jsonl" in err
    (project / "rows.txt").write_text("x")
    code, _, err = run(["run", "p.pflow", "main", "--data", "rows.txt", "--out", "o"], capsys)
    assert code == 2 and "rows.txt" in err


def test_sample_with_a_seed_is_reproducible(project: Path, capsys):
    base = ["run", "p.pflow", "main", "--data", "rows.jsonl", "-q", "--sample", "2"]
    run([*base, "--seed", "7", "--out", "a.jsonl"], capsys)
    run([*base, "--seed", "7", "--out", "b.jsonl"], capsys)
    assert sorted(lines(project / "a.jsonl")) == sorted(lines(project / "b.jsonl"))
    assert len(lines(project / "a.jsonl")) == 2


def test_max_errors_stops_and_prints_the_resume_command(project: Path, capsys):
    rows = [{"text": "bad", "n": i} for i in range(20)]
    (project / "bad.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, _, err = run(["run", "p.pflow", "main", "--data", "bad.jsonl", "--out", "o.jsonl",
                        "--max-errors", "2", "--concurrency", "1"], capsys)
    assert code == 1 and len(lines(project / "o.jsonl")) == 2
    assert "stopped after 2 failed rows (--max-errors 2)" in err
    assert ("resume with: pflow run p.pflow main --data bad.jsonl --out o.jsonl "
            "--max-errors 2 --concurrency 1 --resume") in err


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_stops_writes_and_prints_the_resume_command(project: Path):
    rows = [{"text": f"r{i}", "n": i} for i in range(60)]
    (project / "many.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = {**os.environ, "PFLOW_TEST_DELAY": "0.1", "PFLOW_TEST_CALLS": str(project / "calls.txt")}
    argv = [sys.executable, "-m", "promptflow_dsl", "run", "p.pflow", "main", "--data",
            "many.jsonl", "--out", "o.jsonl", "--concurrency", "4"]
    proc = subprocess.Popen(argv, cwd=project, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if (project / "o.jsonl").exists() and len((project / "o.jsonl").read_text()
                                                  .splitlines()) >= 8:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert ("resume with: pflow run p.pflow main --data many.jsonl --out o.jsonl "
            "--concurrency 4 --resume") in err
    done = lines(project / "o.jsonl")
    assert 8 <= len(done) < 60
    resumed = subprocess.run([*argv, "--resume", "-q"], cwd=project, env={
        **env, "PFLOW_TEST_DELAY": "0"}, capture_output=True, text=True, timeout=60)
    assert resumed.returncode == 0, resumed.stderr
    rows_written = [json.loads(x)["row"] for x in (project / "o.jsonl").read_text().splitlines()]
    assert sorted(rows_written) == list(range(1, 61))  # every row exactly once
    started = calls(project)
    assert all(started.count(f"r{i}") == 1 for i in range(60) if i + 1 in done)
