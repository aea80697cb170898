"""Hostile ``.pflow`` files never crash, hang or run code on the compile side.

One class of attack per section; each reproducer is the size the attack needs and must
end in a normal exit status (0, 1 or 2) with, for a bad program, a message located at
``file:line:col`` — never exit 70 ("internal error"), a traceback or a hang.  Inputs
that could hang (FIFOs, constant folding) are checked in a child process with a
time-out as a safety net, so a regression fails instead of blocking the suite.
"""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest

from promptflow_dsl import CompileError, cli, loads

M = 'model m = "echo"\n'
BIG = "9" * 5000  # over Python's 4,300-digit limit on converting text to an integer
SAFETY_NET = 120  # seconds; the inputs below take well under a second each

# ------------------------------------------------------------------ helpers


def _project(tmp_path: Path, text: str, files: dict[str, str | bytes] | None = None) -> Path:
    (tmp_path / "pflow.toml").write_text("")
    for name, content in (files or {}).items():
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if content == "FIFO":
            os.mkfifo(p)
        elif isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content, encoding="utf-8")
    main = tmp_path / "main.pflow"
    main.write_bytes(text.encode("utf-8", "surrogatepass"))
    return main


def check(tmp_path: Path, text: str, files: dict[str, str | bytes] | None = None,
          capsys: pytest.CaptureFixture[str] | None = None) -> tuple[int, str]:
    """``pflow check`` in this process: (exit status, what it printed)."""
    main = _project(tmp_path, text, files)
    code = cli.main(["check", str(main)])
    out = ""
    if capsys is not None:
        captured = capsys.readouterr()
        out = captured.out + captured.err
    return code, out


def check_child(tmp_path: Path, text: str, files: dict[str, str | bytes] | None = None,
                env: dict[str, str] | None = None) -> tuple[int, str]:
    """``pflow check`` in a child process (for inputs that used to hang)."""
    main = _project(tmp_path, text, files)
    r = subprocess.run([sys.executable, "-m", "promptflow_dsl", "check", str(main)],
                       capture_output=True, text=True, errors="replace", timeout=SAFETY_NET,
                       env={**os.environ, **(env or {})})
    return r.returncode, r.stdout + r.stderr


def located(out: str, message: str) -> bool:
    """Whether ``out`` has an error ``main.pflow:LINE:COL: error: ...message...``."""
    return any(re.search(r"main\.pflow:\d+:\d+: error: ", line) and message in line
               for line in out.splitlines())


def assert_clean(code: int, out: str) -> None:
    assert code in (0, 1, 2), out
    assert "internal error" not in out and "Traceback" not in out, out


# ------------------------------------------------------------------ 1. integer literals


INT_CASES = {
    "expression": M + f"flow f(x: str) -> int {{ return {BIG} }}\n",
    "default": M + f"flow f(x: int = {BIG}) -> int {{ return x }}\n",
    "negative": M + f"flow f(x: str) -> int {{ return -{BIG} }}\n",
    "experts auto max": M + f'route r(q: str) -> str {{ by embedding\n experts auto from "d.jsonl" max {BIG} }}\n',
    "beam(N)": M + f'sketch s(t: str) -> {{a: str}} {{ decoder beam({BIG})\n template "{{{{t}}}} [a]" }}\n',
    "retries": M + f'prompt p(x: str) -> str {{ user "{{{{x}}}}"\n retries {BIG} }}\n',
    "constraint": M + f"type T {{ a: str(max_length={BIG}) }}\n",
    "record value": M + f"flow f(x: str) -> any {{ return {{a: [1, {BIG}]}} }}\n",
    "threshold": M + 'prompt p(x: str) -> str = "{{x}}"\n'
                     f'eval e {{ data "d.jsonl" as {{x: str}}\n run p(x=row.x)\n metric m = 1\n'
                     f" threshold m >= {BIG} }}\n",
}


