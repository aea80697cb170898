"""The VS Code extension's TextMate grammar, tokenized for real as VS Code does
(``vscode-textmate`` and the Oniguruma engine, through ``editors/vscode/test/tokenize.js``),
on every ``.pflow`` file of the repository and on targeted cases.

The scopes are checked against the compiler's own reading of each file: its strings and
comments (the grammar's own terminals), its declarations (the AST), its templates and
the holes the sketch template parser finds."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from corpus_paths import REPO
from highlight_corpus import line_col, parsed, pflow_files, regions, templates, terminals

from promptflow_dsl.lang.holes import parse_template
from promptflow_dsl.syntax import ast, normalize

VSCODE = REPO / "editors" / "vscode"
Scopes = list[str]


@pytest.fixture(scope="module")
def node_modules() -> Path:
    if not (VSCODE / "package.sh").exists():
        pytest.skip("no editors/ folder in this copy of the project (an sdist leaves it out)")
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip("npm is not installed (Debian: apt-get install nodejs npm; .ci/run installs it)")
    r = subprocess.run(["bash", str(VSCODE / "package.sh"), "--deps"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return VSCODE / "node_modules"


def tokenize(paths: list[Path]) -> dict[str, dict[str, Any]]:
    r = subprocess.run(["node", str(VSCODE / "test" / "tokenize.js"), *map(str, paths)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


class Tokens:
    """A file's tokens: the scopes at a (1-based) line and column."""

    def __init__(self, lines: list[list[list[str]]]):
        self.lines = lines
        self.cells: list[list[Scopes]] = []
        for line in lines:
            row: list[Scopes] = []
            for text, scopes in line:
                row += [scopes.split()] * len(text)
            self.cells.append(row)

    def at(self, line: int, col: int) -> Scopes:
        return self.cells[line - 1][col - 1]

    def with_scope(self, scope: str) -> Iterator[tuple[int, str]]:
        """(line, text) of every token with a scope starting with ``scope``."""
        for n, line in enumerate(self.lines, 1):
            for text, scopes in line:
                if any(s.startswith(scope) for s in scopes.split()):
                    yield n, text


def has(scopes: Scopes, prefix: str) -> bool:
    return any(s.startswith(prefix) for s in scopes)


# ------------------------------------------------------------------ the corpus


@pytest.fixture(scope="module")
def corpus(node_modules: Path) -> dict[Path, Tokens]:
    files = pflow_files()
    assert len(files) > 100
    found = tokenize(files)
    out = {}
    for path in files:
        entry = found[str(path)]
        assert entry["stopped"] == [], f"{path}: tokenizing stopped early on lines {entry['stopped']}"
        out[path] = Tokens(entry["lines"])
    return out


def test_every_file_tokenizes_line_by_line(corpus: dict[Path, Tokens]):
    for path, toks in corpus.items():
        text = path.read_bytes().decode("utf-8", "replace")
        assert len(toks.lines) == normalize(text).count("\n") + 1, path


def test_strings_and_comments_are_the_compilers(corpus: dict[Path, Tokens]):
    terms = terminals()
    counts = {"string": 0, "comment": 0}
    for path, toks in corpus.items():
        read = parsed(path)
        if read is None:
            continue
        text, _ = read
        for kind, start, end in regions(text, terms):
            counts[kind] += 1
            want = "comment.line" if kind == "comment" else "string.quoted"
            for offset in range(start, end):
                if text[offset] == "\n":
                    continue
                line, col = line_col(text, offset)
                scopes = toks.at(line, col)
                assert has(scopes, want), (f"{path}:{line}:{col} {text[offset]!r} is in a {kind}, "
                                           f"scoped {scopes}")
                if kind == "string":
                    assert not has(scopes, "comment.line"), f"{path}:{line}:{col}"
    assert counts["string"] > 1000 and counts["comment"] > 300, counts


def test_declarations_and_their_names(corpus: dict[Path, Tokens]):
    seen = 0
    for path, toks in corpus.items():
        read = parsed(path)
        if read is None:
            continue
        _, module = read
        for decl in module.decls:
            first = toks.at(decl.span.line, decl.span.col)
            if isinstance(decl, ast.ImportDecl):
                assert has(first, "keyword.control.import"), (path, decl.span)
                continue
            assert has(first, "storage.type"), (path, decl.span, first)
            if isinstance(decl, ast.TestDecl):
                continue
            name = toks.at(decl.name_span.line, decl.name_span.col)
            want = {ast.TypeDecl: "entity.name.type", ast.ModelDecl: "variable.other.constant.model"}
            assert has(name, want.get(type(decl), "entity.name.function")), (path, decl.name, name)
            seen += 1
    assert seen > 300


