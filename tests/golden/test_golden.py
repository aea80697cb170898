"""Golden-file tests for the diagnostics of ``pflow check``, organised by stage.

Layout (see README.md beside this file)::

    tests/golden/parse/   invalid programs rejected by the parser (and the UTF-8 reader)
    tests/golden/build/   invalid programs rejected by the AST builder (structure)
    tests/golden/check/   invalid programs rejected by the checker (names, types, files...)
    tests/golden/ok/      valid programs (exit 0), possibly with warnings

A case is either ``STAGE/NAME.pflow`` with ``STAGE/NAME.expected`` beside it, or a
folder ``STAGE/NAME/`` (for cases that need helper files: tools, demos, imports)
holding exactly one ``main.pflow`` somewhere below it, with ``main.expected``
beside that ``main.pflow``.  The check runs in-process as
``promptflow_dsl.cli.main(["check", FILE])`` with the working directory set to the
stage folder (single-file cases) or the case folder (folder cases) and ``FILE``
relative to it, so every path in the output is stable.

The ``.expected`` file holds exactly what the command wrote: stderr (every
diagnostic with its source line and caret, then the summary line for an invalid
program), followed by stdout (the ``FILE: ok (...)`` line of a valid program).
Invalid programs must exit with status 2 and write nothing to stdout; valid ones
must exit with status 0.

A known compiler bug (a crash, a valid program rejected) is recorded by a file
``NAME.xfail`` (``main.xfail`` in a folder case) beside the case, holding one line
that describes the bug: the case is then a strict ``xfail``, so it turns into a
failure (XPASS) as soon as the bug is fixed, reminding you to delete the marker
and regenerate.  Expected files are not written for ``xfail`` cases.

To regenerate the expected files after an intended change in the messages::

    PFLOW_UPDATE_GOLDEN=1 python -m pytest tests/golden -q -p no:cacheprovider

and review the diff before committing it: each message should be clear, precise,
located at the right column, and reported once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from promptflow_dsl import cli

HERE = Path(__file__).resolve().parent
STAGES = {"parse": 2, "build": 2, "check": 2, "ok": 0}
UPDATE = os.environ.get("PFLOW_UPDATE_GOLDEN") == "1"


@dataclass(frozen=True)
class Case:
    stage: str
    name: str
    cwd: Path  # working directory for the run
    file: str  # the entry file, relative to cwd (posix)
    expected: Path

    @property
    def xfail(self) -> str | None:
        marker = self.expected.with_suffix(".xfail")
        return marker.read_text(encoding="utf-8").strip() if marker.is_file() else None

    @property
    def status(self) -> int:
        return STAGES[self.stage]


def discover() -> list[Case]:
    cases: list[Case] = []
    for stage in STAGES:
        folder = HERE / stage
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            if entry.is_file() and entry.suffix == ".pflow":
                cases.append(Case(stage, entry.stem, folder, entry.name,
                                  entry.with_suffix(".expected")))
            elif entry.is_dir():
                mains = sorted(entry.rglob("main.pflow"))
                if len(mains) != 1:
                    raise RuntimeError(f"golden case folder {entry} must hold exactly one main.pflow, "
                                       f"found {len(mains)}")
                main = mains[0]
                cases.append(Case(stage, entry.name, entry, main.relative_to(entry).as_posix(),
                                  main.with_suffix(".expected")))
    return cases


CASES = discover()


def test_cases_were_found() -> None:
    per_stage = {s: sum(1 for c in CASES if c.stage == s) for s in STAGES}
    assert all(per_stage.values()), per_stage


@pytest.mark.parametrize("case", CASES, ids=[f"{c.stage}/{c.name}" for c in CASES])
def test_golden(case: Case, capsys: pytest.CaptureFixture[str],
                monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    if case.xfail:
        request.node.add_marker(pytest.mark.xfail(reason=case.xfail, strict=True))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("PFLOW_DEBUG", raising=False)
    monkeypatch.chdir(case.cwd)
    status = cli.main(["check", case.file])
    out, err = capsys.readouterr()
    actual = err + out
    if UPDATE and not case.xfail:
        case.expected.write_text(actual, encoding="utf-8", newline="\n")
    assert "Traceback" not in actual
    assert status == case.status, f"exit status {status}, expected {case.status}:\n{actual}"
    if case.status != 0:
        assert out == "", f"an invalid program wrote to stdout:\n{out}"
    else:
        assert out.startswith(f"{case.file}: ok ("), out
    if UPDATE:
        return
    assert case.expected.is_file(), (f"missing {case.expected.relative_to(HERE)}; "
                                     f"run with PFLOW_UPDATE_GOLDEN=1 to create it")
    expected = case.expected.read_text(encoding="utf-8")
    assert actual == expected
