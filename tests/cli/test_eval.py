"""``pflow eval``: evals over their datasets into run folders; list, show, compare,
resume (also after kill -9, against the loopback fake OpenAI server); ``evaluate()`` in
test blocks and from the Harness."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from corpus_paths import SHARED_EXAMPLES
from pflow_cli import run

from promptflow_dsl import cli
from promptflow_dsl.testing.harness import Harness

PROGRAM = '''
model default = "echo"

type Row { id: str, text: str, gold: str }

prompt shout(text: str) -> str = "{{ text }}"
tool check(text: str) -> str = python "tools:check"
tool judge(text: str) -> bool = python "tools:judge"

eval quality {
  data "rows.jsonl" as Row
  run shout(text=check(text=row.text))
  metric exact = out == row.gold
  metric judged = judge(text=out)
  threshold exact >= 0.5
}

eval strict {
  data "rows.jsonl" as Row
  run shout(text=row.text)
  metric exact = out == row.gold
  threshold exact >= 0.99
}

test "evaluate runs the eval under the test's mocks" {
  mock shout returns "same"
  r = evaluate(strict)
  expect r.rows == 5
  expect r.failed == 0
  expect r.metrics.exact == 0.2
}
'''

TOOLS = '''
import os

def check(text):
    if "crash" in text and os.path.exists("crash.flag"):
        raise RuntimeError("cannot check " + text)
    return text

def judge(text):
    if "boom" in text:
        raise ValueError("the judge gave up")
    return len(text) > 2
'''

ROWS = [
    {"id": "a", "text": "alpha", "gold": "alpha"},
    {"id": "b", "text": "beta", "gold": "BETA"},
    {"id": "c", "text": "crash", "gold": "crash"},
    {"id": "d", "text": "boom", "gold": "boom"},
    {"id": "e", "text": "same", "gold": "same"},
]


@pytest.fixture
def project(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pflow.toml").write_text("")
    (tmp_path / "e.pflow").write_text(PROGRAM)
    (tmp_path / "tools.py").write_text(TOOLS)
    (tmp_path / "crash.flag").write_text("")  # check() fails for the row "crash"
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return tmp_path


def runs(project: Path) -> list[Path]:
    root = project / ".pflow-cache" / "evals"
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def results(folder: Path) -> dict[int, dict]:
    lines = (folder / "results.jsonl").read_text().splitlines()
    return {json.loads(x)["row"]: json.loads(x) for x in lines}


def test_an_eval_writes_a_run_folder_and_prints_its_summary(project: Path, capsys):
    code, out, err = run(["eval", "e.pflow", "quality", "-q"], capsys)
    assert code == 0, err  # exact = 2/4 scored rows: the threshold holds
    [folder] = runs(project)
    got = results(folder)
    assert sorted(got) == [1, 2, 3, 4, 5]
    assert got[1]["status"] == "ok" and got[1]["output"] == "alpha"
    assert got[1]["inputs"] == ROWS[0] and got[1]["metrics"] == {"exact": True, "judged": True}
    assert got[1]["usage"]["calls"] == 1 and got[1]["trace_id"]
    # a failing run: the row fails with its located error
    assert got[3]["status"] == "failed" and "metrics" not in got[3]
    assert got[3]["error"].startswith("e.pflow:7:6: tool 'check' raised RuntimeError: "
                                      "cannot check crash")
    # a failing metric: not scored, its error kept, the row stays ok
    assert got[4]["status"] == "ok" and got[4]["metrics"] == {"exact": True, "judged": None}
    assert got[4]["metric_errors"]["judged"].startswith(
        "e.pflow:8:6: tool 'judge' raised ValueError: the judge gave up")
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["program_digest"].startswith("sha256:") and meta["models"] == {"default": "echo"}
    assert meta["dataset"]["digest"].startswith("sha256:")
    assert meta["options"]["eval"] == "quality" and meta["options"]["program"] == "e.pflow"
    assert meta["command"] == "pflow eval e.pflow quality -q"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["rows"] == {"total": 5, "ok": 4, "failed": 1, "pending": 0}
    assert summary["metrics"]["exact"]["mean"] == 0.75 and summary["metrics"]["exact"]["scored"] == 4
    assert summary["metrics"]["judged"]["scored"] == 3
    assert summary["metric_errors"] == {"judged": 1}
    assert summary["passed"] is True and summary["thresholds"][0]["threshold"] == "exact >= 0.5"
    assert {"tokens", "cost", "wall_time"} <= set(summary)
    # the estimate made before the first call, next to what the run spent
    estimate = summary["estimate"]
    assert meta["estimate"]["format"] == "pflow-estimate/1"
    assert estimate["rows"] == 5 and estimate["calls"] == {"min": 5, "max": 5}
    assert estimate["actual"] == {"tokens": summary["tokens"], "cost": summary["cost"]}
    assert "estimated: 5 calls · " in out
    assert f"eval quality · run {folder.name} · complete" in out
    assert "5 rows: 4 ok, 1 failed" in out
    assert "threshold exact >= 0.5: 0.75 (passed)" in out
    assert "judged" in out and "errors" in out


def test_a_failed_threshold_exits_1_and_every_eval_runs(project: Path, capsys):
    code, out, _ = run(["eval", "e.pflow", "-q"], capsys)
    assert code == 1
    assert len(runs(project)) == 2
    assert "eval quality" in out and "eval strict" in out
    assert "threshold exact >= 0.99: 0.8 (FAILED)" in out


def test_list_show_and_compare(project: Path, capsys):
    run(["eval", "e.pflow", "strict", "-q", "--limit", "2"], capsys)
    (project / "rows.jsonl").write_text("".join(json.dumps({**r, "gold": r["text"]}) + "\n"
                                                for r in ROWS))
    code, out, _ = run(["eval", "e.pflow", "strict", "-q", "--compare", "last"], capsys)
    assert code == 0
    first, second = runs(project)
    assert f"compared with run {first.name} (run {second.name} minus it" in out
    assert "the runs used different datasets" in out
    assert "exact changed: row 2: 0 → 1" in out
    code, out, _ = run(["eval", "--list"], capsys)
    assert code == 0 and out.index(second.name) < out.index(first.name)
    assert "strict" in out and "complete" in out
    code, out, _ = run(["eval", "--show", first.name[:20]], capsys)
    assert code == 1 and f"run {first.name}" in out and "(FAILED)" in out
    code, out, _ = run(["eval", "--show", "last", "--json"], capsys)
    data = json.loads(out)
    assert data["summary"]["run_id"] == second.name and data["meta"]["options"]["eval"] == "strict"
    code, out, _ = run(["eval", "--show", "last", "--compare", first.name, "--json"], capsys)
    text = out[out.index("}\n{") + 2:]
    diff = json.loads(text)
    assert diff["metrics"]["exact"]["changed"] == [[2, 0.0, 1.0]]


def test_resume_refuses_a_changed_program_unless_forced(project: Path, capsys):
    run(["eval", "e.pflow", "strict", "-q", "--limit", "2"], capsys)
    [folder] = runs(project)
    (project / "e.pflow").write_text(PROGRAM.replace('"{{ text }}"', '"{{ text }}!"'))
    code, _, err = run(["eval", "e.pflow", "--resume", folder.name, "-q"], capsys)
    assert code == 2 and "cannot be resumed: the program changed" in err
    code, _, err = run(["eval", "e.pflow", "--resume", "last", "-q", "--limit", "3"], capsys)
    assert code == 2 and "the rows changed (the first 2 rows → the first 3 rows)" in err
    # without --limit a resume keeps the run's own rows
    code, _, err = run(["eval", "e.pflow", "--resume", "last", "-q", "--force"], capsys)
    assert code == 1 and "resumed with --force although the program changed" in err
    meta = json.loads((folder / "meta.json").read_text())
    assert len(meta["sessions"]) == 1 and meta["sessions"][0]["forced_changes"]
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["estimate"]["error"].startswith(
        "made before the run was resumed with --force: the program changed (sha256:")


def test_resume_runs_only_rows_without_a_line(project: Path, capsys):
    run(["eval", "e.pflow", "quality", "-q"], capsys)
    [folder] = runs(project)
    lines = (folder / "results.jsonl").read_text().splitlines(keepends=True)
    kept = [x for x in lines if json.loads(x)["row"] != 5]
    (folder / "results.jsonl").write_text("".join(kept) + lines[-1][:10])  # a torn tail
    code, _, err = run(["eval", "e.pflow", "--resume", "last", "-q"], capsys)
    assert code == 0, err
    got = [json.loads(x)["row"] for x in (folder / "results.jsonl").read_text().splitlines()]
    assert sorted(got) == [1, 2, 3, 4, 5]
    (project / "crash.flag").unlink()
    code, _, _ = run(["eval", "e.pflow", "--resume", "last", "--retry-failed", "-q"], capsys)
    got = results(folder)
    assert got[3]["status"] == "ok"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["rows"]["failed"] == 0 and summary["rows"]["ok"] == 5
    assert summary["estimate"]["rows"] == 5  # made by the first session, kept by resumes


@pytest.mark.parametrize(("argv", "message"), [
    (["eval"], "pflow eval: name the .pflow file whose evals to run"),
    (["eval", "e.pflow", "nope"], "pflow eval: no eval 'nope' in e.pflow (evals: quality, strict)"),
    (["eval", "e.pflow", "--force"], "pflow eval: --force goes with --resume RUN"),
    (["eval", "e.pflow", "--retry-failed"], "pflow eval: --retry-failed goes with --resume"),
    (["eval", "e.pflow", "--resume", "nope"], "pflow eval: no runs in"),
    (["eval", "--show", "last"], "pflow eval: no runs in"),
    (["eval", "e.pflow", "--concurrency", "0"], "pflow eval: --concurrency must be at least 1"),
    (["eval", "e.pflow", "--map", "text=txet"], "pflow: unrecognized arguments: --map"),
])
def test_usage_errors_exit_2(project: Path, capsys, argv, message):
    code, _, err = run(argv, capsys)
    assert code == 2 and err.startswith(message), err
    assert not runs(project)


def test_a_file_without_evals(project: Path, capsys):
    (project / "n.pflow").write_text('prompt f(x: str) -> str = "{{ x }}"\n')
    code, _, err = run(["eval", "n.pflow"], capsys)
    assert code == 2 and "pflow eval: n.pflow declares no eval" in err


def test_evaluate_in_a_test_block_and_from_the_harness(project: Path, capsys):
    code, out, _ = run(["test", "e.pflow"], capsys)
    assert code == 0 and "PASS" in out
    h = Harness.load(project / "e.pflow")
    h.mock_handler("shout", "same")
    assert h.evaluate("strict") == {"rows": 5, "failed": 0, "metrics": {"exact": 0.2}}
    assert h.calls("shout") == 5
    h = Harness.load(project / "e.pflow")
    assert h.evaluate("quality") == {"rows": 5, "failed": 1,
                                     "metrics": {"exact": 0.75, "judged": 1.0}}
    assert not runs(project)  # no run folder


@pytest.mark.skipif(not (SHARED_EXAMPLES / "eval_triage.pflow").is_file(),
                    reason="spec examples not present")
def test_the_spec_eval_example_passes_its_tests(tmp_path: Path, capsys):
    shutil.copytree(SHARED_EXAMPLES, tmp_path / "ex", ignore=shutil.ignore_patterns(".pflow-cache"))
    code, out, err = run(["test", str(tmp_path / "ex" / "eval_triage.pflow")], capsys)
    assert code == 0, out + err
    assert "2 passed, 0 failed" in out


# ------------------------------------------------------------------ kill -9

HTTP_PROGRAM = '''
model default = "openai/fake" {{ api_base: "{base}", api_key: "sk-fake-0123456789" }}
type Row {{ id: int, text: str }}
prompt say(text: str) -> str = "say {{{{ text }}}}"
eval echoes {{
  data "rows.jsonl" as Row
  run say(text=row.text)
  metric ok = out == "say " + row.text
}}
'''


def _lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for raw in path.read_bytes().splitlines(keepends=True):
        if raw.endswith(b"\n"):
            out.append(json.loads(raw))
    return out


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_kill_9_mid_run_and_resume_records_every_row_once(tmp_path: Path, fake_openai):
    fake_openai.set_latency(0.05)
    n = 200  # about 1.7 s of requests: the kill lands mid-run even on a loaded machine
    (tmp_path / "pflow.toml").write_text("")
    (tmp_path / "e.pflow").write_text(HTTP_PROGRAM.format(base=fake_openai.base_url))
    (tmp_path / "rows.jsonl").write_text("".join(
        json.dumps({"id": i, "text": f"row-{i}"}) + "\n" for i in range(n)))
    argv = [sys.executable, "-m", "promptflow_dsl", "eval", "e.pflow", "-q",
            "--concurrency", "6"]
    env = {**os.environ, "PFLOW_DEBUG": "1"}
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    root = tmp_path / ".pflow-cache" / "evals"
    deadline = time.monotonic() + 60
    results_file = None
    while time.monotonic() < deadline:
        found = list(root.glob("*/results.jsonl")) if root.is_dir() else []
        if found and len(_lines(found[0])) >= 30:
            results_file = found[0]
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    settle = time.monotonic() + 10  # requests the killed process sent are still answered
    while fake_openai.in_flight and time.monotonic() < settle:
        time.sleep(0.01)
    time.sleep(0.1)
    assert results_file is not None, proc.stderr.read().decode() if proc.stderr else ""
    before = {line["row"] for line in _lines(results_file)}
    assert 30 <= len(before) < n
    asked_before = Counter(r["body"]["messages"][-1]["content"] for r in fake_openai.requests)

    run_id = results_file.parent.name
    resumed = subprocess.run([*argv[:-2], "--resume", run_id, "--concurrency", "6"],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    lines = _lines(results_file)
    rows = [line["row"] for line in lines]
    assert sorted(rows) == list(range(1, n + 1))  # every row exactly once
    assert all(line["status"] == "ok" and line["metrics"] == {"ok": True} for line in lines)
    asked = Counter(r["body"]["messages"][-1]["content"] for r in fake_openai.requests)
    assert set(asked) == {f"say row-{i}" for i in range(n)}
    twice = {text for text, k in asked.items() if k > 1}
    # a row recorded before the kill was never asked again
    assert all(asked[f"say row-{line - 1}"] == 1 for line in before)
    # a row asked twice was in flight at the kill: asked before, with no line then
    assert all(asked_before[t] == 1 for t in twice) and len(twice) <= 6
    # a row answered before the kill but not recorded came from the response cache
    by_row = {line["row"]: line for line in lines}
    for text, k in asked_before.items():
        row = int(text.removeprefix("say row-")) + 1
        if row not in before and k == 1 and asked[text] == 1:
            assert by_row[row]["usage"]["cache_hits"] == 1
    summary = json.loads((results_file.parent / "summary.json").read_text())
    assert summary["rows"] == {"total": n, "ok": n, "failed": 0, "pending": 0}
    meta = json.loads((results_file.parent / "meta.json").read_text())
    assert len(meta["sessions"]) == 1


# ------------------------------------------------------------------ unknown usage

UNKNOWN_USAGE_PROGRAM = '''
model default = "openai/fake" {{ api_base: "{base}", api_key: "sk-fake-0123456789", num_retries: 0 }}
type Row {{ id: int, text: str }}
tool noop(x: str) -> str = python "tools:noop"
hook never {{
  when r"never-seen(?=\\s)"
  run noop(x=text)
}}
prompt tell(text: str) -> str {{
  user "{{{{ text }}}}"
  hooks [never]
}}
eval told {{
  data "rows.jsonl" as Row
  run tell(text=row.text)
  metric ok = out == row.text
}}
'''


def test_calls_without_usage_are_counted_as_unknown_in_the_summary(tmp_path: Path, fake_openai,
                                                                   capsys, monkeypatch):
    """A server that ignores stream_options.include_usage: the summary and the closing
    line say how many calls reported no tokens, so the token count reads as a lower
    bound, never as the whole."""
    fake_openai.stream_usage = False
    (tmp_path / "pflow.toml").write_text("")
    (tmp_path / "tools.py").write_text("def noop(x):\n    return x\n")
    (tmp_path / "e.pflow").write_text(UNKNOWN_USAGE_PROGRAM.format(base=fake_openai.base_url))
    (tmp_path / "rows.jsonl").write_text("".join(
        json.dumps({"id": i, "text": f"row {i}"}) + "\n" for i in range(3)))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["eval", "e.pflow", "--cache", "off"]) == 0
    out = capsys.readouterr().out
    assert "usage unknown for 3 calls" in out, out
    (folder,) = (tmp_path / ".pflow-cache" / "evals").iterdir()
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["usage_unknown"] == 3
    assert summary["rows"]["ok"] == 3
    lines = _lines(folder / "results.jsonl")
    assert [line["usage"]["usage_unknown"] for line in lines] == [1, 1, 1]
