"""Stage check: `eval` declarations (data validated row by row, `run`, metrics,
thresholds) and `evaluate(NAME)` in tests."""

from __future__ import annotations

import json
import time
import tracemalloc
from pathlib import Path

import pytest
from corpus_paths import SHARED_EXAMPLES

import promptflow_dsl as pf
from promptflow_dsl.check.program import EvalInfo, Resolved
from promptflow_dsl.lang.types import BOOL, FLOAT, INT, RecordType, optional

HEADER = '''
type Ticket {
  id: str
  text: str
  gold: "positive" | "negative" | "mixed"
}
type Verdict { label: "positive" | "negative" | "mixed", reply: str? }
prompt classify(review: str) -> Verdict = "Label this review as JSON: {{ review }}"
prompt polite(reply: str) -> bool = "Is this polite? {{ reply }}"
prompt stars(reply: str) -> int = "How many stars? {{ reply }}"
'''

TICKETS = [{"id": f"t{i}", "text": f"review {i}", "gold": "positive"} for i in range(3)]


def write_rows(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "pflow.toml").write_text("", encoding="utf-8")
    write_rows(tmp_path / "data" / "tickets.jsonl", TICKETS)
    monkeypatch.chdir(tmp_path)  # data files are shown relative to the current folder
    return tmp_path


def load(project: Path, body: str, name: str = "main.pflow") -> pf.Program:
    (project / name).write_text(HEADER + body, encoding="utf-8")
    return pf.load(project / name)


def failure(project: Path, body: str) -> pf.CompileError:
    with pytest.raises(pf.CompileError) as info:
        load(project, body)
    return info.value


def errors(project: Path, body: str) -> list[str]:
    exc = failure(project, body)
    return [f"{d.span.file}:{d.span.line}:{d.span.col}: {d.message}"
            for d in exc.diagnostics if d.is_error]


EVAL = '''
eval quality {
  data "data/tickets.jsonl" as Ticket
  run classify(review=row.text)
  metric label_ok = out.label == row.gold
  metric replied = out.reply != none
  metric is_polite = polite(reply=out.reply) if out.reply != none else none
  metric n_stars = stars(reply=out.reply) if out.reply != none else none
  threshold label_ok >= 0.8
  threshold n_stars < 4.5
}
'''


# --------------------------------------------------------------------------- EvalInfo


def test_the_checked_eval(project: Path):
    program = load(project, EVAL)
    info = program.eval("quality")
    assert isinstance(info, EvalInfo)
    assert info.key == f"{program.entry.key}::quality" and info.module_key == program.entry.key
    assert info.data == (project / "data" / "tickets.jsonl").resolve() and info.data.is_absolute()
    assert info.data_format == "jsonl" and info.rows == 3
    assert isinstance(info.row_type, RecordType) and info.row_type.name == "Ticket"
    assert info.out_type == program.entry.types["Verdict"]
    assert [(m.name, m.type) for m in info.metrics] == [
        ("label_ok", BOOL), ("replied", BOOL), ("is_polite", optional(BOOL)),
        ("n_stars", optional(INT))]
    assert [(t.metric, t.op, t.value, t.text) for t in info.thresholds] == [
        ("label_ok", ">=", 0.8, "label_ok >= 0.8"), ("n_stars", "<", 4.5, "n_stars < 4.5")]
    keys = {h.name: h.key for h in program.handlers.values()}
    assert info.calls == (keys["classify"], keys["polite"], keys["stars"])
    assert info.metric("replied") is info.metrics[1] and info.metric("nope") is None
    assert program.evals == {"quality": info} and program.all_evals() == {info.key: info}
    with pytest.raises(KeyError, match=r"no eval 'nope' \(evals: quality\)"):
        program.eval("nope")


def test_the_spec_example_checks():
    path = SHARED_EXAMPLES / "eval_triage.pflow"
    if not path.is_file():
        pytest.skip("the spec examples are not here")
    program = pf.load(path)
    info = program.eval("triage_quality")
    assert info.rows == 12 and info.data.name == "tickets.jsonl"
    assert [m.name for m in info.metrics] == ["label_ok", "replied", "is_polite"]
    assert [t.text for t in info.thresholds] == ["label_ok >= 0.5"]