def test_jinja_only_in_templates_and_holes_only_in_sketches(corpus: dict[Path, Tokens]):
    jinja = holes = 0
    for path, toks in corpus.items():
        read = parsed(path)
        if read is None:
            continue
        _, module = read
        in_templates: set[tuple[int, int]] = set()
        for tpl, sketch in templates(module):
            span = tpl.span
            cells = [(ln, c) for ln in range(span.line, span.end_line + 1)
                     for c in range(1, len(toks.cells[ln - 1]) + 1)
                     if (ln, c) >= (span.line, span.col) and (ln, c) < (span.end_line, span.end_col)]
            in_templates.update(cells)
            source = "\n".join("".join(t for t, _ in toks.lines[ln - 1])
                               for ln in range(span.line, span.end_line + 1))
            for ln, c in cells:
                line_text = "".join(t for t, _ in toks.lines[ln - 1])
                pair = line_text[c - 1:c + 1]
                scopes = toks.at(ln, c)
                if pair in ("{{", "{%") and not has(scopes, "string.quoted.double.jinja"):
                    assert has(scopes, "punctuation.section.embedded.begin.jinja"), (path, ln, c, scopes)
                    jinja += 1
                elif pair == "{#":
                    assert has(scopes, "comment.block.jinja"), (path, ln, c, scopes)
            found = [text for ln, text in toks.with_scope("variable.other.hole")
                     if any((ln, c) in in_templates for c in range(1, len(toks.cells[ln - 1]) + 1))
                     and span.line <= ln <= span.end_line]
            if sketch:
                names = [h.name for h in parse_template(tpl.value).holes]
                assert found == names, (path, span.line, found, names)
                holes += len(names)
            else:
                assert found == [], (path, span.line, found)
            assert source  # the span is inside the file
        # outside templates: no Jinja and no holes
        for n, row in enumerate(toks.cells, 1):
            for c, scopes in enumerate(row, 1):
                if (n, c) not in in_templates:
                    assert not has(scopes, "meta.embedded") and not has(scopes, "meta.hole"), \
                        (path, n, c, scopes)
    assert jinja > 100 and holes > 20, (jinja, holes)


# ------------------------------------------------------------------ targeted cases

CASES = {
    "hash_in_string": 'model m = "openai/x#y"  # a comment\n',
    "braces_in_plain_string": 'flow f(x: str) -> str {\n  return "{{ x }} and {% if %}"\n}\n',
    "nested_quotes": 'prompt p(x: str) -> str {\n  user "Say \\"{{ x }}\\" # as is"\n}\n',
    "jinja_string_in_line": "prompt p(x: str) -> str {\n  user \"{{ x | replace('a', \\\"b\\\") }}\"\n}\n",
    "multiline": ('prompt p(x: str) -> str {\n  system """\n    Line one # not a comment\n'
                  '    {% for c in x %}\n    {{ c }}{# note #}\n    {% endfor %}\n  """\n'
                  '  retries 2   # comment\n}\n'),
    "short_form": 'prompt p(x: str) -> "yes" | "no" = "Is {{ x }} true?"\nflow g() -> str { return "{{" }\n',
    "short_form_multiline": 'prompt p(x: str) -> {a: str} = """\n  A: {{ x }}\n"""\nmodel m = "{{ z }}"\n',
    "sketch_line": ('sketch s(q: str) -> {a: str, b: "x" | "y"} {\n'
                    '  template "Q: {{ q }} [a stop=\\"\\\\n\\" max_tokens=5] [b in {\\"x\\", \\"y\\"}] [[c]"\n}\n'),
    "sketch_multiline_hole": ('sketch s() -> {a: str} {\n  template """\n    A: [a stop=["\\n", "."]\n'
                              '       max_tokens=5]\n    B: {{ "[not_a_hole]" }}\n  """\n}\n'),
    "keywords_as_fields": 'type T { model: str  type: int }\nflow f(t: T) -> str { return t.model }\n',
    "test_block": ('test "t" live {\n  mock model default for p replies ["a"]\n  mock p returns "b"\n'
                   '  expect error p(x="a") contains "bad"\n  expect calls(p) == 1\n}\n'),
}


@pytest.fixture(scope="module")
def cases(node_modules: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Tokens]:
    folder = tmp_path_factory.mktemp("cases")
    paths = {}
    for name, text in CASES.items():
        paths[name] = folder / f"{name}.pflow"
        paths[name].write_text(text, encoding="utf-8")
    found = tokenize(list(paths.values()))
    for name, path in paths.items():
        assert found[str(path)]["stopped"] == [], name
    return {name: Tokens(found[str(path)]["lines"]) for name, path in paths.items()}


