"""The Pygments lexer: found by name and file name through its entry point, run by the
``pygmentize`` console script on every example with no ``Error`` token, the token types
of keywords, strings, comments, Jinja and holes, and a ```pflow block in Markdown
highlighted by Python-Markdown's ``codehilite`` (what mkdocs uses)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from corpus_paths import REPO, corpus_files
from highlight_corpus import line_col, parsed, pflow_files, regions, templates, terminals
from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
from pygments.token import Comment, Error, Keyword, Name, Number, Operator, String, _TokenType

from promptflow_dsl.highlight.lexer import PflowLexer
from promptflow_dsl.lang.holes import parse_template

EXAMPLES = corpus_files() + sorted((REPO / "tests" / "golden" / "ok").rglob("*.pflow"))


def tokens(text: str) -> list[tuple[_TokenType, str]]:
    """Tokens, whitespace-only ones dropped; a string's or Jinja comment's pieces joined."""
    out: list[tuple[_TokenType, str]] = []
    for t, v in PflowLexer().get_tokens(text):
        if out and out[-1][0] is t and (t in String.Double or t in Comment.Multiline):
            out[-1] = (t, out[-1][1] + v)
        else:
            out.append((t, v))
    return [(t, v) for t, v in out if v.strip()]


def token_of(text: str, value: str, nth: int = 0) -> _TokenType:
    found = [t for t, v in tokens(text) if v == value]
    assert len(found) > nth, (value, tokens(text))
    return found[nth]


def test_registered_by_entry_point():
    assert isinstance(get_lexer_by_name("pflow"), PflowLexer)
    assert isinstance(get_lexer_for_filename("triage.pflow"), PflowLexer)


def test_pygmentize_highlights_every_example_without_errors():
    pygmentize = Path(sys.executable).with_name("pygmentize")
    if not pygmentize.exists():
        pytest.skip(f"no pygmentize console script beside {sys.executable}")
    assert len(EXAMPLES) > 30
    for path in EXAMPLES:
        r = subprocess.run([str(pygmentize), "-l", "pflow", "-f", "raw", str(path)],
                           capture_output=True, text=True, check=False)
        assert r.returncode == 0, (path, r.stderr)
        assert "Token.Keyword" in r.stdout, path
        assert "Token.Error" not in r.stdout, (path, [ln for ln in r.stdout.splitlines()
                                                      if ln.startswith("Token.Error")][:5])


def test_every_pflow_file_round_trips():
    """Every .pflow in the repository, broken ones included: the tokens are the text."""
    for path in sorted(REPO.rglob("*.pflow")):
        if ".venv" in path.parts or "node_modules" in path.parts:
            continue
        text = path.read_bytes().decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")
        lexer = PflowLexer(stripnl=False, ensurenl=False)
        assert "".join(v for _, v in lexer.get_tokens(text)) == text.lstrip("\ufeff"), path


def char_tokens(text: str) -> list[_TokenType]:
    """The token type of each character of ``text``."""
    out: list[_TokenType] = []
    for t, v in PflowLexer(stripnl=False, ensurenl=False).get_tokens(text):
        out += [t] * len(v)
    assert len(out) == len(text)
    return out


def test_strings_comments_jinja_and_holes_are_the_compilers():
    """On every .pflow file that parses: the compiler's strings and comments are
    String and Comment tokens, a template's ``{{``/``{%`` open Jinja, a plain string's
    do not, and a sketch template's hole names are the holes its parser finds."""
    terms = terminals()
    checked = holes = 0
    for path in pflow_files():
        read = parsed(path)
        if read is None:
            continue
        text, module = read
        types = char_tokens(text)
        for kind, start, end in regions(text, terms):
            want = Comment.Single if kind == "comment" else String
            assert types[start] in want, (path, line_col(text, start), kind, types[start])
            if kind == "comment":
                assert all(t in Comment.Single for t in types[start:end]), (path, line_col(text, start))
        offsets = [0]
        for line in text.split("\n"):
            offsets.append(offsets[-1] + len(line) + 1)
        in_templates: set[int] = set()
        for tpl, sketch in templates(module):
            s = tpl.span
            start, end = offsets[s.line - 1] + s.col - 1, offsets[s.end_line - 1] + s.end_col - 1
            in_templates.update(range(start, end))
            names = [text[i:i + len(v)] for i, v in _runs(types, start, end, Name.Variable)
                     if i > 0 and types[i - 1] in String.Interpol]
            if sketch:
                assert names == [h.name for h in parse_template(tpl.value).holes], (path, s.line)
                holes += len(names)
            for i in range(start, end - 1):
                if text[i:i + 2] in ("{{", "{%") and types[i] not in String.Double:
                    assert types[i] in Comment.Preproc, (path, line_col(text, i), types[i])
        for i, t in enumerate(types):
            if i not in in_templates:
                assert t not in Comment.Preproc and t not in String.Interpol, (path, line_col(text, i), t)
        checked += 1
    assert checked > 150 and holes > 20, (checked, holes)


def _runs(types: list[_TokenType], start: int, end: int, kind: _TokenType) -> list[tuple[int, str]]:
    """(offset, placeholder) of each run of ``kind`` tokens in ``start:end``."""
    out: list[tuple[int, str]] = []
    i = start
    while i < end:
        if types[i] in kind:
            j = i
            while j < end and types[j] in kind:
                j += 1
            out.append((i, "x" * (j - i)))
            i = j
        else:
            i += 1
    return out