def test_csv_data(project: Path):
    (project / "data" / "rows.csv").write_text(
        "id,text,gold,n,score,flag,note\n"
        'a,"one, two",positive,1,0.5,true,\n'
        'b,"multi\nline",mixed,2,,false,hi\n', encoding="utf-8")
    program = load(project, '''
type Row { id: str, text: str, gold: "positive" | "negative" | "mixed", n: int,
           score: float?, flag: bool = true, note: str? }
eval rows {
  data "data/rows.csv" as Row
  run classify(review=row.text)
  metric n = row.n
  metric s = row.score
  metric both = row.flag and row.note != none
}
''')
    info = program.eval("rows")
    assert (info.data_format, info.rows) == ("csv", 2)
    assert [m.type for m in info.metrics] == [INT, optional(FLOAT), BOOL]


def test_other_columns_are_allowed(project: Path):
    write_rows(project / "data" / "extra.jsonl", [{**TICKETS[0], "source": "web", "n": 1}])
    program = load(project, EVAL.replace("tickets.jsonl", "extra.jsonl"))
    assert program.eval("quality").rows == 1


# --------------------------------------------------------------------------- data problems


def test_bad_rows_are_errors_in_the_data_file(project: Path):
    write_rows(project / "data" / "bad.jsonl", [
        TICKETS[0],
        {"id": "t1", "text": "x", "gold": "angry"},
        "",
        {"id": 2, "text": "x", "gold": "mixed"},
        {"id": "t3", "txt": "x", "gold": "mixed"},
        "not json",
        [1, 2],
    ])
    exc = failure(project, EVAL.replace("tickets.jsonl", "bad.jsonl"))
    assert [f"{d.span}: {d.message}" for d in exc.diagnostics] == [
        'data/bad.jsonl:2:35: the row does not fit Ticket: field \'gold\': expected "positive" '
        '| "negative" | "mixed", got str "angry"',
        "data/bad.jsonl:4:8: the row does not fit Ticket: field 'id': expected str, got int 2",
        "data/bad.jsonl:5:1: the row does not fit Ticket: missing required field 'text' of "
        "type str; did you mean 'txt'?",
        "data/bad.jsonl:6:1: not valid JSON: Expecting value",
        "data/bad.jsonl:7:1: each line must be a JSON object, not an array",
    ]
    rendered = exc.render()
    assert rendered.splitlines()[:3] == [
        exc.diagnostics[0].headline(),
        '  {"id": "t1", "text": "x", "gold": "angry"}',
        "                                    ^~~~~~~",
    ]
    assert '  {"id": "t3", "txt": "x", "gold": "mixed"}' in rendered
    # only the lines shown are kept, not the file
    assert exc.sources["data/bad.jsonl"].split("\n")[0] == ""


def test_errors_are_capped_and_counted(project: Path):
    write_rows(project / "data" / "many.jsonl",
               [{"id": i, "text": "x", "gold": "mixed"} for i in range(50)])
    found = errors(project, EVAL.replace("tickets.jsonl", "many.jsonl"))
    in_data = [e for e in found if e.startswith("data/many.jsonl:")]
    assert len(in_data) == 20 and in_data[-1].startswith("data/many.jsonl:20:8: ")
    assert "main.pflow:13:8: data file 'data/many.jsonl' has 50 bad rows: the first 20 are " \
           "shown above, 30 more are not" in found


def test_csv_problems_point_at_the_cell(project: Path):
    (project / "data" / "bad.csv").write_text(
        'id,text,gold\n1,"a, b",angry\n2,x,\n', encoding="utf-8")
    exc = failure(project, EVAL.replace("tickets.jsonl", "bad.csv"))
    assert [f"{d.span}-{d.span.end_col}: {d.message}" for d in exc.diagnostics] == [
        'data/bad.csv:2:10-15: the row does not fit Ticket: field \'gold\': expected "positive" '
        '| "negative" | "mixed", got str "angry"',
        'data/bad.csv:3:5-6: the row does not fit Ticket: field \'gold\': expected "positive" '
        '| "negative" | "mixed", got str ""',
    ]


def test_a_csv_header_without_a_required_column(project: Path):
    (project / "data" / "h.csv").write_text("id,txt\n1,a\n2,b\n", encoding="utf-8")
    assert errors(project, EVAL.replace("tickets.jsonl", "h.csv")) == [
        "data/h.csv:1:1: no column 'gold' for the required field 'gold' of Ticket",
        "data/h.csv:1:1: no column 'text' for the required field 'text' of Ticket; did you "
        "mean 'txt'?",
    ]


