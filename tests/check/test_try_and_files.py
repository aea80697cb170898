"""Stage check: the types of `try EXPR else FALLBACK`, and the built-ins `read_text` /
`read_jsonl` with their compile-time path rules."""

from __future__ import annotations

from pathlib import Path

import pytest

import promptflow_dsl as pf

HEADER = '''
type Verdict {
  label: "positive" | "negative" | "mixed"
  reason: str
}
prompt classify(review: str) -> Verdict = "Label this review as JSON: {{ review }}"
prompt count(review: str) -> int = "How many words? {{ review }}"
prompt topics(review: str) -> list[str] = "Topics of: {{ review }}"
prompt mood(review: str) -> "up" | "down" = "Mood of: {{ review }}"
'''


def errors(text: str, base: Path, *, name: str = "main.pflow", allow: tuple[Path, ...] = ()) -> list[str]:
    try:
        pf.loads(text, name=name, base_dir=base, allow_paths=allow)
    except pf.CompileError as exc:
        return [f"{d.span.line}:{d.span.col}: {d.message}" for d in exc.diagnostics if d.is_error]
    return []


def flow(returns: str, body: str) -> str:
    return HEADER + f"flow f(r: str, rs: list[str]) -> {returns} {{\n  {body}\n}}\n"


# --------------------------------------------------------------------------- try: types

@pytest.mark.parametrize("returns,body", [
    ("Verdict?", "return try classify(review=r) else none"),
    ("Verdict", 'return try classify(review=r) else {label: "mixed", reason: "unclassified"}'),
    ("list[Verdict?]", "return [try classify(review=x) else none for x in rs]"),
    ("list[str]", "return try topics(review=r) else []"),
    ("float", "return try count(review=r) else 0.5"),
    ('"up" | "down" | "unknown"', 'return try mood(review=r) else "unknown"'),
    ("str", 'return try classify(review=r).label else "unclassified"'),
    ("str", 'return try classify(review=r).label else try mood(review=r) else "none"'),
    ("int", "return try len(parse_json(r)) else 0"),
    ("any", "return try parse_json(r) else 0"),
])
def test_the_result_is_the_join_of_both_sides(tmp_path: Path, returns: str, body: str):
    assert errors(flow(returns, body), tmp_path) == []


@pytest.mark.parametrize("returns,body,message", [
    ("Verdict", "return try classify(review=r) else none",
     "11:10: flow 'f' returns Verdict, but this is Verdict? (Verdict? may be none, but Verdict "
     "is not optional)"),
    ("int", "return try count(review=r) else 0.5",
     "11:10: flow 'f' returns int, but this is float"),
])
def test_the_result_type_is_checked_where_it_is_used(tmp_path: Path, returns: str, body: str,
                                                     message: str):
    assert errors(flow(returns, body), tmp_path) == [message]


@pytest.mark.parametrize("body,message", [
    ('return try classify(review=r) else "oops"',
     '11:38: the fallback of `try` must fit Verdict (the type of the tried expression), '
     'got str ("oops")'),
    ('return try classify(review=r) else {label: "mixed"}',
     '11:38: the fallback of `try` must fit Verdict (the type of the tried expression), '
     'got {label: "mixed"} (missing field \'reason\')'),
    ('return try classify(review=r) else {label: "meh", reason: "x"}',
     '11:38: the fallback of `try` must fit Verdict (the type of the tried expression), '
     'got {label: "meh", reason: "x"} (field \'label\': "meh" is not one of "positive" | '
     '"negative" | "mixed")'),
    ('return try classify(review=r) else {label: "mixed", reason: "x", score: 1}',
     "11:38: field 'score' of the fallback is not in Verdict (the type of the tried expression)"),
    ("return try topics(review=r) else [1]",
     "11:36: the fallback of `try` must fit list[str] (the type of the tried expression), "
     "got list[int] (list item: int is not str)"),
    ("return try count(review=r) else true",
     "11:35: the fallback of `try` must fit int (the type of the tried expression), got bool"),
])
def test_a_fallback_that_does_not_fit_is_an_error_at_the_fallback(tmp_path: Path, body: str,
                                                                  message: str):
    assert errors(flow("any", body), tmp_path) == [message]


