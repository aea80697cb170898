"""``pflow test --record`` records a completion prompt's call keyed on its raw text, and
a later ``pflow test`` replays it offline; a changed text no longer matches."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from promptflow_dsl import cli

LIVE = '''model default = "openai/fake" {{ api_base: "{base}", completion: true }}
prompt answer(question: str) -> str {{
  completion "{lead}Q: {{{{ question }}}}\\nA:"
  stop "\\n"
}}
test "answer live" live {{
  expect answer(question="Capital of France?") == "Paris"
}}
'''


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main(argv)
    return code, capsys.readouterr().out


def test_record_then_replay_a_completion(tmp_path: Path, fake_openai: Any,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    fake_openai.set_replies([" Paris"])
    path = tmp_path / "live.pflow"
    path.write_text(LIVE.format(base=fake_openai.base_url, lead=""), encoding="utf-8")
    code, out = run_cli(["test", "--record", str(path)], capsys)
    assert code == 0, out
    assert [r["path"] for r in fake_openai.requests] == ["/v1/completions"]
    recording = json.loads(path.with_name("live.pflow.replay.json").read_text())
    [call] = [c for c in recording["tests"]["answer live"] if c["kind"] != "capabilities"]
    assert call["kind"] == "complete" and call["reply"] == " Paris"
    code, out = run_cli(["test", str(path)], capsys)
    assert code == 0 and "1 passed, 0 failed" in out, out
    assert fake_openai.count == 1  # replayed offline
    path.write_text(LIVE.format(base=fake_openai.base_url, lead="Answer briefly.\\n"),
                    encoding="utf-8")
    code, out = run_cli(["test", str(path)], capsys)
    assert code == 1 and "differs from the recording" in out, out
