"""The pflow command line: exit statuses, output forms, start-up imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from corpus_paths import SHARED_EXAMPLES
from pflow_cli import run

GOOD = 'prompt greet(name: str) -> str = "Say hello to {{ name }}."\n'
BAD = 'flow f(x: str) -> int {\n  return x\n}\n'


def test_check_ok(tmp_path: Path, capsys):
    (tmp_path / "g.pflow").write_text(GOOD)
    code, out, err = run(["check", str(tmp_path / "g.pflow")], capsys)
    assert code == 0 and "ok (1 handler, 0 tests)" in out and err == ""


def test_check_error_exit_2_with_caret(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("b.pflow").write_text(BAD)
    code, out, err = run(["check", "b.pflow"], capsys)
    assert code == 2
    assert err.splitlines()[:3] == [
        "b.pflow:2:10: error: flow 'f' returns int, but this is str",
        "    return x",
        "           ^",
    ]
    assert err.rstrip().endswith("b.pflow: 1 error")


def test_check_json_format(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("b.pflow").write_text(BAD)
    Path("g.pflow").write_text(GOOD)
    code, out, _ = run(["check", "--format", "json", "b.pflow", "g.pflow"], capsys)
    report = json.loads(out)
    assert code == 2
    assert report[0]["ok"] is False and report[0]["diagnostics"][0]["line"] == 2
    assert report[1]["handlers"] == {"greet": "greet(name: str) -> str"}


def test_strict_turns_warnings_into_failure(tmp_path: Path, capsys):
    f = tmp_path / "w.pflow"
    f.write_text('flow f(x: str, y: str) -> str { return x }\n')
    assert run(["check", str(f)], capsys)[0] == 0
    assert run(["check", "--strict", str(f)], capsys)[0] == 2


def test_missing_file_and_bad_usage_exit_2(tmp_path: Path, capsys):
    code, _, err = run(["check", str(tmp_path / "nope.pflow")], capsys)
    assert code == 2 and "no such file" in err
    code, _, err = run(["frobnicate"], capsys)
    assert code == 2 and "invalid choice" in err
    code, _, _ = run([], capsys)
    assert code == 2


def test_graph_formats(tmp_path: Path, capsys):
    f = tmp_path / "g.pflow"
    f.write_text(GOOD + 'flow twice(n: str) -> list[str] {\n  return [greet(name=x) for x in [n, n]]\n}\n')
    for fmt in ("mermaid", "dot", "json"):
        code, out, err = run(["graph", str(f), "twice", "--format", fmt], capsys)
        assert code == 0, err
        assert "greet" in out
    code, _, err = run(["graph", str(f), "nosuch"], capsys)
    assert code == 2 and "no handler 'nosuch'" in err


def test_internal_error_is_one_line_and_exit_70(tmp_path: Path, capsys, monkeypatch):
    f = tmp_path / "g.pflow"
    f.write_text(GOOD)

    def boom(*a, **k):
        raise RuntimeError("kaput")

    monkeypatch.setattr("promptflow_dsl.load", boom)
    code, _, err = run(["check", str(f)], capsys)
    assert code == 70
    assert err.strip().splitlines() == [
        "pflow: internal error: RuntimeError: kaput -- this is a bug in pflow; set PFLOW_DEBUG=1 "
        "for the traceback"]


@pytest.mark.skipif(not SHARED_EXAMPLES.is_dir(), reason="spec examples not present")
def test_spec_examples_check_via_subprocess():
    files = [str(p) for p in sorted(SHARED_EXAMPLES.glob("*.pflow"))]
    r = subprocess.run([sys.executable, "-m", "promptflow_dsl", "check", *files],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count(": ok (") == len(files)


def test_import_and_check_do_not_import_litellm_or_networkx(tmp_path: Path):
    f = tmp_path / "g.pflow"
    f.write_text(GOOD)
    code = ("import sys, promptflow_dsl as pf; pf.load(sys.argv[1]);"
            "from promptflow_dsl import cli; cli.main(['check', '-q', sys.argv[1]]);"
            "bad = [m for m in ('litellm', 'networkx', 'openai') if m in sys.modules];"
            "print(','.join(bad))")
    r = subprocess.run([sys.executable, "-c", code, str(f)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ""


def test_graph_does_not_import_networkx_until_plan_graph_is_used(tmp_path: Path):
    f = tmp_path / "g.pflow"
    f.write_text(GOOD)
    code = "\n".join([
        "import sys, contextlib, io",
        "from promptflow_dsl import cli",
        "with contextlib.redirect_stdout(io.StringIO()):",
        "    for fmt in ('mermaid', 'dot', 'json'):",
        "        assert cli.main(['graph', sys.argv[1], 'greet', '--format', fmt]) == 0",
        "before = 'networkx' in sys.modules",
        "import promptflow_dsl as pf",
        "g = pf.load(sys.argv[1]).plan('greet').graph",
        "print(before, 'networkx' in sys.modules, type(g).__name__, g.number_of_nodes())"])
    r = subprocess.run([sys.executable, "-c", code, str(f)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    before, after, kind, nodes = r.stdout.split()
    assert (before, after, kind) == ("False", "True", "DiGraph") and int(nodes) >= 2


RUNNABLE = '''model default = "echo"
prompt greet(name: str) -> str = "Hello {{ name }}"
tool boom(x: int) -> int = python "t:boom"
flow many(names: list[str], n: int = 1) -> {greetings: list[str], n: int} {
  return {greetings: [greet(name=x) for x in names], n: n}
}
flow broken(x: int) -> int { return boom(x=x) }
'''


@pytest.fixture
def runnable(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pflow.toml").write_text("")
    (tmp_path / "t.py").write_text("def boom(x):\n    raise RuntimeError(f'bad {x}')\n")
    (tmp_path / "r.pflow").write_text(RUNNABLE)
    return tmp_path / "r.pflow"


def test_run_prints_text_and_json(runnable: Path, capsys):
    code, out, err = run(["run", "r.pflow", "greet", "--input", "name=Ada"], capsys)
    assert code == 0 and out == "Hello Ada\n"
    assert "ok in" in err and "trace .pflow-cache/traces/" in err
    code, out, _ = run(["run", "r.pflow", "many", "-i", 'names=["a","b"]', "-i", "n=3"], capsys)
    assert code == 0 and json.loads(out) == {"greetings": ["Hello a", "Hello b"], "n": 3}
    code, out, _ = run(["run", "r.pflow", "many", "--input-json", '{"names": ["z"]}', "-q"], capsys)
    assert json.loads(out)["greetings"] == ["Hello z"]


def test_run_input_errors_exit_2(runnable: Path, capsys):
    code, _, err = run(["run", "r.pflow", "many", "-i", "names=oops"], capsys)
    assert code == 2 and "input 'names' must be list[str] written as JSON" in err
    code, _, err = run(["run", "r.pflow", "many"], capsys)
    assert code == 2 and "missing input 'names'" in err
    code, _, err = run(["run", "r.pflow", "many", "-i", "names=[]", "-i", "zz=1"], capsys)
    assert code == 2 and "no parameter 'zz'" in err
    code, _, err = run(["run", "r.pflow"], capsys)
    assert code == 2 and "name the handler to run" in err
    code, _, err = run(["run", "r.pflow", "greet", "--model", "=x"], capsys)
    assert code == 2


def test_run_failure_exit_1_with_location_and_user_traceback(runnable: Path, capsys):
    code, out, err = run(["run", "r.pflow", "broken", "-i", "x=4"], capsys)
    assert code == 1 and out == ""
    assert "r.pflow:3:6: error: tool 'boom' raised RuntimeError: bad 4" in err
    assert "r.pflow:7:37: note: in this call of 'boom'" in err
    assert 't.py", line 2, in boom' in err and "promptflow_dsl" not in err
    assert "pflow trace show" in err


def test_trace_show_and_list_and_cache(runnable: Path, capsys):
    run(["run", "r.pflow", "greet", "-i", "name=Bo"], capsys)
    code, out, _ = run(["trace", "show", "last"], capsys)
    assert code == 0 and "greet" in out and "prompt" in out
    code, out, _ = run(["trace", "list"], capsys)
    assert code == 0 and len(out.split()) == 1
    code, _, err = run(["trace", "show", "nope"], capsys)
    assert code == 2
    code, out, _ = run(["cache", "info"], capsys)
    assert code == 0 and "entries: 1" in out
    code, out, _ = run(["cache", "clear"], capsys)
    assert code == 0 and "removed 1 entry" in out
    run(["run", "r.pflow", "greet", "-i", "name=Bo", "--no-cache"], capsys)
    code, out, _ = run(["cache", "info"], capsys)
    assert "entries: 0" in out


KEYED = 'model m = "openai/x" { api_key: "sk-abc123", temprature: 0 }\n' + GOOD


def test_api_key_value_is_masked_on_diagnostic_lines(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("k.pflow").write_text(KEYED)
    code, out, err = run(["check", "k.pflow"], capsys)
    assert code == 0 and "sk-abc123" not in out + err
    assert err.splitlines()[:3] == [
        "k.pflow:1:46: warning: unknown model parameter 'temprature'; did you mean 'temperature'?",
        '  model m = "openai/x" { api_key: "*********", temprature: 0 }',
        "                                               ^~~~~~~~~~~~~",  # the caret stays in place
    ]
    code, out, err = run(["check", "--format", "json", "k.pflow"], capsys)
    assert code == 0 and json.loads(out)[0]["diagnostics"][0]["line"] == 1
    assert "sk-abc123" not in out + err
    Path("k.pflow").write_text('model m = "" { api_key: "sk-abc123" }\n')  # an error on the line
    code, out, err = run(["check", "k.pflow"], capsys)
    assert code == 2 and "sk-abc123" not in out + err
    assert '  model m = "" { api_key: "*********" }' in err.splitlines()


def test_check_a_folder_checks_every_pflow_file_under_it(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, text in {"proj/a.pflow": GOOD, "proj/sub/b.pflow": BAD, "proj/sub/deeper/c.pflow": GOOD,
                       "proj/.hidden/h.pflow": BAD, "proj/.venv/v.pflow": BAD,
                       "proj/notes.txt": "not a program"}.items():
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        Path(name).write_text(text)
    code, out, err = run(["check", "proj"], capsys)
    assert code == 2
    assert out.splitlines() == ["proj/a.pflow: ok (1 handler, 0 tests)",
                                "proj/sub/deeper/c.pflow: ok (1 handler, 0 tests)"]
    assert "proj/sub/b.pflow:2:10: error: flow 'f' returns int, but this is str" in err
    assert "h.pflow" not in err and "v.pflow" not in err  # found as `pflow test` finds them
    # a file named and found in a named folder is checked once; JSON lists every file
    code, out, _ = run(["check", "--format", "json", "proj/a.pflow", "proj"], capsys)
    assert [r["file"] for r in json.loads(out)] == ["proj/a.pflow", "proj/sub/b.pflow",
                                                    "proj/sub/deeper/c.pflow"]
    Path("proj/sub/b.pflow").write_text(GOOD)
    code, out, err = run(["check", "-q", "proj"], capsys)
    assert code == 0 and out == "" and err == ""


def test_check_an_empty_folder_is_a_usage_error(tmp_path: Path, capsys):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "readme.txt").write_text("no programs here")
    code, out, err = run(["check", str(tmp_path / "empty")], capsys)
    assert code == 2 and out == ""
    assert err.strip() == f"pflow check: no .pflow files in {tmp_path / 'empty'}"


WARNED = '''model default = "echo"
prompt greet(name: str, tone: str = "warm") -> str = "Hello {{ name }}"
flow twice(a: str, unused: str = "") -> list[str] { return [greet(name=a), greet(name=a)] }
test "greets" {
  expect greet(name="Ada") == "Hello Ada"
}
'''


def test_run_and_test_count_the_warnings_on_stderr(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("w.pflow").write_text(WARNED)
    hint = "2 warnings; `pflow check w.pflow` shows them"
    code, out, err = run(["run", "w.pflow", "greet", "-i", "name=Bo", "--no-trace"], capsys)
    assert code == 0 and out == "Hello Bo\n"  # stdout carries only the result
    assert err.splitlines()[0] == hint and err.count("warning") == 1
    code, out, err = run(["test", "w.pflow"], capsys)
    assert code == 0 and "1 passed, 0 failed" in out and "warning" not in out
    assert err.splitlines() == [hint]
    # -v shows the warnings themselves; -q neither
    code, _, err = run(["run", "w.pflow", "greet", "-i", "name=Bo", "--no-trace", "-v"], capsys)
    assert "w.pflow:2:25: warning: parameter 'tone'" in err and "shows them" not in err
    code, _, err = run(["run", "w.pflow", "greet", "-i", "name=Bo", "--no-trace", "-q"], capsys)
    assert err == ""
    code, _, err = run(["test", "-q", "w.pflow"], capsys)
    assert err == ""
    # one warning; a path that needs quoting is quoted
    Path("one warning.pflow").write_text(WARNED.replace(', tone: str = "warm"', ""))
    code, out, err = run(["run", "one warning.pflow", "greet", "-i", "name=Bo", "--no-trace"], capsys)
    assert err.splitlines()[0] == "1 warning; `pflow check 'one warning.pflow'` shows them"
    # a failed run still says so; no warnings, no line
    code, _, err = run(["run", "w.pflow", "greet", "--no-trace"], capsys)
    assert code == 2 and err.splitlines()[0] == hint
    Path("clean.pflow").write_text(GOOD)
    code, _, err = run(["test", "clean.pflow"], capsys)
    assert "warning" not in err


def test_test_counts_the_warnings_of_each_file(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("t").mkdir()
    Path("t/a.pflow").write_text(WARNED)
    Path("t/b.pflow").write_text(WARNED.replace(', tone: str = "warm"', ""))
    Path("t/c.pflow").write_text(GOOD)
    code, out, err = run(["test", "t"], capsys)
    assert code == 0 and "2 passed, 0 failed" in out
    assert err.splitlines() == ["2 warnings; `pflow check t/a.pflow` shows them",
                                "1 warning; `pflow check t/b.pflow` shows them"]
