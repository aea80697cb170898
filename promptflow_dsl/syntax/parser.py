"""The parse stage: ``SourceFile`` → Lark parse tree, or a located syntax error.

One memoized LALR parser is built from ``grammar/pflow.lark``; its tables are
cached on disk (in the user's cache directory, keyed on the grammar's digest by
Lark) so start-up stays fast.  Lark types never leave the ``syntax`` package.
Syntax errors say what was expected; common mistakes are recognised from
examples with Lark's ``match_examples`` and get a tailored message.
"""

from __future__ import annotations

import os
import sys
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..diagnostics import Diagnostic, Span, error
from ..resources import grammar_path
from .source import SourceFile

_LOCK = threading.Lock()


class SyntaxFailure(Exception):
    """Raised by :func:`parse` with the diagnostic of the first syntax error."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.headline())
        self.diagnostic = diagnostic


def _cache_file() -> str | bool:
    base = os.environ.get("PFLOW_PARSER_CACHE_DIR")
    if base is None:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        base = str(Path(xdg) / "promptflow-dsl")
    try:
        Path(base).mkdir(parents=True, exist_ok=True)
        probe = Path(base) / ".write-test"
        probe.touch()
        probe.unlink()
    except OSError:
        return False
    import lark

    return str(Path(base) / f"parser-lark{lark.__version__}-py{sys.version_info[0]}{sys.version_info[1]}.cache")


@lru_cache(maxsize=1)
def get_parser() -> Any:
    """The memoized Lark LALR parser (built once per process, tables cached on disk)."""
    from lark import Lark

    with _LOCK:
        grammar = grammar_path().read_text(encoding="utf-8")
        return Lark(grammar, parser="lalr", lexer="contextual", propagate_positions=True,
                    maybe_placeholders=False, cache=_cache_file())


def build_strict() -> Any:
    """Build the grammar with ``strict=True`` (fails on any conflict or terminal collision)."""
    from lark import Lark

    grammar = grammar_path().read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", lexer="contextual", strict=True)


# ---------------------------------------------------------------- error messages

_TERMINAL_NAMES = {
    "NAME": "a name",
    "STRING": "a string",
    "RAW_STRING": "a raw string",
    "LONG_STRING": 'a """text""" string',
    "INT": "an integer",
    "FLOAT": "a number",
    "$END": "end of file",
    "MODEL": "'model'",
    "PROMPT": "'prompt'",
    "IF": "'if'",
}

# Common mistakes, recognised by the parser state they leave it in.
_EXAMPLES: dict[str, list[str]] = {
    "a handler needs a return type: write `name(params) -> Type`": [
        "prompt p(x: str) { }",
        "prompt p(x: str) = \"hi\"",
        "flow f(x: str) { }",
        "tool t(x: str) = python \"m:f\"",
        "sketch s(x: str) { }",
        "route r(x: str) { }",
        "decompose d(x: str) { }",
    ],
    "a tool is declared as `tool name(params) -> Type = python \"module:function\"`": [
        "tool t(x: str) -> str = \"m:f\"",
        "tool t(x: str) -> str { }",
    ],
    "a flow statement is `name = expression` or `return expression`": [
        "flow f(x: str) -> str { g(x) }",
        "flow f(x: str) -> str { \"x\" }",
        "flow f(x: str) -> str { x }",
        "flow f(x: str) -> str { x = 1 g(x) }",
        "flow f(x: str) -> str { x = 1 \"s\" }",
    ],
    "use `==` to compare": [
        "test \"t\" { expect x = 1 }",
        "flow f(x: str) -> str { y = x = 1 }",
    ],
    "chained comparisons are not supported: combine them with `and`": [
        "flow f(x: int) -> bool { return 1 < x < 3 }",
        "flow f(x: int) -> bool { return x == 1 == 2 }",
    ],
    "expected a declaration (model, type, import, prompt, tool, flow, decompose, route, sketch, hook or test)": [
        "foo",
        "def f(): pass",
        "x = 1",
        "prompt p(x: str) -> str = \"a\" }",
    ],
    "a parameter needs a type: write `name: Type`": [
        "flow f(x) -> str { }",
        "flow f(a: str, x) -> str { }",
        "prompt p(x) -> str = \"a\"",
    ],
    "missing `,` between arguments": [
        "flow f(x: str) -> str { return g(x y) }",
        "flow f(x: str) -> str { return g(a=x b=y) }",
        "flow f(x: str) -> str { return g(\"a\" \"b\") }",
    ],
    "missing `,` between list items": [
        "flow f(x: str) -> str { return [x y] }",
        "flow f(x: str) -> str { return [\"a\" \"b\"] }",
    ],
}


@lru_cache(maxsize=1)
def _terminal_display() -> dict[str, str]:
    parser = get_parser()
    out = dict(_TERMINAL_NAMES)
    for term in parser.terminals:
        if term.name not in out and term.pattern.type == "str":
            out[term.name] = f"'{term.pattern.value}'"
    return out


def _describe_expected(expected: set[str]) -> str:
    names = _terminal_display()
    shown = sorted({names.get(t, t) for t in expected if not t.startswith("__")})
    if not shown:
        return ""
    if len(shown) > 8:
        return "expected one of " + ", ".join(shown[:8]) + ", ..."
    if len(shown) == 1:
        return "expected " + shown[0]
    return "expected " + ", ".join(shown[:-1]) + " or " + shown[-1]


def _token_text(tok: Any) -> str:
    if tok.type == "$END":
        return "end of file"
    value = str(tok.value)
    if len(value) > 30:
        value = value[:27] + "..."
    if tok.type in ("STRING", "RAW_STRING", "LONG_STRING"):
        return "string " + value.split("\n")[0]
    return f"'{value}'"


def _end_of_text(text: str, uri: str) -> Span:
    lines = text.split("\n")
    return Span.point(uri, len(lines), len(lines[-1]) + 1)


def _to_diagnostic(exc: Any, source: SourceFile) -> Diagnostic:
    from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedToken

    uri = source.uri
    parser = get_parser()
    label = None
    if isinstance(exc, UnexpectedToken):
        try:
            label = exc.match_examples(parser.parse, _EXAMPLES, use_accepts=True)
        except Exception:  # the examples are best effort; never let them mask the error
            label = None
    if isinstance(exc, UnexpectedCharacters):
        span = Span.point(uri, exc.line, exc.column)
        ch = exc.char
        rest = source.text[exc.pos_in_stream:]
        pos = exc.pos_in_stream
        if ch == "'":
            msg = "strings use double quotes: \"...\""
        elif ch == '"' and (rest.startswith('"""') or source.text[max(pos - 2, 0):pos + 1] == '"""'):
            if not rest.startswith('"""'):
                span = Span.point(uri, exc.line, max(exc.column - 2, 1), 3)
            msg = 'unterminated """ string: no closing """'
        elif ch == '"' or rest.startswith('r"'):
            msg = "unterminated string: a \"...\" string must end on the same line (use \"\"\"...\"\"\" for text over several lines)"
        elif ch == "\x00" or not ch.isprintable() and ch not in "\t\n":
            msg = f"unexpected character {ch!r}"
        else:
            msg = f"unexpected character '{ch}'"
            expected = _describe_expected(set(exc.allowed or ()))
            if expected:
                msg += f"; {expected}"
        return error(span, msg)
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        span = _end_of_text(source.text, uri)
        expected = _describe_expected(set(getattr(exc, "expected", ()) or ()))
        msg = "unexpected end of file" + (f"; {expected}" if expected else "")
        if label:
            msg = f"{label} (unexpected end of file)"
        return error(span, msg)
    assert isinstance(exc, UnexpectedToken)
    tok = exc.token
    span = Span(uri, tok.line, tok.column, tok.end_line or tok.line,
                tok.end_column or tok.column + 1)
    if tok.type == "LONG_STRING":  # only the first line of a long token is underlined
        first = str(tok.value).split("\n")[0]
        span = Span.point(uri, tok.line, tok.column, len(first))
    found = _token_text(tok)
    if label:
        return error(span, f"{label} (found {found})")
    expected = _describe_expected(set(exc.expected or ()))
    return error(span, f"unexpected {found}" + (f"; {expected}" if expected else ""))


def parse(source: SourceFile) -> Any:
    """Parse a source file into a Lark tree.

    Raises :class:`SyntaxFailure` carrying a located diagnostic on the first syntax error.
    """
    from lark.exceptions import UnexpectedInput

    parser = get_parser()
    try:
        return parser.parse(source.text)
    except UnexpectedInput as exc:
        raise SyntaxFailure(_to_diagnostic(exc, source)) from None
