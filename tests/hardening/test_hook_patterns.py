"""A hook trigger that cannot be searched with a bound is refused by ``pflow check`` (a
located error), and again when the hooked call starts, before any model call: one the
``regex`` engine rejects, and one whose counted repetitions would unroll to gigabytes
when compiled (``regex`` unrolls them: ``x{4294967294}`` took minutes and all memory)."""

from __future__ import annotations

import time

import pytest

from promptflow_dsl import CompileError, cli, loads
from promptflow_dsl.kinds.prompt import triggers
from promptflow_dsl.lang.trigger_patterns import MAX_PATTERN_SIZE, unrolled_size
from promptflow_dsl.runtime.errors import RunError
from promptflow_dsl.testing.harness import Harness

PROGRAM = '''hook h {
  when r"PATTERN"
  run upper("!")
}
prompt p(x: str) -> str {
  user "{{ x }}"
  hooks [h]
}
'''

HUGE = ["x{4294967294}", "(?:(?:(?:a{50}){50}){50}){50}", "(?>a{20000})", "(?=b{30000})c",
        "(a)(?(1)b{9999}|c{9999})", "[ab]{5000}[cd]{5001}"]


def program(pattern: str) -> str:
    return PROGRAM.replace("PATTERN", pattern)


@pytest.mark.parametrize("pattern", HUGE)
def test_a_pattern_too_large_to_compile_is_refused_by_check_quickly(tmp_path, capsys, pattern):
    (tmp_path / "p.pflow").write_text(program(pattern))
    start = time.process_time()
    code = cli.main(["check", str(tmp_path / "p.pflow")])
    _, err = capsys.readouterr()
    assert time.process_time() - start < 5  # CPU, not wall time: nothing was compiled
    assert code == 2
    assert "p.pflow:2:8: error: the trigger of hook 'h' cannot be used: the pattern is too " \
           "large to compile with a bound" in err, err


def test_a_pattern_the_regex_engine_rejects_is_refused_by_check(monkeypatch):
    def reject(pattern, *args, **kwargs):
        raise ValueError("unsupported here")

    monkeypatch.setattr(triggers._regex, "compile", reject)
    with pytest.raises(CompileError) as info:
        loads(program("x+y"))
    (diag,) = info.value.diagnostics
    assert (diag.span.line, diag.span.col) == (2, 8)
    assert diag.message == ("the trigger of hook 'h' cannot be used: the pattern cannot be "
                            "searched with a timeout: the regex engine rejects it "
                            "(unsupported here)")


def test_the_run_time_guard_stays(monkeypatch):
    prog = loads(program("x{100}(?=y)"))  # fine when checked
    monkeypatch.setattr("promptflow_dsl.lang.trigger_patterns.MAX_PATTERN_SIZE", 50)
    harness = Harness(prog)
    harness.mock_model("default", ["xxx"])
    with pytest.raises(RunError) as info:
        harness.run("p", x="q")
    assert "too large to compile with a bound" in info.value.message
    assert info.value.span is not None and info.value.span.line == 2
    assert harness.model_calls("default") == []


@pytest.mark.parametrize("pattern, size", [("abc", 3), (r"\d+(?=\s)", 3), ("(?:ab){3}", 6),
                                           ("a{2,}", 3), ("a|bc", 3), ("x{4294967294}",
                                                                      MAX_PATTERN_SIZE + 1)])
def test_unrolled_size(pattern, size):
    assert unrolled_size(pattern) == size


def test_ordinary_triggers_still_check_and_fire():
    prog = loads(program(r"(?P<n>\d+) apples(?=\s)"))
    harness = Harness(prog)
    harness.mock_model("default", ["I have 12 apples today.", " Done."])
    assert harness.run("p", x="q") == "I have 12 apples! Done."


@pytest.mark.parametrize("pattern, why", [
    ("x{4294967296}", "the repetition number is too large"),
    ("y{1,99999999999999999999}", "the repetition number is too large"),
    ("(" * 3000 + "a" + ")" * 3000, "it is nested too deeply"),
])
def test_a_pattern_re_cannot_hold_is_a_located_error_not_exit_70(tmp_path, capsys, pattern, why):
    (tmp_path / "p.pflow").write_text(program(pattern))
    code = cli.main(["check", str(tmp_path / "p.pflow")])
    _, err = capsys.readouterr()
    assert code == 2, err
    assert f"p.pflow:2:8: error: invalid regular expression in hook 'h': {why}" in err, err
