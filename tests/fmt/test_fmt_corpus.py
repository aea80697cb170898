"""Every .pflow file of the repository (examples/, stdlib/, tests/) and of the language's example folder, formatted.

For each file that parses: formatting is idempotent; the formatted text parses to the
same AST (dumps compared without positions) and checks with the same diagnostics;
every comment survives with its text; every string literal keeps its exact text.
Strings and comments are read with Lark's own lexer over the grammar file, not with
the formatter's token pass.  A file that does not parse is refused with its error.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

from promptflow_dsl.fmt import NotParsed, format_text
from promptflow_dsl.resources import grammar_path
from promptflow_dsl.syntax import SourceFile, parse_module
from promptflow_dsl.syntax.dump import dump

REPO = Path(__file__).resolve().parents[2]
SHARED_EXAMPLES = REPO.parent / "shared" / "spec" / "examples"


def _all_files() -> list[Path]:
    found = [p for folder in ("examples", "stdlib", "tests") for p in (REPO / folder).rglob("*.pflow")
             if not any(part.startswith(".") for part in p.relative_to(REPO).parts)]
    if SHARED_EXAMPLES.is_dir():
        found += SHARED_EXAMPLES.glob("*.pflow")
    return sorted(found)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):  # not UTF-8 on purpose; gone since it was listed
        return None


FILES = [p for p in _all_files() if _read(p) is not None]


def _id(path: Path) -> str:
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return f"spec/{path.name}"


_COMMENTS: list[str] = []


@lru_cache(maxsize=1)
def _lark_lexer() -> Any:
    from lark import Lark

    return Lark(grammar_path().read_text(encoding="utf-8"), parser="lalr", lexer="basic",
                lexer_callbacks={"COMMENT": lambda tok: _COMMENTS.append(str(tok).rstrip())})


def _strings_and_comments(text: str) -> tuple[list[str], list[str]]:
    _COMMENTS.clear()
    strings = [str(t) for t in _lark_lexer().lex(text)
               if t.type in ("STRING", "RAW_STRING", "LONG_STRING")]
    return strings, list(_COMMENTS)


_POSITION = re.compile(r"@\d+:\d+")


def _shape(text: str) -> str:
    module, diags = parse_module(SourceFile("f.pflow", text))
    assert module is not None, diags
    return _POSITION.sub("", dump(module))


def _check_messages(text: str, path: Path) -> Counter[tuple[str, str]]:
    from promptflow_dsl.check import check_source
    from promptflow_dsl.check.checker import project_for

    _, diags = check_source(SourceFile(str(path), text, path), project_for(path, ()))
    return Counter((d.severity.value, d.message) for d in diags)


def test_the_corpus_is_large() -> None:
    parsed = [p for p in FILES if parse_module(SourceFile("f", _read(p) or ""))[0] is not None]
    assert len(FILES) >= 150 and len(parsed) >= 130


@pytest.mark.parametrize("path", FILES, ids=_id)
def test_formatting_keeps_the_program(path: Path) -> None:
    text = _read(path)
    assert text is not None
    module, diags = parse_module(SourceFile("f.pflow", text.lstrip("\ufeff").replace("\r\n", "\n")))
    if module is None:
        with pytest.raises(NotParsed) as info:
            format_text(text, "f.pflow")
        assert info.value.diagnostic.headline() == diags[0].headline()
        return
    out = format_text(text, "f.pflow")
    assert format_text(out, "f.pflow") == out, "formatting twice changes the text"
    source = text.lstrip("\ufeff").replace("\r\n", "\n")
    assert _shape(out) == _shape(source)
    before_strings, before_comments = _strings_and_comments(source)
    after_strings, after_comments = _strings_and_comments(out)
    assert after_strings == before_strings
    assert after_comments == before_comments
    assert _check_messages(out, path) == _check_messages(source, path)
    assert not any(line != line.rstrip() for line in _code_lines(out)), "trailing spaces"


def _code_lines(text: str) -> list[str]:
    """The lines of ``text`` outside triple-quoted strings (whose spaces are content)."""
    return re.sub(r'"""[\s\S]*?"""', '""', text).split("\n")


def test_most_examples_are_already_formatted() -> None:
    """The layout is the style the examples are written in: nearly all are unchanged."""
    examples = [p for p in FILES if "examples" in p.parts or "stdlib" in p.parts]
    same = [p for p in examples if format_text(_read(p) or "") == _read(p)]
    assert len(same) >= 0.85 * len(examples), sorted(set(map(_id, examples)) - set(map(_id, same)))


def _respaced(text: str, seed: str, comments: bool) -> str:
    """``text`` with the whitespace between its tokens replaced at random (seeded):
    a space, a tab, line breaks and blank lines, odd indentation; with ``comments``,
    a comment after one token in four (at the end of its line or on a line of its own)."""
    import random

    from promptflow_dsl.fmt.tokens import lex

    rnd = random.Random(seed)
    out: list[str] = []
    tokens = lex(text)
    for i, tok in enumerate(tokens):
        if i:
            if tokens[i - 1].kind == "comment":
                out.append("\n" + " " * rnd.randrange(6))
            else:
                out.append(rnd.choice([" ", "\n", "   ", "\n\n\n  ", " ", "\t", "\n      "]))
            # (not before a `:`: the parser reads a keyword as a name only when `:` follows
            # it across whitespace, so `type # c` then `: str` would not parse)
            if comments and rnd.random() < 0.25 and tok.text != ":":
                out.append(rnd.choice([f"  # c{i}\n", f"\n# own {i}\n  ", " #\n\n"]))
        out.append(tok.text)
    return "".join(out)


PARSING = [p for p in FILES
           if parse_module(SourceFile("f", (_read(p) or "").lstrip("\ufeff").replace("\r\n", "\n")))[0]
           is not None]


@pytest.mark.parametrize("path", PARSING, ids=_id)
def test_any_spacing_and_comments_format_to_the_same_program(path: Path) -> None:
    source = (_read(path) or "").lstrip("\ufeff").replace("\r\n", "\n")
    for comments in (False, True):
        messy = _respaced(source, _id(path), comments)
        out = format_text(messy, "f.pflow")
        assert format_text(out, "f.pflow") == out, "formatting twice changes the text"
        assert _shape(out) == _shape(source)
        assert _strings_and_comments(out) == _strings_and_comments(messy)


@pytest.mark.parametrize("path", PARSING, ids=_id)
def test_the_token_pass_splits_text_as_the_grammar_does(path: Path) -> None:
    """The formatter's own token patterns follow the grammar's terminals: on every file
    they cut the text where Lark's lexer over grammar/pflow.lark cuts it."""
    from promptflow_dsl.fmt.tokens import COMMENT, lex

    source = (_read(path) or "").lstrip("\ufeff").replace("\r\n", "\n")
    ours = [t.text for t in lex(source) if t.kind != COMMENT]
    assert ours == [str(t) for t in _lark_lexer().lex(source)]