def test_quote_error_is_an_error_token():
    assert Error in {t for t, _ in tokens("model m = 'x'\n")}


PROGRAM = '''\
# a comment
import std.text as text
model fast = "openai/gpt-4o-mini" { temperature: 0 }
type Verdict { label: "yes" | "no"  reason: str }

prompt classify(review: str, n: int = 2) -> Verdict {
  model fast
  system "You label reviews. # not a comment"
  user """
    {# a Jinja comment #}
    {% for d in demos %}{{ d.input | upper }}{% endfor %}
    Review: {{ review }}
  """
  retries 2
}

prompt shout(text: str) -> str = "Repeat: {{ text }}"

sketch judge(claim: str) -> {verdict: "true" | "false"} {
  template """
    Claim: {{ claim }} [[not a hole]
    Verdict: [verdict in {"true", "false"}]
  """
}

flow f(x: str) -> str {
  label = "{{ x }} is plain text"
  return upper(text.strip(x)) + str(3.5)
}

test "t" {
  mock classify returns {label: "yes", reason: "r"}
  expect f(x="a") == "A"
}
'''


def test_keywords_names_and_clauses():
    assert token_of(PROGRAM, "prompt") in Keyword.Declaration
    assert token_of(PROGRAM, "classify") in Name.Function
    assert token_of(PROGRAM, "Verdict") in Name.Class
    assert token_of(PROGRAM, "fast") in Name.Constant
    assert token_of(PROGRAM, "import") in Keyword.Namespace
    assert token_of(PROGRAM, "user") in Keyword.Pseudo
    assert token_of(PROGRAM, "retries") in Keyword.Pseudo
    assert token_of(PROGRAM, "return") in Keyword
    assert token_of(PROGRAM, "mock") in Keyword
    assert token_of(PROGRAM, "returns") in Keyword
    assert token_of(PROGRAM, "expect") in Keyword
    assert token_of(PROGRAM, "str") in Keyword.Type
    assert token_of(PROGRAM, "upper", 1) in Name.Builtin
    assert token_of(PROGRAM, "2") in Number.Integer
    assert token_of(PROGRAM, "3.5") in Number.Float
    assert token_of(PROGRAM, "->") in Operator


def test_strings_and_comments():
    assert token_of(PROGRAM, "# a comment") in Comment.Single
    # a `#` inside a string is part of the string
    assert token_of(PROGRAM, "\"You label reviews. # not a comment\"") in String
    # `{{` in a string that is not a template is plain text
    assert token_of(PROGRAM, "\"{{ x }} is plain text\"") in String
    raw = tokens('flow f() -> str { return r"a\\"b" + "c\\n" }\n')
    assert (String.Affix, "r") in raw and (String.Escape, "\\n") in raw


def test_jinja_in_templates():
    assert token_of(PROGRAM, "{# a Jinja comment #}") in Comment.Multiline
    assert token_of(PROGRAM, "{%") in Comment.Preproc
    assert token_of(PROGRAM, "for", 0) in Keyword
    assert token_of(PROGRAM, "demos") in Name.Variable
    assert token_of(PROGRAM, "{{") in Comment.Preproc
    assert token_of(PROGRAM, "review", 1) in Name.Variable
    # the short form's string is a template too
    assert token_of(PROGRAM, "text", 2) in Name.Variable
    # a filter
    assert token_of(PROGRAM, "upper") in Name.Function


def test_holes_in_sketch_templates():
    assert token_of(PROGRAM, "verdict", 1) in Name.Variable
    assert token_of(PROGRAM, "[") in String.Interpol or (String.Interpol, "[") in tokens(PROGRAM)
    assert (String.Escape, "[[") in tokens(PROGRAM)
    assert (Operator.Word, "in") in tokens(PROGRAM)
    line = tokens('sketch s() -> {a: str} { template "A: [a stop=\\"\\\\n\\" max_tokens=5]." }\n')
    assert (Name.Variable, "a") in line and (Name.Attribute, "stop") in line
    assert (Name.Attribute, "max_tokens") in line and (String.Interpol, "]") in line
    assert Error not in {t for t, _ in line}


def test_markdown_codehilite_highlights_pflow_blocks():
    markdown = pytest.importorskip("markdown", reason="Python-Markdown is in the test extra")
    doc = "# Example\n\n```pflow\nprompt p(x: str) -> str {\n  user \"Say {{ x }}\"  # hi\n}\n```\n"
    html = markdown.markdown(doc, extensions=["fenced_code", "codehilite"])
    assert 'class="codehilite"' in html
    assert '<span class="kd">prompt</span>' in html  # Keyword.Declaration
    assert '<span class="nf">p</span>' in html  # Name.Function
    assert '<span class="cp">{{</span>' in html  # Jinja delimiters: Comment.Preproc
    assert '<span class="c1"># hi</span>' in html
    assert '<span class="err">' not in html


def test_pflow_blocks_of_the_documentation_have_no_error_tokens():
    """What mkdocs would render: every ```pflow block of the docs and READMEs."""
    pages = [*sorted((REPO / "docs").rglob("*.md")), REPO / "README.md", REPO / "examples" / "README.md"]
    blocks = 0
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for m in re.finditer(r"^```pflow\n(.*?)^```", text, re.S | re.M):
            blocks += 1
            errors = [v for t, v in PflowLexer().get_tokens(m.group(1)) if t in Error]
            assert not errors, (page.name, text.count("\n", 0, m.start()) + 1, errors[:5])
    assert blocks > 30