@pytest.mark.parametrize("case", sorted(INT_CASES))
def test_an_integer_literal_over_4300_digits_is_a_located_error(tmp_path, capsys, case):
    code, out = check(tmp_path, INT_CASES[case], {"d.jsonl": '{"x": "a"}\n'}, capsys)
    assert_clean(code, out)
    assert code == 2
    assert located(out, "integer literal too long (5000 digits; at most 4300)"), out


def test_an_integer_literal_of_4300_digits_is_fine(tmp_path, capsys):
    code, out = check(tmp_path, M + f"flow f(x: str) -> int {{ return {'9' * 4300} }}\n",
                      capsys=capsys)
    assert code == 0, out


def test_a_metric_declared_twice_is_a_located_error_even_where_evaluate_reads_it(tmp_path, capsys):
    """Found by bench/fuzz.py at 10^5 programs: the duplicate reached the record type of
    `evaluate(e)` and ended in an internal error."""
    text = (M + 'type Case { q: str }\nprompt answer(q: str) -> str = "{{ q }}"\n'
            'eval quiz {\n  data "d.jsonl" as Case\n  run answer(q=row.q)\n'
            '  metric a = out == row.q\n  metric a = out == row.q\n  metric a = true\n}\n'
            'test "t" {\n  r = evaluate(quiz)\n  expect r.metrics.a == 1.0\n}\n')
    code, out = check(tmp_path, text, {"d.jsonl": '{"q": "a"}\n'}, capsys)
    assert_clean(code, out)
    assert code == 2
    assert located(out, "duplicate metric 'a' in eval 'quiz'"), out
    assert out.count("duplicate metric 'a'") == 2, out


def test_a_threshold_bound_past_the_float_range_is_a_located_error(tmp_path, capsys):
    text = (M + 'prompt p(x: str) -> str = "{{x}}"\n'
            'eval e { data "d.jsonl" as {x: str}\n run p(x=row.x)\n metric m = 1\n'
            f" threshold m >= {'9' * 400} }}\n")
    code, out = check(tmp_path, text, {"d.jsonl": '{"x": "a"}\n'}, capsys)
    assert_clean(code, out)
    assert located(out, "a threshold's bound is too large for a number"), out


# ------------------------------------------------------------------ 2. path strings

LONG_NAME = "a" * 5000  # ENAMETOOLONG
LONG_PATH = "a/" * 3000 + "x"  # every part short, the whole too long
PATHS = {"long name": (LONG_NAME, "too long"), "long path": (LONG_PATH, "is too long"),
         "NUL": ("a\\u0000b", "holds a NUL character"),
         "surrogate": ("a\\ud800b", "holds a lone surrogate (\\ud800)"),
         "low surrogate": ("a\\udc80b", "holds a lone surrogate (\\udc80)")}

PATH_USES = {
    "import": lambda p: M + f'import "{p}.pflow" as lib\n',
    "demos": lambda p: M + f'prompt p(x: str) -> str {{ user "{{{{x}}}}"\n demos "{p}.jsonl" }}\n',
    "expert demos": lambda p: M + f'route r(q: str) -> str {{ by embedding\n'
                                  f' expert a {{ instruction "a"\n demos "{p}.jsonl" }}\n'
                                  f' expert b {{ instruction "b"\n demos "d.jsonl" }} }}\n',
    "decompose prompt file": lambda p: M + 'tool t(x: str) -> str = python "tools:f"\n'
                                           f'decompose d(q: str) -> str {{ handlers {{ t: t }}\n'
                                           f' prompt "{p}.txt" }}\n',
    "experts auto from": lambda p: M + f'route r(q: str) -> str {{ by embedding\n'
                                       f' experts auto from "{p}.jsonl" max 2 }}\n',
    "read_text": lambda p: M + f'flow f(x: str) -> str {{ return read_text("{p}") }}\n',
    "read_jsonl": lambda p: M + f'flow f(x: str) -> list[any] {{ return read_jsonl("{p}") }}\n',
    "eval data": lambda p: M + 'prompt p(x: str) -> str = "{{x}}"\n'
                               f'eval e {{ data "{p}.jsonl" as {{x: str}}\n run p(x=row.x)\n'
                               f' metric m = 1 }}\n',
}
SIDE_FILES = {"d.jsonl": '{"input": "a", "output": "b"}\n', "tools.py": "def f(x):\n    return x\n"}


