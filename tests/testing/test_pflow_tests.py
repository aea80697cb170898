"""Tests in the language: pflow test, the pytest plugin, record/replay, the Python harness."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from corpus_paths import REPO
from pflow_cli import run as run_cli

from promptflow_dsl.runtime import RunError
from promptflow_dsl.testing.harness import Harness

SEMANTICS = REPO / "tests" / "pflow" / "runtime_semantics.pflow"
TOOLS = REPO / "tests" / "pflow" / "pflow_tools.py"


@pytest.fixture
def broken(tmp_path: Path) -> tuple[Path, int]:
    """A copy of the runtime .pflow tests with one expectation made wrong; returns the file
    and the line of the broken `expect`."""
    text = SEMANTICS.read_text()
    target = 'expect out == "positive: fine"'
    assert target in text
    text = text.replace(target, 'expect out == "positive: FINE"')
    line = text[: text.index('expect out == "positive: FINE"')].count("\n") + 1
    (tmp_path / "pflow_tools.py").write_text(TOOLS.read_text())
    path = tmp_path / "broken.pflow"
    path.write_text(text)
    return path, line


def test_pflow_test_passes_the_suite_files(capsys):
    code, out, _ = run_cli(["test", str(SEMANTICS)], capsys)
    assert code == 0, out
    assert out.strip().splitlines()[-1] == "9 passed, 0 failed"


def test_broken_copy_fails_at_its_line(broken, capsys):
    path, line = broken
    code, out, _ = run_cli(["test", str(path)], capsys)
    assert code == 1
    assert f"{path}:{line}:3: error: expect failed: \"positive: fine\" == \"positive: FINE\" is false" \
        in out
    assert out.strip().splitlines()[-1] == "8 passed, 1 failed"


def test_k_pattern_and_no_tests(tmp_path, capsys):
    code, out, _ = run_cli(["test", str(SEMANTICS), "-k", "branch and not retried"], capsys)
    assert code == 0 and out.strip().splitlines()[-1] == "1 passed, 0 failed"
    empty = tmp_path / "none.pflow"
    empty.write_text('prompt p(x: str) -> str = "{{ x }}"\n')
    code, out, _ = run_cli(["test", str(empty)], capsys)
    assert code == 0 and out.startswith("no tests in")


def test_pytest_plugin_reports_pflow_location_junit_and_k(broken, tmp_path):
    path, line = broken
    junit = tmp_path / "junit.xml"
    r = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(path),
                        f"--junitxml={junit}", "-q"], capture_output=True, text=True,
                       cwd=tmp_path)
    assert r.returncode == 1
    assert f"broken.pflow:{line}:3: error: expect failed" in r.stdout
    assert "Traceback" not in r.stdout and "promptflow_dsl/" not in r.stdout
    assert "1 failed, 8 passed" in r.stdout
    xml = junit.read_text()
    assert xml.count("<testcase") == 9 and xml.count("<failure") == 1
    r = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(path),
                        "-q", "-k", "taken"], capture_output=True, text=True, cwd=tmp_path)
    assert "1 failed, 1 passed, 7 deselected" in r.stdout
    r = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(path),
                        "-q", "-x"], capture_output=True, text=True, cwd=tmp_path)
    assert "1 failed, 1 passed" in r.stdout


def test_a_file_that_does_not_compile_is_a_collection_error(tmp_path):
    bad = tmp_path / "bad.pflow"
    bad.write_text('flow f(x: str) -> int { return x }\ntest "t" { expect 1 == 1 }\n')
    r = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(bad), "-q"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode != 0
    assert "bad.pflow:1:32: error: flow 'f' returns int, but this is str" in r.stdout


LIVE = '''model default = "openai/fake" {{ api_base: "{base}", api_key_env: "PFLOW_FAKE_KEY" }}
prompt hello(name: str) -> str = "{greeting} {{{{ name }}}}"
test "hello live" live {{
  out = hello(name="Ada")
  expect out contains "Ada"
}}
test "offline" {{
  mock model default replies ["x"]
  expect hello(name="b") == "x"
}}
'''


def test_record_then_replay_offline_then_detect_a_changed_prompt(tmp_path, fake_openai, capsys,
                                                                  monkeypatch):
    monkeypatch.setenv("PFLOW_FAKE_KEY", "sk-fake-key-for-recording-0001")
    path = tmp_path / "live.pflow"
    path.write_text(LIVE.format(base=fake_openai.base_url, greeting="Hello"))
    code, out, _ = run_cli(["test", str(path)], capsys)
    assert code == 0 and "SKIP" in out and "1 passed, 0 failed, 1 skipped" in out
    assert fake_openai.count == 0
    code, out, _ = run_cli(["test", "--record", str(path)], capsys)
    assert code == 0, out
    assert fake_openai.count == 1
    recording = path.with_name("live.pflow.replay.json")
    data = json.loads(recording.read_text())
    assert data["tests"]["hello live"][-1]["reply"] == "Hello Ada"
    assert "sk-fake" not in recording.read_text()
    code, out, _ = run_cli(["test", str(path)], capsys)
    assert code == 0 and "2 passed, 0 failed" in out
    assert fake_openai.count == 1  # replayed offline
    path.write_text(LIVE.format(base=fake_openai.base_url, greeting="Hi"))
    code, out, _ = run_cli(["test", str(path)], capsys)
    assert code == 1
    assert "differs from the recording" in out and "pflow test --record" in out


def test_python_harness(tmp_path):
    (tmp_path / "pflow_tools.py").write_text(TOOLS.read_text())
    (tmp_path / "p.pflow").write_text(SEMANTICS.read_text())
    h = Harness.load(tmp_path / "p.pflow")
    h.mock_model("default", ['{"label": "negative", "reason": "late"}'])
    assert h.run("label_or_skip", review="x") == "negative: LATE"
    assert h.calls("classify") == 1 and h.calls("shout") == 1
    h.mock_handler("words", ["word1", "word2"]).mock_model("default", ["r1", "r2"], handler="answer")
    assert h.run("per_word", text="ignored") == ["r1", "r2"]
    assert [c.handler for c in h.model_calls("default")] == ["classify", "answer", "answer"]
    with pytest.raises(RunError, match="is not mocked"):
        h.run("elsewhere", q="x")
    h.reset()
    assert h.calls("classify") == 0


def test_pflow_fixture(pflow, tmp_path):
    (tmp_path / "pflow_tools.py").write_text(TOOLS.read_text())
    (tmp_path / "p.pflow").write_text(SEMANTICS.read_text())
    h = pflow(tmp_path / "p.pflow")
    h.mock_model("default", ["fine"])
    assert h.run("answer", q="?") == "fine"
