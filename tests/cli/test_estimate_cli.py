"""``pflow estimate``: the table, ``--json``, row selection, and bad input (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pflow_cli import run

PROGRAM = """model default = "echo"
type V { label: "good" | "bad" }
prompt rate(review: str) -> V = "Rate: {{ review }}"
prompt reply(review: str) -> str = "Reply to: {{ review }}"
flow triage(review: str) -> str {
  v = rate(review=review)
  r = reply(review=review) if v.label == "bad" else "thanks"
  return r
}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    Path("t.pflow").write_text(PROGRAM, encoding="utf-8")
    Path("rows.jsonl").write_text("".join(json.dumps({"text": t}) + "\n"
                                          for t in ("Great.", "Broke at once.", "Fine.")),
                                  encoding="utf-8")
    return tmp_path


def test_the_table(project, capsys):
    code, out, err = run(["estimate", "t.pflow", "triage", "--data", "rows.jsonl",
                          "--map", "review=text"], capsys)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == "handler triage: 3 rows of rows.jsonl"
    assert lines[2].split() == ["handler", "model", "calls", "input", "tokens", "output",
                                "typical", "output", "max", "cost"]
    assert lines[3].split()[:3] == ["rate", "echo", "3..9"]
    assert lines[4].split()[:3] == ["reply", "echo", "0..3"]
    assert lines[5].split()[:2] == ["total", "3..12"]
    assert "echo: token counts are an approximation (4 characters per token)" in out


def test_json(project, capsys):
    code, out, _ = run(["estimate", "t.pflow", "triage", "--data", "rows.jsonl",
                        "--map", "review=text", "--limit", "2", "--json"], capsys)
    assert code == 0
    got = json.loads(out)
    assert got["format"] == "pflow-estimate/1"
    assert got["target"] == {"kind": "handler", "name": "triage"}
    assert got["data"] == {"path": "rows.jsonl", "rows": 2, "estimated_rows": 2}
    assert got["total"]["calls"] == {"min": 2, "max": 8}
    assert got["total"]["cost"] == {"low": 0.0, "high": 0.0, "currency": "USD"}
    assert [h["handler"] for h in got["handlers"]] == ["rate", "reply"]
    assert got["models"]["echo"] == {"tokenizer": "approximation (4 characters per token)",
                                     "exact_tokens": False,
                                     "price": {"input_per_token": 0.0, "output_per_token": 0.0}}


def test_without_data_the_inputs_are_unknown(project, capsys):
    code, out, _ = run(["estimate", "t.pflow", "triage", "-m", "echo"], capsys)
    assert code == 0
    assert out.startswith("handler triage: one call, without data")
    assert "fixed text only, a lower bound" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["triag"], "pflow estimate: no handler or eval 'triag'; did you mean 'triage'? "
                "(handlers: rate, reply, triage)"),
    (["triage", "--data", "nope.jsonl"], "pflow estimate: nope.jsonl: no such file"),
    (["triage", "--data", "rows.jsonl"], "pflow estimate: rows.jsonl:1: no column for parameter "
                                         "'review' of triage(review: str) -> str; columns: text "
                                         "(add the column, or --map PARAM=COLUMN)"),
    (["triage", "--data", "rows.jsonl", "--map", "nope=text"],
     "pflow estimate: --map nope=text: triage has no parameter 'nope' (parameters: review)"),
    (["triage", "--data", "rows.jsonl", "--map", "review=txt"],
     "pflow estimate: rows.jsonl:1: no column 'txt' (for --map review=txt); did you mean "
     "'text'? (columns: text)"),
    (["triage", "--data", "rows.jsonl", "--map", "review"],
     "pflow estimate: --map expects PARAM=COLUMN, got 'review'"),
    (["triage", "--limit", "2"], "pflow estimate: --limit needs --data"),
    (["triage", "--data", "rows.jsonl", "--limit", "1", "--sample", "1"],
     "pflow estimate: --limit and --sample cannot be used together"),
    (["triage", "--data", "rows.jsonl", "--max-rows", "0"],
     "pflow estimate: --max-rows must be at least 1"),
])
def test_bad_input_exits_2_with_one_line(project, capsys, argv, message):
    code, out, err = run(["estimate", "t.pflow", *argv], capsys)
    assert (code, out) == (2, "")
    assert err.strip() == message


def test_a_bad_row_is_located(project, capsys):
    Path("bad.jsonl").write_text('{"review": "ok"}\n{"review": \n', encoding="utf-8")
    code, _, err = run(["estimate", "t.pflow", "triage", "--data", "bad.jsonl"], capsys)
    assert code == 2 and err.startswith("pflow estimate: bad.jsonl:2")


def test_a_program_with_errors_exits_2(project, capsys):
    Path("b.pflow").write_text('prompt p(x: str) -> str = "{{ y }}"\n', encoding="utf-8")
    code, _, err = run(["estimate", "b.pflow", "p"], capsys)
    assert code == 2 and "b.pflow:1:" in err
