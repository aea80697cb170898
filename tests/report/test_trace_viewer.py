"""``pflow trace view``: which RUN, where the page goes, what the page holds, and
the errors (exit status 2, located)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from report_fixtures import EVIL, RUN_ID, big_trace, make_eval_run, small_trace, write_small

from promptflow_dsl import cli
from promptflow_dsl.report.trace_data import trace_view
from promptflow_dsl.runtime.trace import write_trace


def view(argv: list[str], capsys) -> tuple[int, str, str]:
    code = cli.main(["trace", "view", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def data_of(html: str) -> dict:
    m = re.search(r'<script id="pflow-data" type="application/json">(.*?)</script>', html, re.S)
    assert m
    return json.loads(m.group(1))


@pytest.fixture
def project(tmp_path: Path, monkeypatch) -> Path:
    (tmp_path / "pyproject.toml").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PFLOW_TRACE_DIR", raising=False)
    return tmp_path


def test_view_last_writes_the_page_beside_the_trace(project: Path, capsys):
    write_small(project / ".pflow-cache" / "traces")
    code, out, err = view([], capsys)
    assert code == 0, err
    page = project / ".pflow-cache" / "traces" / f"{RUN_ID}.html"
    assert out.strip() == str(page.relative_to(project))
    html = page.read_text()
    data = data_of(html)
    steps = {s["id"]: s for s in data["steps"]}
    assert len(steps) == 10
    assert steps["s2"]["rep"] == "The capital of France is Paris."
    assert steps["s2"]["msg"][1]["content"] == "Summarize: hello"
    assert steps["s2"]["tin"] == 12 and steps["s2"]["tout"] == 5 and steps["s2"]["m"] == "default"
    assert steps["s6"]["p"] == data["steps"].index(steps["s5"])  # lookup under solve
    assert steps["s9"]["a"] == 3 and steps["s10"]["e"] == "RuntimeError: the tool broke"
    assert steps["s7"]["ev"][0]["distances"]["billing"] == 0.12
    assert steps["s3"]["rep"] == EVIL  # kept verbatim in the data ...
    assert "<script>window.__pwned" not in html  # ... and never as markup
    assert data["span"] == 900.0


def test_view_by_file_id_prefix_and_output(project: Path, capsys, tmp_path: Path):
    traces = project / "t"
    path = write_small(traces)
    out_file = tmp_path / "page.html"
    assert view([str(path), "-o", str(out_file)], capsys)[0] == 0
    assert data_of(out_file.read_text())["header"]["run_id"] == RUN_ID
    assert view([RUN_ID[:12], "--trace-dir", str(traces)], capsys)[0] == 0
    assert (traces / f"{RUN_ID}.html").is_file()


def test_view_opens_the_browser_when_asked(project: Path, capsys, monkeypatch):
    write_small(project / ".pflow-cache" / "traces")
    opened = []
    monkeypatch.setattr("webbrowser.open", lambda url: opened.append(url) or True)
    assert view(["last", "--open"], capsys)[0] == 0
    assert opened and opened[0].startswith("file://") and opened[0].endswith(".html")


def test_view_of_a_run_folder_nests_each_rows_trace(project: Path, capsys):
    root = project / ".pflow-cache" / "evals"
    folder = make_eval_run(root, "20261204T100000.000Z-aaaaaa", project / ".pflow-cache" / "traces")
    code, out, err = view([str(folder)], capsys)
    assert code == 0, err
    data = data_of((folder / "traces.html").read_text())
    rows = [s for s in data["steps"] if s["k"] == "row"]
    assert [r["id"] for r in rows] == ["row-1", "row-2", "row-3", "row-4"]
    assert rows[3]["st"] == "failed" and rows[3]["e"] == "RuntimeError: the tool broke"
    under = [s for s in data["steps"] if s["id"].startswith("row-2/")]
    assert len(under) == 10 and under[0]["p"] == data["steps"].index(rows[1])
    assert data["header"]["rows"] == 4 and data["header"]["totals"]["calls"] == 28
    # the eval run by id (it is no trace id) gives the same page
    assert view(["20261204T100000.000Z-aa"], capsys)[0] == 0


def test_run_folder_with_a_missing_trace_says_so(project: Path, capsys):
    traces = project / ".pflow-cache" / "traces"
    folder = make_eval_run(project / ".pflow-cache" / "evals", "20261204T100000.000Z-aaaaaa",
                           traces)
    (traces / "20261204T100000.000Z-000001.json").unlink()
    assert view([str(folder)], capsys)[0] == 0
    data = data_of((folder / "traces.html").read_text())
    assert "not found" in data["steps"][0]["x"]["trace"]


@pytest.mark.parametrize("argv, message", [
    (["nope"], "no trace 'nope' in"),
    (["."], "not a run folder (no results.jsonl)"),
])
def test_bad_runs_exit_2_with_a_located_message(project: Path, capsys, argv, message):
    write_small(project / ".pflow-cache" / "traces")
    code, out, err = view(argv, capsys)
    assert code == 2 and out == ""
    assert err.startswith("pflow trace view: ") and message in err


def test_a_file_that_is_not_a_trace_is_located(project: Path, capsys):
    bad = project / "bad.json"
    bad.write_text('{"x": 1,\n  oops}')
    code, _, err = view([str(bad)], capsys)
    assert code == 2 and str(bad) in err and "line 2" in err
    (project / "other.json").write_text('{"schema_version": "pflow-trace/0"}')
    code, _, err = view([str(project / "other.json")], capsys)
    assert code == 2 and "pflow-trace/0" in err


def test_no_traces_yet(project: Path, capsys):
    code, _, err = view([], capsys)
    assert code == 2 and "no runs have been traced" in err


def test_output_errors_exit_2(project: Path, capsys):
    write_small(project / ".pflow-cache" / "traces")
    code, _, err = view(["-o", str(project)], capsys)
    assert code == 2 and "is a folder" in err
    code, _, err = view(["-o", str(project / "no" / "such" / "x.html")], capsys)
    assert code == 2 and "No such file" in err
    assert cli.main(["trace", "show", "--open"]) == 2
    assert "go with `view`" in capsys.readouterr().err


def test_a_parent_recorded_after_its_child_becomes_a_root():
    trace = small_trace()
    trace.steps[1].parent = "s10"  # s2 says its caller is recorded later
    trace.steps[0].parent = "s1"  # s1 names itself
    steps = trace_view(trace).steps
    assert steps[0]["p"] == -1 and steps[1]["p"] == -1


def test_calls_in_flight_follow_overlapping_steps():
    view_data = trace_view(big_trace(200))
    assert max(v for _, v in view_data.in_flight) == 8  # 16 ms calls every 2 ms
    assert view_data.in_flight[-1][1] == 0


def test_a_big_trace_page_is_one_blob(tmp_path: Path, capsys):
    path = write_trace(big_trace(2000), tmp_path)
    assert cli.main(["trace", "view", str(path), "-o", str(tmp_path / "b.html")]) == 0
    html = (tmp_path / "b.html").read_text()
    assert len(data_of(html)["steps"]) == 2000
    assert html.count('class="row') == 0  # rows are drawn by the script, not written


def test_view_of_a_results_file_of_run_data(project: Path, capsys):
    (project / "app.pflow").write_text('model default = "echo"\n'
                                       'prompt shout(text: str) -> str = "{{ text }}!"\n')
    (project / "rows.jsonl").write_text('{"text": "a"}\n{"text": "<b>"}\n')
    assert cli.main(["run", "app.pflow", "shout", "--data", "rows.jsonl", "--out", "res.jsonl",
                     "-q"]) == 0
    code, out, err = view(["res.jsonl"], capsys)
    assert code == 0, err
    assert out.strip() == "res.html"
    data = data_of((project / "res.html").read_text())
    rows = [s for s in data["steps"] if s["k"] == "row"]
    assert [r["id"] for r in rows] == ["row-1", "row-2"] and data["header"]["rows"] == 2
    shouts = [s for s in data["steps"] if s["h"] == "shout"]
    assert sorted(s["rep"] for s in shouts) == ["<b>!", "a!"]