@pytest.mark.parametrize(("path", "message"), [
    ("missing.jsonl", "data file 'missing.jsonl' not found (looked for missing.jsonl)"),
    ("data/t.txt", "data file 'data/t.txt' is neither JSONL nor CSV: name it *.jsonl, "
                   "*.ndjson or *.csv"),
    ("../outside.jsonl", "data file '../outside.jsonl' is outside the project folder (the "
                         "nearest folder with pyproject.toml or pflow.toml); allow it with "
                         "--allow-path"),
    ("data/empty.jsonl", "data file 'data/empty.jsonl' has no rows"),
    ("data/dir.jsonl", "data file 'data/dir.jsonl' is a folder, not a file"),
])
def test_data_file_problems(project: Path, path: str, message: str):
    (project / "data" / "empty.jsonl").write_text("\n\n", encoding="utf-8")
    (project / "data" / "dir.jsonl").mkdir()
    assert errors(project, EVAL.replace("data/tickets.jsonl", path)) == [
        f"main.pflow:13:8: {message}"]


def test_two_evals_of_one_file_report_its_rows_once(project: Path):
    write_rows(project / "data" / "bad.jsonl", [{"id": 1, "text": "x", "gold": "mixed"}])
    body = EVAL.replace("tickets.jsonl", "bad.jsonl")
    found = errors(project, body + body.replace("eval quality", "eval again"))
    assert found == ["data/bad.jsonl:1:8: the row does not fit Ticket: field 'id': expected "
                     "str, got int 1"]


def test_every_line_shown_is_kept_when_two_evals_read_one_file(project: Path):
    write_rows(project / "data" / "bad.jsonl", [{"id": 1, "text": "a", "gold": "mixed"},
                                                {"id": "b", "text": "b", "gold": "mixed"}])
    exc = failure(project, EVAL.replace("tickets.jsonl", "bad.jsonl") + """
eval by_number {
  data "data/bad.jsonl" as {id: int, text: str, gold: str}
  run classify(review=row.text)
  metric ok = out.label == row.gold
}
""")
    assert [str(d.span) for d in exc.diagnostics] == ["data/bad.jsonl:1:8", "data/bad.jsonl:2:8"]
    rendered = exc.render()
    assert '  {"id": 1, "text": "a", "gold": "mixed"}' in rendered
    assert '  {"id": "b", "text": "b", "gold": "mixed"}' in rendered


# --------------------------------------------------------------------------- expressions


@pytest.mark.parametrize(("body", "message"), [
    ('eval e { data "data/tickets.jsonl" as str run classify(review=row) metric m = true }',
     "main.pflow:11:39: the row type of eval 'e' must be a record type (each row has named "
     "fields), not str"),
    ('eval e { data "data/tickets.jsonl" as Ticket run classify(review=row.txt) metric m = true }',
     "main.pflow:11:70: Ticket has no field 'txt'; did you mean 'text'? (fields: id, text, gold)"),
    ('eval e { data "data/tickets.jsonl" as Ticket run classify(review=out) metric m = true }',
     "main.pflow:11:66: unknown name 'out'"),
    ('eval e { data "data/tickets.jsonl" as Ticket run classify(review=row.text) '
     'metric m = out.label }',
     "main.pflow:11:87: metric 'm' must be bool, int, float or an optional of those (none: not "
     "scored), got \"positive\" | \"negative\" | \"mixed\""),
    ('eval e { data "data/tickets.jsonl" as Ticket run classify(review=row.text) '
     'metric m = [1] }',
     "main.pflow:11:87: metric 'm' must be bool, int, float or an optional of those (none: not "
     "scored), got list[int]"),
    ('eval e { data "data/tickets.jsonl" as Ticket run classify(review=row.text) '
     'metric m = true  metric k = m }',
     "main.pflow:11:104: metric 'k' reads metric 'm': a metric sees only `row` and `out` "
     "(compute what both need in `run`)"),
    ('eval e { data "data/tickets.jsonl" as Ticket run classify(review=row.text) '
     'metric ok = true threshold okk >= 0.5 }',
     "main.pflow:11:103: threshold on unknown metric 'okk'; did you mean 'ok'? (metrics of eval "
     "'e': ok)"),
])
def test_expression_errors(project: Path, body: str, message: str):
    assert errors(project, body) == [message]


def test_metric_types_that_are_accepted(project: Path):
    program = load(project, '''
tool score(text: str) -> any = python "json:dumps"
eval e {
  data "data/tickets.jsonl" as Ticket
  run classify(review=row.text)
  metric a = 1
  metric b = 0.5 if out.reply != none else none
  metric c = none
  metric d = score(text=row.text)
  metric e = len(row.text) / 2
}
''')
    assert [m.type.show() for m in program.eval("e").metrics] == [
        "int", "float?", "none", "any", "float"]


