"""``pflow eval --html``: the report of a run and of two runs compared, its links to
the rows' traces, escaping, and the option errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from report_fixtures import make_eval_run

from promptflow_dsl import cli
from promptflow_dsl.report.eval_report import RunData, eval_report

A, B = "20261204T100000.000Z-aaaaaa", "20261204T110000.000Z-bbbbbb"


@pytest.fixture
def project(tmp_path: Path, monkeypatch) -> Path:
    (tmp_path / "pyproject.toml").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PFLOW_TRACE_DIR", raising=False)
    root, traces = tmp_path / ".pflow-cache" / "evals", tmp_path / ".pflow-cache" / "traces"
    make_eval_run(root, A, traces)
    make_eval_run(root, B, traces, flip=True)
    return tmp_path


def data_ids(html: str) -> set[str]:
    m = re.search(r'<script id="pflow-data" type="application/json">(.*?)</script>', html, re.S)
    assert m
    return {s["id"] for s in json.loads(m.group(1))["steps"]}


def test_show_html_writes_the_report_and_the_trace_page(project: Path, capsys):
    assert cli.main(["eval", "--show", "last", "--html"]) == 0
    out, err = capsys.readouterr()
    folder = project / ".pflow-cache" / "evals" / B
    report = folder / "report.html"
    assert f"report: {report.relative_to(project)}" in err
    assert "eval quiz · run" in out  # the text summary is still printed
    html = report.read_text()
    assert "metric means with 95% intervals" in html and "[0.100, 0.900]" in html
    assert "latency per row (4 values)" in html and "cost per row (4 values)" in html
    assert "threshold exact &gt;= 0.5: 0.5 (passed)" in html
    # the row table: fields, gold fields apart, output, metrics, a link to each trace
    assert "<b>answer</b>: Paris" in html and "out 3" in html and "✗ false" in html
    links = re.findall(r'href="([^"#]+)#(row-\d+)"', html)
    assert [row for _, row in links] == ["row-1", "row-2", "row-3", "row-4"]
    page = folder / links[0][0]
    assert page.is_file()
    assert {row for _, row in links} <= data_ids(page.read_text())
    # user text is escaped everywhere
    assert "<script>window.__pwned" not in html
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in html


def test_compare_html_shows_changed_rows_side_by_side(project: Path, capsys, tmp_path: Path):
    out_file = tmp_path / "out" / "cmp.html"
    out_file.parent.mkdir()
    assert cli.main(["eval", "--show", B, "--compare", A, "--html", "-o", str(out_file)]) == 0
    html = out_file.read_text()
    assert f"run {B} compared with run {A}" in html
    assert "paired difference (after − before)" in html
    changed = html.split("<h2>Rows that changed</h2>")[1].split("<h2>")[0]
    assert changed.count("<tr>") == 2  # the header and row 2
    assert 'class="changed">true → false' in changed
    assert f'cmp.trace-{A}.html#row-2' in changed and f'cmp.trace-{B}.html#row-2' in changed
    assert (out_file.parent / f"cmp.trace-{A}.html").is_file()


def test_report_of_a_run_without_traces_has_no_links(project: Path, capsys):
    for p in (project / ".pflow-cache" / "traces").glob("*.json"):
        p.unlink()
    assert cli.main(["eval", "--show", A, "--html"]) == 0
    html = (project / ".pflow-cache" / "evals" / A / "report.html").read_text()
    assert "href=" not in html.split("<h2>Rows")[1]
    assert not list((project / ".pflow-cache" / "evals" / A).glob("report.trace-*"))


@pytest.mark.parametrize("argv, message", [
    (["--show", "last", "-o", "x.html"], "-o/--output and --open go with --html"),
    (["--show", "last", "--open"], "-o/--output and --open go with --html"),
    (["--list", "--html"], "--html goes with --show RUN"),
    (["--show", "nope", "--html"], "no run"),
])
def test_option_errors_exit_2(project: Path, capsys, argv, message):
    assert cli.main(["eval", *argv]) == 2
    assert message in capsys.readouterr().err


def test_output_that_is_a_folder_exits_2(project: Path, capsys):
    assert cli.main(["eval", "--show", "last", "--html", "-o", str(project)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_many_rows_are_capped(monkeypatch):
    import promptflow_dsl.report.eval_report as er

    monkeypatch.setattr(er, "MAX_ROWS_SHOWN", 3)
    rows = [{"row": i, "status": "ok", "output": i, "metrics": {"m": i}} for i in range(1, 11)]
    html = eval_report(RunData("r", {}, {}, rows))
    assert html.count('class="r"') == 3 and "… and 7 more rows" in html


PROGRAM = '''
model default = "echo"

type Row { id: str, text: str, gold: str }

prompt shout(text: str) -> str = "{{ text }}"

eval quality {
  data "rows.jsonl" as Row
  run shout(text=row.text)
  metric exact = out == row.gold
  threshold exact >= 0.1
}
'''


def test_a_real_eval_run_writes_its_report(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PFLOW_TRACE_DIR", raising=False)
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "app.pflow").write_text(PROGRAM)
    rows = [{"id": "a", "text": "alpha", "gold": "x"}, {"id": "b", "text": "<i>b</i>", "gold": "y"}]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    code = cli.main(["eval", "app.pflow", "-q", "--html", "-o", "report.html"])
    _, err = capsys.readouterr()
    assert code in (0, 1), err
    html = (tmp_path / "report.html").read_text()
    assert "eval quality" in html and "&lt;i&gt;b&lt;/i&gt;" in html
    assert "<b>gold</b>: x" in html
    links = re.findall(r'href="([^"#]+)#(row-\d+)"', html)
    assert [r for _, r in links] == ["row-1", "row-2"]
    trace_page = (tmp_path / links[0][0]).read_text()
    assert {"row-1", "row-2"} <= data_ids(trace_page)
    assert "shout" in trace_page