def test_both_sides_are_checked_and_their_calls_are_in_the_call_graph(tmp_path: Path):
    got = errors(flow("any", "return try classify(review=nope) else clasify(review=r)"), tmp_path)
    assert got == ["11:30: unknown name 'nope'",
                   "11:41: unknown handler or function 'clasify'; did you mean 'classify'?"]
    prog = pf.loads(flow("any", "return try classify(review=r).label else mood(review=r)"),
                    name="main.pflow", base_dir=tmp_path)
    calls = {prog.display_name(k) for k, _ in prog.handler("f").calls}
    assert calls == {"classify", "mood"}


def test_variables_read_only_by_the_fallback_count_as_used(tmp_path: Path):
    prog = pf.loads(HEADER + '''
flow f(r: str) -> str {
  backup = upper(r)
  return try classify(review=r).label else backup
}
''', name="main.pflow", base_dir=tmp_path)
    assert prog.warnings == []


# --------------------------------------------------------------------------- read_text / read_jsonl

@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pflow.toml").write_text("")
    (tmp_path / "app" / "data").mkdir(parents=True)
    (tmp_path / "app" / "data" / "notes.txt").write_text("hello\n")
    (tmp_path / "app" / "data" / "rows.jsonl").write_text('{"a": 1}\n')
    return tmp_path


def test_types_of_the_file_builtins(project: Path):
    text = '''
flow f(name: str) -> {t: str, rows: list[any], n: int} {
  t = read_text("data/notes.txt")
  rows = read_jsonl(path="data/rows.jsonl")
  return {t: t, rows: rows, n: len(read_text("data/" + name)) + rows[0].a}
}
'''
    assert errors(text, project / "app") == []
    got = errors(text.replace("-> {t: str,", "-> {t: int,"), project / "app")
    assert len(got) == 1 and "field 't': str is not int" in got[0]


def test_a_literal_path_is_checked_at_compile_time(project: Path):
    (project.parent / "outside.txt").write_text("secret")
    text = '''
flow f(name: str) -> any {
  return [read_text("data/missing.txt"), read_jsonl("../../outside.txt"), read_text("data"),
          read_text(1), read_text("data/" + name), read_jsonl("data/notes.txt")]
}
'''
    got = errors(text, project / "app")
    looked = (project / "app" / "data" / "missing.txt")
    assert got == [
        f"3:21: read_text(): file 'data/missing.txt' not found (looked for {looked})",
        "3:53: read_jsonl(): file '../../outside.txt' is outside the project folder (the "
        "nearest folder with pyproject.toml or pflow.toml); allow it with --allow-path",
        "3:85: read_text(): file 'data' is a folder, not a file",
        "4:21: read_text() expects a str path, got int",
    ]
    allowed = errors(text, project / "app", allow=(project.parent,))
    assert not any("outside" in m for m in allowed)


def test_the_path_is_relative_to_the_declaring_file_not_the_entry(project: Path,
                                                                  monkeypatch: pytest.MonkeyPatch):
    (project / "app" / "lib").mkdir()
    (project / "app" / "lib" / "data").mkdir()
    (project / "app" / "lib" / "data" / "only_here.txt").write_text("x")
    (project / "app" / "lib" / "helpers.pflow").write_text(
        'flow note() -> str { return read_text("data/only_here.txt") }\n')
    entry = project / "app" / "main.pflow"
    entry.write_text('import "lib/helpers.pflow" as helpers\n'
                     'flow main() -> str { return helpers.note() }\n')
    monkeypatch.chdir(project.parent)  # the current directory plays no part
    assert pf.load(entry).handler("main") is not None
    entry.write_text('flow main() -> str { return read_text("data/only_here.txt") }\n')
    with pytest.raises(pf.CompileError, match="file 'data/only_here.txt' not found"):
        pf.load(entry)


def test_a_declaration_named_like_the_builtin_shadows_it(project: Path):
    (project / "app" / "t.py").write_text("def read_text(path):\n    return path\n")
    text = '''
tool read_text(path: str) -> str = python "t:read_text"
flow f() -> str { return read_text("not/a/file.txt") }
'''
    assert errors(text, project / "app") == []