def test_a_rate_threshold_outside_0_1_warns(project: Path):
    program = load(project, EVAL.replace("threshold label_ok >= 0.8", "threshold label_ok >= 80"))
    assert [w.message for w in program.warnings] == [
        "metric 'label_ok' is a rate (a bool metric: the share of rows where it is true), "
        "between 0 and 1; did you mean 0.8?"]


def test_calls_in_evals_are_resolved(project: Path):
    program = load(project, EVAL)
    info = program.eval("quality")
    run = info.run
    assert program.entry.resolutions[run.span] == Resolved("handler", info.calls[0])
    assert program.entry.expr_types[run.span] == info.out_type


# --------------------------------------------------------------------------- evaluate()


def test_evaluate_in_a_test(project: Path):
    program = load(project, EVAL + '''
test "quality" {
  r = evaluate(quality)
  expect r.rows == 3 and r.failed == 0
  expect r.metrics.label_ok == 1.0
  expect r.metrics.is_polite != none
}
''')
    calls = [(s, r) for s, r in program.entry.resolutions.items() if r.kind == "eval"]
    assert [(s.line, s.col, r.target) for s, r in calls] == [
        (24, 7, program.eval("quality").key)]
    (span, _), = calls
    shown = program.entry.expr_types[span].show()
    assert shown == ("{rows: int, failed: int, metrics: {label_ok: float?, replied: float?, "
                     "is_polite: float?, n_stars: float?}}")


def test_evaluate_of_an_imported_eval(project: Path):
    (project / "lib.pflow").write_text(HEADER + EVAL, encoding="utf-8")
    program = load(project, 'import "lib.pflow" as lib\n'
                            'test "t" {\n  r = evaluate(lib.quality)\n  expect r.metrics.replied == 1.0\n}\n')
    (res,) = [r for r in program.entry.resolutions.values() if r.kind == "eval"]
    assert res.target == program.all_evals()[res.target].key
    assert program.evals == {}


@pytest.mark.parametrize(("test_body", "message"), [
    ("r = evaluate(qualty)", "main.pflow:24:16: unknown eval 'qualty'; did you mean 'quality'? "
                             "(evals: quality)"),
    ("r = evaluate(classify)", "main.pflow:24:16: 'classify' is a prompt, not an eval (evals: "
                               "quality)"),
    ("r = evaluate(quality, quality)", "main.pflow:24:7: evaluate() takes the name of one eval, "
                                       "e.g. evaluate(my_eval)"),
    ('r = evaluate("quality")', "main.pflow:24:16: evaluate() takes the name of an eval, not an "
                                "expression"),
    ("expect evaluate(quality).metrics.polite == 1.0",
     "main.pflow:24:36: {label_ok: float?, replied: float?, is_polite: float?, n_stars: float?} "
     "has no field 'polite'; did you mean 'is_polite'? (fields: label_ok, replied, is_polite, "
     "n_stars)"),
])
def test_evaluate_errors(project: Path, test_body: str, message: str):
    assert errors(project, EVAL + f'\ntest "t" {{\n  {test_body}\n  expect true\n}}\n') == [message]


def test_evaluate_outside_a_test(project: Path):
    assert errors(project, EVAL + "flow f() -> any { return evaluate(quality) }\n") == [
        "main.pflow:22:26: unknown handler or function 'evaluate' (evaluate() is only "
        "available inside test blocks)"]


# --------------------------------------------------------------------------- scale


def test_100000_rows_check_in_seconds(project: Path):
    with (project / "data" / "big.jsonl").open("w", encoding="utf-8") as f:
        for i in range(100_000):
            f.write(json.dumps({"id": f"t{i}", "text": "The parcel came on time. " * 4,
                                "gold": ["positive", "negative", "mixed"][i % 3]}) + "\n")
    started = time.perf_counter()
    program = load(project, EVAL.replace("tickets.jsonl", "big.jsonl"))
    elapsed = time.perf_counter() - started
    assert program.eval("quality").rows == 100_000
    assert elapsed < 10, f"{elapsed:.1f} s"  # about 0.8 s on a 2-core machine
    tracemalloc.start()
    try:
        load(project, EVAL.replace("tickets.jsonl", "big.jsonl"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000, f"{peak / 1e6:.1f} MB"  # the 23 MB file is streamed