@pytest.mark.parametrize("use", sorted(PATH_USES))
@pytest.mark.parametrize("kind", sorted(PATHS))
def test_a_path_no_file_can_have_is_a_located_error(tmp_path, capsys, use, kind):
    path, message = PATHS[kind]
    code, out = check(tmp_path, PATH_USES[use](path), SIDE_FILES, capsys)
    assert_clean(code, out)
    assert code == 2
    assert located(out, message), out
    assert "\x00" not in out  # control characters are escaped in messages


@pytest.mark.parametrize("module", ["a" * 5000, "std." + "a" * 5000, "a." * 2000 + "b"])
def test_a_dotted_import_too_long_for_a_path_is_a_located_error(tmp_path, capsys, module):
    code, out = check(tmp_path, M + f"import {module}\n", capsys=capsys)
    assert_clean(code, out)
    assert code == 2 and re.search(r"main\.pflow:2:1: error: ", out), out


# ------------------------------------------------------------------ 3. tool modules

TOOL = M + 'tool t(x: str) -> str = python "tmod:f"\n'


@pytest.mark.parametrize("source,message", [
    ("def f(:\n", "has a syntax error"),
    ("def f(x):\n    return 1\x00\n", "source code string cannot contain null bytes"),
    ("x = " + "(" * 200_000 + ")" * 200_000 + "\n", "too many nested parentheses"),
    ("x = 1" + "+1" * 500_000 + "\ndef f(x): pass\n", "nested too deeply"),  # RecursionError
    ("x = " + "-" * 200_000 + "1\ndef f(x): pass\n", "nested too deeply"),  # MemoryError
    (b"def f(x):\n    return '\xff'\n", "not UTF-8"),
], ids=["syntax", "nul", "parentheses", "recursion", "memory", "utf8"])
def test_a_tool_module_python_cannot_parse_is_a_located_error(tmp_path, capsys, source, message):
    code, out = check(tmp_path, TOOL, {"tmod.py": source}, capsys)
    assert_clean(code, out)
    assert code == 2
    assert re.search(r"main\.pflow:2:\d+: error: ", out) and message in out, out


@pytest.mark.parametrize("exc", [MemoryError(), RecursionError("deep"), ValueError("bad"),
                                 SyntaxError("bad")])
def test_every_error_of_ast_parse_is_reported_at_the_tool(tmp_path, capsys, monkeypatch, exc):
    from promptflow_dsl.check import pyrefs

    def explode(source: str) -> None:
        raise exc

    monkeypatch.setattr(pyrefs, "_top_level_names", explode)
    code, out = check(tmp_path, TOOL, {"tmod.py": "def f(x): pass\n"}, capsys)
    assert_clean(code, out)
    assert code == 2 and re.search(r"main\.pflow:2:\d+: error: Python module 'tmod'", out), out


def test_a_tool_module_too_large_is_a_located_error(tmp_path, capsys):
    from promptflow_dsl.check.pyrefs import MAX_MODULE_BYTES

    code, out = check(tmp_path, TOOL, {"tmod.py": "#" * (MAX_MODULE_BYTES + 1)}, capsys)
    assert_clean(code, out)
    assert located(out, "is too large to check"), out


def test_a_tool_module_name_too_long_for_a_path_is_a_located_error(tmp_path, capsys):
    code, out = check(tmp_path, M + f'tool t(x: str) -> str = python "{"m" * 5000}:f"\n',
                      capsys=capsys)
    assert_clean(code, out)
    assert located(out, "cannot look for Python module"), out


# ------------------------------------------------------------------ 4. hangs