def scope_of(toks: Tokens, text: str, nth: int = 0) -> Scopes:
    found = [scopes.split() for line in toks.lines for t, scopes in line if t == text]
    assert len(found) > nth, (text, toks.lines)
    return found[nth]


def test_hash_inside_a_string_is_not_a_comment(cases: dict[str, Tokens]):
    toks = cases["hash_in_string"]
    assert has(scope_of(toks, "openai/x#y"), "string.quoted.double")
    assert has(scope_of(toks, " a comment"), "comment.line")
    assert has(scope_of(cases["multiline"], "    Line one # not a comment"), "string.quoted.triple")
    assert has(scope_of(cases["multiline"], " comment"), "comment.line")


def test_braces_in_a_string_that_is_not_a_template(cases: dict[str, Tokens]):
    toks = cases["braces_in_plain_string"]
    text = scope_of(toks, "{{ x }} and {% if %}")
    assert has(text, "string.quoted.double") and not has(text, "meta.embedded")
    toks = cases["short_form"]
    assert has(scope_of(toks, "{{"), "punctuation.section.embedded.begin")  # the short form's
    assert not has(scope_of(toks, "{{", 1), "meta.embedded")  # the flow's "{{"
    assert has(scope_of(toks, "g"), "entity.name.function")
    toks = cases["short_form_multiline"]
    assert has(scope_of(toks, "x", 1), "variable.other.jinja")
    assert has(scope_of(toks, "{{ z }}"), "string.quoted.double")
    assert has(scope_of(toks, "m"), "variable.other.constant.model")


def test_nested_quotes(cases: dict[str, Tokens]):
    toks = cases["nested_quotes"]
    assert has(scope_of(toks, '\\"'), "constant.character.escape")
    assert has(scope_of(toks, "x", 1), "variable.other.jinja")
    assert has(scope_of(toks, " # as is"), "string.quoted.double")
    assert has(scope_of(toks, "}", 0), "punctuation.section.braces")  # the body closes
    toks = cases["jinja_string_in_line"]
    assert has(scope_of(toks, "'a'"), "string.quoted.single.jinja")
    assert has(scope_of(toks, '\\"b\\"'), "string.quoted.double.jinja")
    assert has(scope_of(toks, "replace"), "support.function.filter.jinja")
    assert has(scope_of(toks, "}}"), "punctuation.section.embedded.end.jinja")


def test_multiline_template(cases: dict[str, Tokens]):
    toks = cases["multiline"]
    assert has(scope_of(toks, "system"), "keyword.other.clause")
    assert has(scope_of(toks, "for"), "keyword.control.jinja")
    assert has(scope_of(toks, "in"), "keyword.operator.word.jinja")
    assert has(scope_of(toks, "endfor"), "keyword.control.jinja")
    assert has(scope_of(toks, "{#"), "comment.block.jinja")
    assert has(scope_of(toks, "retries"), "keyword.other.clause")
    assert has(scope_of(toks, "2"), "constant.numeric.integer")


def test_holes(cases: dict[str, Tokens]):
    toks = cases["sketch_line"]
    assert has(scope_of(toks, "template"), "keyword.other.clause")
    assert [t for _, t in toks.with_scope("variable.other.hole")] == ["a", "b"]
    assert has(scope_of(toks, "stop"), "variable.parameter.hole")
    assert has(scope_of(toks, "max_tokens"), "variable.parameter.hole")
    assert has(scope_of(toks, "[["), "constant.character.escape.hole")
    assert has(scope_of(toks, "q", 1), "variable.other.jinja")
    toks = cases["sketch_multiline_hole"]
    assert [t for _, t in toks.with_scope("variable.other.hole")] == ["a"]
    assert has(scope_of(toks, "max_tokens"), "meta.hole")
    assert has(scope_of(toks, '"[not_a_hole]"'), "string.quoted.double.jinja")


def test_keywords_as_fields_and_tests(cases: dict[str, Tokens]):
    toks = cases["keywords_as_fields"]
    assert has(scope_of(toks, "model"), "variable.other.property")
    assert has(scope_of(toks, "type", 1), "variable.other.property")
    assert has(scope_of(toks, "T"), "entity.name.type")
    assert has(scope_of(toks, "model", 1), "variable.other.property")
    toks = cases["test_block"]
    assert has(scope_of(toks, "test"), "storage.type")
    assert has(scope_of(toks, "live"), "storage.modifier")
    for word in ("mock", "replies", "returns", "expect", "error"):
        assert has(scope_of(toks, word), "keyword.other.test"), word
    assert has(scope_of(toks, "contains"), "keyword.operator.word")
    assert has(scope_of(toks, "calls"), "support.function.test")
