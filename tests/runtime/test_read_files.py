"""Stage run: the built-ins `read_text(path)` and `read_jsonl(path)` — paths relative to
the declaring `.pflow` file (never the current directory) and confined to the project."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import promptflow_dsl as pf
from promptflow_dsl import cli
from promptflow_dsl.runtime import RunConfig, RunFailed
from promptflow_dsl.runtime.cache import CacheMode

MAIN = '''
import "lib/helpers.pflow" as helpers

flow literal() -> {text: str, rows: list[any]} {
  return {text: read_text("data/notes.txt"), rows: read_jsonl(path="data/rows.jsonl")}
}

flow text(path: str) -> str {
  return read_text(path)
}

flow rows(path: str) -> list[any] {
  return read_jsonl(path)
}

flow anything(path: any) -> str {
  return read_text(path)
}

flow rows_or_none(path: str) -> list[any] {
  return try read_jsonl(path) else []
}

flow from_lib() -> str {
  return helpers.note()
}
'''

HELPERS = '''
flow note() -> str {
  return read_text("data/" + "lib_note.txt")
}
'''


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "app" / "data").mkdir(parents=True)
    (root / "app" / "lib" / "data").mkdir(parents=True)
    (root / "pyproject.toml").write_text("")
    (root / "app" / "main.pflow").write_text(MAIN)
    (root / "app" / "lib" / "helpers.pflow").write_text(HELPERS)
    (root / "app" / "lib" / "data" / "lib_note.txt").write_text("from the library")
    data = root / "app" / "data"
    data.joinpath("notes.txt").write_bytes("\ufeffhello\r\nwörld\r\n".encode())
    data.joinpath("rows.jsonl").write_text('{"a": 1}\n\n  \n[1, "two"]\n"x"\nnull\n'
                                           '{"s": "line\u2028separator"}\n', encoding="utf-8")
    data.joinpath("empty.jsonl").write_text("")
    data.joinpath("bad.jsonl").write_text('{"a": 1}\n\n{"b": \n')
    data.joinpath("latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    (tmp_path / "outside.txt").write_text("not for you")
    (tmp_path / "elsewhere").mkdir()
    # same names in the current directory: never read
    (tmp_path / "elsewhere" / "data").mkdir()
    (tmp_path / "elsewhere" / "data" / "notes.txt").write_text("WRONG FILE")
    return root


@pytest.fixture
def program(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> pf.CheckedProgram:
    monkeypatch.chdir(tmp_path / "elsewhere")
    return pf.load(project / "app" / "main.pflow")


def cfg(tmp_path: Path) -> RunConfig:
    return RunConfig(trace_dir=tmp_path / "traces", cache=CacheMode.OFF)


def failure(program: pf.CheckedProgram, tmp_path: Path, handler: str, **inputs) -> str:
    with pytest.raises(RunFailed) as info:
        program.run(handler, config=cfg(tmp_path), **inputs)
    exc = info.value
    assert exc.span is not None and exc.span.file.endswith("main.pflow")
    return exc.message


def test_files_are_read_relative_to_the_program_from_another_folder(program, tmp_path):
    r = program.run("literal", config=cfg(tmp_path))
    assert r.value == {"text": "hello\nwörld\n",
                       "rows": [{"a": 1}, [1, "two"], "x", None, {"s": "line\u2028separator"}]}
    assert program.run("text", config=cfg(tmp_path), path="data/notes.txt").value == "hello\nwörld\n"
    assert program.run("rows", config=cfg(tmp_path), path="data/empty.jsonl").value == []


def test_an_imported_module_reads_beside_itself(program, tmp_path):
    assert program.run("from_lib", config=cfg(tmp_path)).value == "from the library"


def test_a_computed_path_follows_the_same_rules_at_run_time(program, project, tmp_path):
    looked = project / "app" / "data" / "missing.txt"
    assert failure(program, tmp_path, "text", path="data/missing.txt") == (
        f"read_text() failed: file 'data/missing.txt' not found (looked for {looked})")
    assert failure(program, tmp_path, "text", path="../../outside.txt") == (
        "read_text() failed: file '../../outside.txt' is outside the project folder (the nearest "
        "folder with pyproject.toml or pflow.toml); allow it with --allow-path")
    assert failure(program, tmp_path, "text", path=str(tmp_path / "outside.txt")).endswith(
        "is outside the project folder (the nearest folder with pyproject.toml or pflow.toml); "
        "allow it with --allow-path")
    assert failure(program, tmp_path, "rows", path="data") == (
        "read_jsonl() failed: file 'data' is a folder, not a file")
    assert failure(program, tmp_path, "anything", path=3) == (
        "read_text() failed: the path must be a str, got 3")


def test_allow_path_lets_a_run_read_outside_the_project(project, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path / "elsewhere")
    program = pf.load(project / "app" / "main.pflow", allow_paths=(tmp_path,))
    assert program.run("text", config=cfg(tmp_path), path="../../outside.txt").value == "not for you"


def test_unreadable_content_names_the_file(program, project, tmp_path):
    latin1 = project / "app" / "data" / "latin1.txt"
    assert failure(program, tmp_path, "text", path="data/latin1.txt") == (
        f"read_text() failed: {latin1} is not valid UTF-8 text (byte 0xe9 on line 1, offset 3)")
    bad = project / "app" / "data" / "bad.jsonl"
    assert failure(program, tmp_path, "rows", path="data/bad.jsonl") == (
        f"read_jsonl() failed: {bad}:3: not valid JSON (Expecting value)")
    assert failure(program, tmp_path, "rows", path="data/latin1.txt").startswith(
        f"read_jsonl() failed: {latin1} is not valid UTF-8 text")


def test_a_file_error_is_a_run_error_that_try_catches(program, tmp_path):
    r = program.run("rows_or_none", config=cfg(tmp_path), path="data/bad.jsonl")
    assert r.value == [] and r.trace.status == "ok"
    assert "not valid JSON" in r.trace.steps[0].events[0]["summary"]


def test_pflow_run_from_another_folder(project, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path / "elsewhere")
    code = cli.main(["run", str(project / "app" / "main.pflow"), "literal", "--no-cache", "-q"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["text"] == "hello\nwörld\n"
    code = cli.main(["run", "../proj/app/main.pflow", "text", "-i", "path=data/nope.txt", "-q"])
    out, err = capsys.readouterr()
    assert code == 1
    assert err.startswith("../proj/app/main.pflow:9:10: error: read_text() failed: file "
                          "'data/nope.txt' not found")


def test_check_from_another_folder_in_a_fresh_process(project, tmp_path):
    done = subprocess.run([sys.executable, "-m", "promptflow_dsl", "check", "../proj/app/main.pflow"],
                          cwd=tmp_path / "elsewhere", capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (project / "app" / "data" / "notes.txt").unlink()
    done = subprocess.run([sys.executable, "-m", "promptflow_dsl", "check", "../proj/app/main.pflow"],
                          cwd=tmp_path / "elsewhere", capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "../proj/app/main.pflow:5:27: error: read_text(): file 'data/notes.txt' not found" \
        in done.stderr