FOLDING = {
    "power": "{{ 9**(9**9) }}",
    "center": "{{ 'x'|center(2000000000) }}",
    "repeat": "{{ 'x' * 2000000000 }}",
    "printf": "{{ '%2000000000s' % 1 }}",
    "format filter": "{{ '%2000000000s'|format(1) }}",
    "indent": "{{ 'x'|indent(2000000000) }}",
}


@pytest.mark.parametrize("case", sorted(FOLDING))
def test_checking_a_template_evaluates_nothing(tmp_path, case):
    text = M + f'prompt p(x: str) -> str = "{{{{x}}}}{FOLDING[case]}"\n'
    code, out = check_child(tmp_path, text)
    assert code == 0, out  # the template is valid; only rendering it is refused


@pytest.mark.parametrize("case", sorted(FOLDING))
def test_rendering_is_bounded_with_a_clear_error(case):
    from jinja2.sandbox import SecurityError

    from promptflow_dsl.lang.templates import template_env

    with pytest.raises(SecurityError, match="template limit: "):
        template_env().from_string(FOLDING[case]).render()


@pytest.mark.parametrize("source", [
    "{{ '{:2000000000}'.format(1) }}", "{{ 'x'.center(2000000000) }}",
    "{{ 'x'.zfill(2000000000) }}", "{{ [1]|batch(2000000000, 0)|list }}",
    "{{ ['x']|map('center', 2000000000)|list }}", "{{ lipsum(2000000000) }}",
    "{{ 3 ** 100000 }}", "{{ (10 ** 4000) * (10 ** 4000) }}", "{{ [1, 2] * 2000000 }}",
    "{{ '{:{w}}'.format(1, w=2000000000) }}",
])
def test_other_amplifications_are_bounded_too(source):
    from jinja2.sandbox import SecurityError

    from promptflow_dsl.lang.templates import template_env

    with pytest.raises(SecurityError, match="template limit: "):
        template_env().from_string(source).render()


def test_ordinary_templates_render_as_before():
    from promptflow_dsl.lang.templates import template_env

    src = ("{{ 'x'|center(5) }}|{{ 2 ** 10 }}|{{ 'ab' * 3 }}|{{ '%05d' % 42 }}|"
           "{{ '{:>4}'.format('a') }}|{{ 'a\nb'|indent(2) }}|{{ [1, 2, 3]|batch(2)|list }}|"
           "{{ 7 % 3 }}|{{ ['a', 'b']|map('upper')|join(',') }}|{{ '%s-%s'|format(1, 2) }}|"
           "{{ 'x'.rjust(3) }}|{{ [0] * 3 }}|{{ 10 ** 3 * 7 }}")
    assert template_env().from_string(src).render() == (
        "  x  |1024|ababab|00042|   a|a\n  b|[[1, 2], [3]]|1|A,B|1-2|  x|[0, 0, 0]|7000")


FIFO_USES = {
    "import": M + 'import "f.pflow"\n',
    "demos": M + 'prompt p(x: str) -> str { user "{{x}}"\n demos "f.jsonl" }\n',
    "experts auto from": M + 'route r(q: str) -> str { by embedding\n experts auto from "f.jsonl" max 2 }\n',
    "decompose prompt file": M + 'tool t(x: str) -> str = python "tools:f"\n'
                                 'decompose d(q: str) -> str { handlers { t: t }\n prompt "f.txt" }\n',
    "read_text": M + 'flow f(x: str) -> str { return read_text("f.txt") }\n',
    "eval data": M + 'prompt p(x: str) -> str = "{{x}}"\n'
                     'eval e { data "f.jsonl" as {x: str}\n run p(x=row.x)\n metric m = 1 }\n',
    "tool module": M + 'tool t(x: str) -> str = python "f:g"\n',
}
FIFO_NAMES = {"import": "f.pflow", "demos": "f.jsonl", "experts auto from": "f.jsonl",
              "decompose prompt file": "f.txt", "read_text": "f.txt", "eval data": "f.jsonl",
              "tool module": "f.py"}


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
@pytest.mark.parametrize("use", sorted(FIFO_USES))
def test_a_fifo_is_refused_not_read(tmp_path, use):
    code, out = check_child(tmp_path, FIFO_USES[use], {FIFO_NAMES[use]: "FIFO", **SIDE_FILES})
    assert_clean(code, out)
    assert code == 2 and re.search(r"main\.pflow:\d+:\d+: error: ", out), out
    if use != "tool module":  # a FIFO is no module file: "cannot find Python module"
        assert "is a FIFO, not a regular file" in out, out


