"""A non-editable install works from another folder: grammar/ and stdlib/ ship inside
the wheel, and the installed package checks a program that imports std.text."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from corpus_paths import REPO

PROGRAM = 'import std.text\nflow f(q: str) -> list[str] {\n  return text.split_words(text=q)\n}\n'


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
                        "-w", str(out), str(REPO)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot build a wheel here: {r.stderr.strip()[-300:]}")
    return next(out.glob("*.whl"))


def test_wheel_contains_grammar_and_stdlib(wheel: Path):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "promptflow_dsl/grammar/pflow.lark" in names
    assert "promptflow_dsl/stdlib/text.pflow" in names
    assert "promptflow_dsl/stdlib/text_tools.py" in names


def test_installed_wheel_works_from_another_folder(wheel: Path, tmp_path: Path):
    venv = tmp_path / "venv"
    # A venv of its own (no system site-packages: inside a venv that would be the base
    # Python's packages, not this environment's). The dependencies come from the
    # environment running the tests: its site-packages directories go on the new venv's
    # path *after* its own site-packages, as plain path entries, so their .pth files (an
    # editable install of this project among them) are not processed and the wheel's
    # copy of the package is the one imported.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    new_site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                   capture_output=True, text=True, check=True).stdout.strip())
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (new_site / "zz_project_env.pth").write_text("".join(f"{p}\n" for p in sorted(ours)))
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--quiet",
                    "--no-deps", "--no-index", "--force-reinstall", str(wheel)], check=True)
    work = tmp_path / "elsewhere"
    work.mkdir()
    (work / "p.pflow").write_text(PROGRAM)
    r = subprocess.run([str(py), "-c", "import promptflow_dsl, sys; print(promptflow_dsl.__file__)"],
                       capture_output=True, text=True, cwd=work)
    assert str(venv) in r.stdout, r.stdout + r.stderr
    r = subprocess.run([str(py), "-m", "promptflow_dsl", "check", "p.pflow"], capture_output=True,
                       text=True, cwd=work)
    assert r.returncode == 0, r.stderr
    assert "p.pflow: ok" in r.stdout
