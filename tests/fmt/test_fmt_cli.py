"""``pflow fmt`` on the command line: writes, --check, --diff, folders, stdin, errors."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest

from promptflow_dsl.cli import main

MESSY = 'model m="x"\nprompt p(q:str)->str{user "{{ q }}"}\n'
TIDY = 'model m = "x"\n\nprompt p(q: str) -> str {\n  user "{{ q }}"\n}\n'


def test_formats_a_file_in_place_keeping_its_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "a.pflow"
    f.write_text(MESSY)
    f.chmod(0o640)
    assert main(["fmt", str(f)]) == 0
    assert f.read_text() == TIDY
    assert f.stat().st_mode & 0o777 == 0o640
    assert "reformatted" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["a.pflow"]  # no temporary file left


def test_an_unchanged_file_is_not_rewritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "a.pflow"
    f.write_text(TIDY)
    os.utime(f, (1_000_000, 1_000_000))
    inode = f.stat().st_ino
    assert main(["fmt", str(f)]) == 0
    assert f.stat().st_mtime == 1_000_000 and f.stat().st_ino == inode
    assert capsys.readouterr().err == ""


def test_a_crlf_file_is_rewritten_with_lf(tmp_path: Path) -> None:
    f = tmp_path / "a.pflow"
    f.write_bytes(TIDY.replace("\n", "\r\n").encode())
    assert main(["fmt", "--check", str(f)]) == 1
    assert main(["fmt", str(f)]) == 0
    assert f.read_bytes() == TIDY.encode()


def test_check_lists_files_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.pflow").write_text(MESSY)
    (tmp_path / "b.pflow").write_text(TIDY)
    assert main(["fmt", "--check", str(tmp_path / "a.pflow"), str(tmp_path / "b.pflow")]) == 1
    out = capsys.readouterr().out
    assert "a.pflow" in out and "b.pflow" not in out
    assert (tmp_path / "a.pflow").read_text() == MESSY
    assert main(["fmt", "--check", str(tmp_path / "b.pflow")]) == 0


def test_diff_prints_a_unified_diff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "a.pflow"
    f.write_text(MESSY)
    assert main(["fmt", "--diff", str(f)]) == 0
    out = capsys.readouterr().out
    assert "(original)" in out and "(formatted)" in out
    assert '-model m="x"' in out and '+model m = "x"' in out
    assert f.read_text() == MESSY
    assert main(["fmt", "--diff", "--check", str(f)]) == 1


def test_a_folder_formats_every_pflow_under_it(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / ".hidden").mkdir()
    for name in ("a.pflow", "sub/b.pflow", ".hidden/c.pflow"):
        (tmp_path / name).write_text(MESSY)
    (tmp_path / "notes.txt").write_text(MESSY)
    assert main(["fmt", str(tmp_path)]) == 0
    assert (tmp_path / "a.pflow").read_text() == TIDY
    assert (tmp_path / "sub/b.pflow").read_text() == TIDY
    assert (tmp_path / ".hidden/c.pflow").read_text() == MESSY
    assert (tmp_path / "notes.txt").read_text() == MESSY
    assert main(["fmt", "--check", str(tmp_path)]) == 0


def test_stdin_to_stdout(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(MESSY.encode())))
    assert main(["fmt", "-"]) == 0
    assert capsys.readouterr().out == TIDY


def test_stdin_check(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(MESSY.encode())))
    assert main(["fmt", "--check", "-"]) == 1
    assert "would reformat <stdin>" in capsys.readouterr().out


def test_a_syntax_error_exits_2_located_and_the_file_untouched(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.pflow"
    bad.write_text('model m = "x"\nprompt p( -> str = "x"\n')
    good = tmp_path / "good.pflow"
    good.write_text(MESSY)
    assert main(["fmt", str(bad), str(good)]) == 2
    err = capsys.readouterr().err
    assert "bad.pflow:2:11: error" in err
    assert bad.read_text() == 'model m = "x"\nprompt p( -> str = "x"\n'
    assert good.read_text() == TIDY  # the other files are still formatted


def test_missing_and_undecodable_files_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fmt", str(tmp_path / "nope.pflow")]) == 2
    assert "no such file" in capsys.readouterr().err
    latin = tmp_path / "latin.pflow"
    latin.write_bytes(b'model m = "caf\xe9"\n')
    assert main(["fmt", str(latin)]) == 2
    assert "not valid UTF-8" in capsys.readouterr().err
    assert latin.read_bytes() == b'model m = "caf\xe9"\n'


def test_a_symbolic_link_keeps_pointing_at_the_formatted_file(tmp_path: Path) -> None:
    target = tmp_path / "real.pflow"
    target.write_text(MESSY)
    link = tmp_path / "link.pflow"
    link.symlink_to(target)
    assert main(["fmt", str(link)]) == 0
    assert link.is_symlink() and target.read_text() == TIDY


def test_no_path_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fmt"]) == 2
    assert "PATH" in capsys.readouterr().err


def test_a_failed_write_leaves_the_file_and_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = tmp_path / "a.pflow", tmp_path / "b.pflow"
    first.write_text(MESSY)
    second.write_text(MESSY)
    real_replace = os.replace
    calls: list[str] = []

    def failing_once(src: str, dst: str) -> None:
        calls.append(dst)
        if len(calls) == 1:
            raise PermissionError(13, "Permission denied")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_once)
    assert main(["fmt", str(first), str(second)]) == 2
    assert "a.pflow: cannot write: Permission denied" in capsys.readouterr().err
    assert first.read_text() == MESSY and second.read_text() == TIDY
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pflow", "b.pflow"]


def test_the_pflow_command_as_a_filter() -> None:
    import subprocess

    done = subprocess.run([sys.executable, "-m", "promptflow_dsl", "fmt", "-"], input=MESSY.encode(),
                          capture_output=True, timeout=120, check=False)
    assert (done.returncode, done.stdout.decode(), done.stderr) == (0, TIDY, b"")
    bad = subprocess.run([sys.executable, "-m", "promptflow_dsl", "fmt", "-"],
                         input=b"prompt p( ->", capture_output=True, timeout=120, check=False)
    assert bad.returncode == 2 and bad.stdout == b""
    assert b"<stdin>:1:11: error" in bad.stderr


def test_a_formatter_mistake_never_reaches_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import promptflow_dsl.fmt as fmt

    f = tmp_path / "a.pflow"
    f.write_text(MESSY)
    monkeypatch.setattr(fmt, "layout", lambda tokens: 'model m = "x"\n')  # a token lost
    with pytest.raises(fmt.FormatterBug):
        fmt.format_text(MESSY)
    assert main(["fmt", str(f)]) == 70
    assert "internal error" in capsys.readouterr().err
    assert f.read_text() == MESSY
    monkeypatch.setattr(fmt, "layout", lambda tokens: '# other\nmodel m="x"\nprompt p(q:str)->str{user "{{ q }}"}\n')
    with pytest.raises(fmt.FormatterBug, match="comments"):
        fmt.format_text(MESSY)