@pytest.mark.parametrize("use", ["import", "read_text"])
def test_a_folder_is_refused(tmp_path, capsys, use):
    (tmp_path / FIFO_NAMES[use]).mkdir()
    code, out = check(tmp_path, FIFO_USES[use], capsys=capsys)
    assert_clean(code, out)
    assert located(out, "is a folder, not a file"), out


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_a_device_is_refused(tmp_path, capsys):
    text = M + 'flow f(x: str) -> str { return read_text("/dev/zero") }\n'
    main = _project(tmp_path, text)
    code = cli.main(["check", str(main), "--allow-path", "/dev"])
    out = "".join(capsys.readouterr())
    assert_clean(code, out)
    assert located(out, "is a device, not a regular file"), out


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_or_device_given_to_pflow_check_is_refused(tmp_path):
    fifo = tmp_path / "main.pflow"
    os.mkfifo(fifo)
    for target in (str(fifo), "/dev/zero"):
        r = subprocess.run([sys.executable, "-m", "promptflow_dsl", "check", target],
                           capture_output=True, text=True, timeout=SAFETY_NET)
        assert r.returncode == 2, r.stderr
        assert re.search(r":1:1: error: is a (FIFO|device), not a \.pflow file", r.stdout + r.stderr)


def _sketch(template: str) -> str:
    return M + f'sketch s(t: str) -> {{a: str}} {{\n template """{template}"""\n}}\n'


BAD_HOLES = "[a b] " * 170_000  # 1 MB: every hole an error (unknown option, duplicate name)
MANY_LINES = "".join(f"line\n[h{i}]\n" for i in range(80_000))  # 1 MB: a hole every line


def test_a_one_megabyte_template_of_bad_holes_reports_100_and_counts_the_rest():
    assert len(BAD_HOLES) >= 1_000_000
    with pytest.raises(CompileError) as caught:
        loads(_sketch(BAD_HOLES))
    errors = [d for d in caught.value.diagnostics if d.is_error and d.span.line == 3]
    assert len(errors) == 101
    assert errors[-1].message == ("339899 more problems in this template (only the first 100 "
                                  "are reported)")


def test_a_one_megabyte_template_of_many_lines_is_located_line_by_line():
    assert len(MANY_LINES) >= 1_000_000
    with pytest.raises(CompileError) as caught:
        loads(_sketch(MANY_LINES))
    # each hole is no field of the return type: an error at its own line (the template
    # starts on line 3)
    errors = [d for d in caught.value.diagnostics if d.is_error and d.span.line >= 3]
    assert len(errors) == 80_000
    last = max(errors, key=lambda d: (d.span.line, d.span.col))
    assert (last.span.line, last.span.col) == (3 + 2 * 80_000 - 1, 2)


@pytest.mark.parametrize("template", [BAD_HOLES, MANY_LINES], ids=["bad holes", "many lines"])
def test_pflow_check_renders_a_one_megabyte_template_s_errors(tmp_path, template):
    code, out = check_child(tmp_path, _sketch(template))
    assert_clean(code, out)
    assert code == 2 and re.search(r"main\.pflow:\d+:\d+: error: ", out), out[-2000:]


def test_hole_locations_are_exact():
    from promptflow_dsl.lang.holes import offset_to_line_col

    text = "ab\ncd\n\nef"
    for offset in range(len(text) + 3):
        clamped = min(offset, len(text))
        before = text[:clamped]
        assert offset_to_line_col(text, offset) == (before.count("\n"),
                                                    clamped - (before.rfind("\n") + 1))


