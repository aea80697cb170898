"""``pflow test --record`` with a hooked prompt whose continuation is a raw completion in
the server's own chat template: the model continues while recording exactly as in a
live run (the server gets its template, never ChatML), and the recording holds the
continuation in the program's terms (kind ``continue``), so it replays offline after
the template, or the server the model points at, changed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from promptflow_dsl.cli import main

TEMPLATE = ("{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>"
            "{{ m.content }}<|eot_id|>{% endfor %}<|start_header_id|>assistant<|end_header_id|>")

PROGRAM = '''
model default = "openai/fake" {{ api_base: "{base}", server: "llama-cpp-python",
                                 completion: true, chat_template: "{template}" }}
tool times(a: str, b: str) -> str = python "tools:times"
hook calc {{
  when r"(?P<a>\\d+) \\* (?P<b>\\d+) ="
  run times(a=a, b=b)
  action insert
}}
prompt work(x: str) -> str {{
  user "Compute {{{{ x }}}}."
  hooks [calc]
}}
test "calc live" live {{
  out = work(x="6 * 7")
  expect out contains "42"
}}
'''


def reply(body: dict[str, Any]) -> str:
    if "prompt" in body:  # the raw-completion continuation
        return " so that is the answer."
    return "We get 6 * 7 = 40 or so."


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().out


def write(path: Path, base: str, template: str) -> None:
    path.write_text(PROGRAM.format(base=base, template=template.replace('"', '\\"')))


def test_a_continuation_is_recorded_in_the_programs_terms(tmp_path, fake_openai, capsys,
                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tools.py").write_text("def times(a, b):\n    return ' ' + str(int(a) * int(b))\n")
    path = tmp_path / "live.pflow"
    write(path, fake_openai.base_url, TEMPLATE)
    fake_openai.set_reply(reply)
    code, out = run_cli(["test", "--record", str(path)], capsys)
    assert code == 0, out
    # recording ran the model as a live run does: a chat stream, then a raw completion of
    # the server's own template (not ChatML, not a continuation prompt)
    posts = [(r["path"], r["body"]) for r in fake_openai.requests if r["method"] == "POST"]
    assert [p for p, _ in posts] == ["/v1/chat/completions", "/v1/completions"]
    prompt = posts[1][1]["prompt"]
    assert prompt.startswith("<|start_header_id|>user<|end_header_id|>Compute 6 * 7.<|eot_id|>")
    assert prompt.endswith("<|start_header_id|>assistant<|end_header_id|>We get 6 * 7 = 42")
    assert "<|im_start|>" not in prompt and "<|eot_id|>" in posts[1][1]["stop"]
    data = json.loads(path.with_name("live.pflow.replay.json").read_text())
    calls = [c for c in data["tests"]["calc live"] if c["kind"] != "capabilities"]
    assert [c["kind"] for c in calls] == ["stream", "continue"]
    assert calls[1]["reply"] == " so that is the answer."
    sent = fake_openai.count

    code, out = run_cli(["test", str(path)], capsys)
    assert code == 0 and "1 passed" in out, out
    # another chat template, and a server that is not there: replayed all the same
    write(path, "http://127.0.0.1:9/v1", TEMPLATE.replace("start_header_id", "turn"))
    code, out = run_cli(["test", str(path)], capsys)
    assert code == 0 and "1 passed" in out, out
    assert fake_openai.count == sent  # offline


def test_a_changed_continuation_is_detected(tmp_path, fake_openai, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tools.py").write_text("def times(a, b):\n    return ' ' + str(int(a) * int(b))\n")
    path = tmp_path / "live.pflow"
    write(path, fake_openai.base_url, TEMPLATE)
    fake_openai.set_reply(reply)
    assert run_cli(["test", "--record", str(path)], capsys)[0] == 0
    # the hook now writes another text: the continuation's request differs
    (tmp_path / "tools2.py").write_text("def times(a, b):\n    return ' ' + str(int(a) * int(b)) + '!'\n")
    path.write_text(path.read_text().replace('python "tools:times"', 'python "tools2:times"'))
    code, out = run_cli(["test", str(path)], capsys)
    assert code == 1 and "call 2 of model 'default' differs from the recording" in out, out