# ------------------------------------------------------------------ 5. parser cache


class _Plant:
    """Unpickling this creates the marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (open, (self.marker, "w"))


def _cache_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("parser-*.cache"))


def _check_ok(tmp_path: Path, cache: Path) -> None:
    code, out = check_child(tmp_path, M + 'prompt p(x: str) -> str = "{{x}}"\n',
                            env={"PFLOW_PARSER_CACHE_DIR": str(cache)})
    assert code == 0, out


def test_a_planted_parser_cache_is_never_unpickled(tmp_path):
    cache, work = tmp_path / "cache", tmp_path / "work"
    work.mkdir()
    _check_ok(work, cache)  # creates the key and a signed cache file
    key = cache / "parser-cache.key"
    assert key.stat().st_mode & 0o777 == 0o600
    (cached,) = _cache_files(cache)
    marker = tmp_path / "pwned"
    evil = pickle.dumps(_Plant(str(marker)))
    from promptflow_dsl.syntax.parser import _MAGIC

    for planted in (evil, _MAGIC + b"\0" * 32 + evil, _MAGIC + evil):
        cached.write_bytes(planted)
        _check_ok(work, cache)
        assert not marker.exists()
        assert cached.read_bytes() != planted  # rebuilt and signed again
    # the same file is ignored too when the key is not private (it could be forged)
    cached.write_bytes(evil)
    key.chmod(0o644)
    _check_ok(work, cache)
    assert not marker.exists()


def test_a_signed_parser_cache_is_used(tmp_path):
    cache, work = tmp_path / "cache", tmp_path / "work"
    work.mkdir()
    _check_ok(work, cache)
    (cached,) = _cache_files(cache)
    before = cached.stat().st_mtime_ns, cached.read_bytes()
    _check_ok(work, cache)
    assert (cached.stat().st_mtime_ns, cached.read_bytes()) == before


# ------------------------------------------------------------------ 6. keyword boundaries


GLUED = [
    "flowmain(x: str) -> str { return x }",
    'promptp(x: str) -> str = "hi"',
    'modelm = "echo"',
    "typeT = str",
    "importstd.text",
    "tooltx(x: str) -> str = python \"m:f\"",
    'hookh { when "x"\n run f() }',
    'evalx { data "d.jsonl" as {x: str}\n run f()\n metric m = 1 }',
    'testx "t" { }',
    "flow f(x: str) -> str { returnx }",
    "flow f(x: bool) -> bool { return x andx }",
    'tool t(x: str) -> str = pythonx "m:f"',
    'test "t" livex { }',
    'test "t" { mockmodel m replies [] }',
    'test "t" { expecterror f() contains "x" }',
    'route r(q: str) -> str { experts autofrom "a" max 2 }',
    'route r(q: str) -> str { expertsauto from "a" max 2 }',
    'eval e { data "a.jsonl" asT\n run f()\n metric m = 1 }',
]


@pytest.mark.parametrize("text", GLUED)
def test_a_keyword_glued_to_a_name_is_one_word(text):
    from promptflow_dsl.syntax import parse_module
    from promptflow_dsl.syntax.source import SourceFile

    module, diags = parse_module(SourceFile("t.pflow", text))
    assert module is None, text
    (diag,) = diags
    glued = re.search(r"\b(flowmain|promptp|modelm|typeT|importstd|tooltx|hookh|evalx|testx|"
                      r"returnx|andx|pythonx|livex|mockmodel|expecterror|autofrom|expertsauto|"
                      r"asT)\b", text)
    assert glued is not None
    # the error is at the glued word or after it, never inside it
    offset = sum(len(line) + 1 for line in text.split("\n")[: diag.span.line - 1]) + diag.span.col - 1
    assert offset == glued.start() or offset >= glued.end(), (diag.message, text)


@pytest.mark.parametrize("text", [
    "flow f(x: str) -> str { return(x) }",
    'tool t(x: str) -> str = python"m:f"',
    "flow f(x: bool) -> bool { return x or(x) }",
    "flow f(x: bool) -> bool { return true}",
    "flow f(x: list[int]) -> list[int] { return [i for i in(x)] }",
    "flow f(x: int) -> int { return x if(x > 1)else 1 }",
    "flow f(x: str) -> str { returned = x\n return returned }",
    "flow f(flowing: str) -> str { return flowing }",
    "type T { model: str, prompt_x: int }",
])
def test_keywords_next_to_punctuation_and_names_that_start_with_one_still_parse(text):
    from promptflow_dsl.syntax import parse_module
    from promptflow_dsl.syntax.source import SourceFile

    module, diags = parse_module(SourceFile("t.pflow", text))
    assert module is not None and not [d for d in diags if d.is_error], diags


def test_flowmain_is_not_a_flow_named_main(tmp_path, capsys):
    code, out = check(tmp_path, M + "flowmain(x: str) -> str { return x }\n", capsys=capsys)
    assert code == 2
    assert re.search(r"main\.pflow:2:1: error: expected a declaration .* found 'flowmain'", out), out


def test_a_backtracking_pattern_never_stalls_a_value_check():
    from promptflow_dsl.lang.constraints import Constraints

    c = Constraints(pattern=r"(a+)+$")
    problem = c.violation("a" * 40 + "!")  # catastrophic for a backtracking engine
    assert problem is not None and "pattern" in problem


@pytest.mark.parametrize("command", ["check", "run", "eval", "graph", "test"])
def test_a_path_too_long_on_the_command_line_is_exit_2(command, capsys):
    from promptflow_dsl import cli

    assert cli.main([command, "a" * 5000]) == 2
    err = capsys.readouterr().err
    assert "internal error" not in err


# ------------------------------------------------------------------ value patterns

@pytest.mark.parametrize("decl, message", [
    ('type T { a: str(pattern="q{4294967295}") }',
     r"2:25: error: invalid regular expression in constraint 'pattern': the repetition number"),
    ('type T { a: str(pattern="q{429496729}") }',
     r"2:25: error: constraint 'pattern' cannot be matched with a bound: its repetitions unroll"),
    ('type T { a: str(pattern="' + "(" * 3000 + "a" + ")" * 3000 + '") }',
     r"2:25: error: invalid regular expression in constraint 'pattern': "),
    ('sketch s(x: str) -> str {\n  template """{{ x }} [a regex="q{429496729}"]"""\n}',
     r"3:32: error: regex too large to match with a bound: its repetitions unroll"),
    ('sketch s(x: str) -> str {\n  template """{{ x }} [a regex="q{4294967295}"]"""\n}',
     r"3:32: error: invalid regex: the repetition number is too large"),
])
def test_a_value_pattern_too_large_to_match_with_a_bound_is_a_located_error(tmp_path, capsys,
                                                                           decl, message):
    code, out = check(tmp_path, M + decl + "\n", capsys=capsys)
    assert code == 2
    assert re.search(r"main\.pflow:" + message, out), out


def test_large_single_character_repetitions_are_still_fine(tmp_path, capsys):
    code, out = check(tmp_path, M + 'type T { a: str(pattern="[a-z]{0,50000}") }\n', capsys=capsys)
    assert code == 0, out


def test_a_sketch_hole_regex_is_matched_under_a_time_limit():
    from promptflow_dsl.kinds.sketch.run import HoleSpec, parse_value
    from promptflow_dsl.lang.holes import Hole, parse_template

    hole = parse_template('[a regex="(a|aa)+$"]').segments[0]
    assert isinstance(hole, Hole)
    spec = HoleSpec(hole, "regex", "ask", None, None, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="took more than"):
        parse_value(spec, "a" * 60 + "!")  # exponential for a backtracking engine
    assert parse_value(spec, "aaa")[0] == "aaa"
