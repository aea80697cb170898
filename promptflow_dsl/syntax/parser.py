"""The parse stage: ``SourceFile`` → Lark parse tree, or a located syntax error.

One memoized LALR parser is built from ``grammar/pflow.lark``; its tables are
cached on disk (in the user's cache directory, keyed on the grammar's digest by
Lark) so start-up stays fast.  Lark types never leave the ``syntax`` package.
Syntax errors say what was expected; common mistakes are recognised from
examples with Lark's ``match_examples`` and get a tailored message.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..diagnostics import Diagnostic
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


_TEXT = threading.local()
_COLON_AHEAD = re.compile(r"[ \t\n]*:")


class _KeywordsAsNames:
    """Post-lexer: a keyword directly followed by ``:`` is a field name or record key.

    No construct of the language puts ``:`` after a keyword, so this only turns
    ``model: str`` (a field) or ``{type: 1}`` (a record key) into names where the
    contextual lexer alone would still see a keyword (after a value, where a new
    declaration or an operator could also follow).
    """

    always_accept: tuple[str, ...] = ()

    def process(self, stream: Any) -> Any:
        text = getattr(_TEXT, "value", None)
        previous = None
        for tok in _eval_words(stream):
            if (text is not None and tok.type != "NAME" and str(tok.value).isidentifier()
                    and _COLON_AHEAD.match(text, tok.end_pos)):
                tok.type = "NAME"
            elif tok.type == "NAME" and tok.value == "try" and previous in _OPERATORS:
                # `1 + try ...`: the lexer read the reserved word as a name, since `try`
                # cannot start an operand; keep it a keyword so the error is at `try`
                tok.type = "TRY"
            previous = tok.type
            yield tok


# Tokens after which an operand follows but a `try` expression may not start.
_OPERATORS = frozenset({"PLUS", "MINUS", "STAR", "SLASH", "PERCENT", "OR", "AND", "NOT", "IN",
                        "CONTAINS", "IF", "LESSTHAN", "MORETHAN", "__ANON_1", "__ANON_2",
                        "__ANON_3", "__ANON_4"})


_EVAL_ITEM_WORDS = frozenset({"DATA", "RUN", "METRIC", "THRESHOLD"})
_OPENING = frozenset({"LBRACE", "LPAR", "LSQB"})
_CLOSING = frozenset({"RBRACE", "RPAR", "RSQB"})


def _eval_words(stream: Any) -> Any:
    """``eval`` is a keyword only at the top level, and ``data``, ``run``, ``metric`` and
    ``threshold`` only where they start an item of an eval's body; anywhere else they
    are names.

    The contextual lexer reads a word as a keyword wherever the LALR state accepts it,
    and the state after a value accepts everything that may follow a value somewhere,
    eval items included; without this a hook's `run` clause or a flow variable `data`
    written after a string would be read as a keyword.
    """
    depth = 0
    body: int | None = None  # bracket depth of the eval body we are in
    opening = False  # read `eval`: its `{` opens a body
    for tok in stream:
        kind = tok.type
        if kind == "EVAL":
            if depth == 0:
                opening = True
            else:
                tok.type = "NAME"
        elif kind in _EVAL_ITEM_WORDS and depth != body:
            tok.type = "NAME"
        elif kind in _OPENING:
            depth += 1
            if opening and kind == "LBRACE":
                body, opening = depth, False
        elif kind in _CLOSING:
            if depth == body:
                body = None
            depth = max(depth - 1, 0)
        yield tok


@lru_cache(maxsize=1)
def get_parser() -> Any:
    """The memoized Lark LALR parser (built once per process, tables cached on disk)."""
    from lark import Lark

    with _LOCK:
        grammar = grammar_path().read_text(encoding="utf-8")
        return Lark(grammar, parser="lalr", lexer="contextual", propagate_positions=True,
                    maybe_placeholders=False, cache=_cache_file(), postlex=_KeywordsAsNames())


def build_strict() -> Any:
    """Build the grammar with ``strict=True`` (fails on any conflict or terminal collision)."""
    from lark import Lark

    grammar = grammar_path().read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", lexer="contextual", strict=True)


def parse_text(text: str) -> Any:
    """Parse ``text`` with the shared parser (raises Lark's ``UnexpectedInput``)."""
    parser = get_parser()
    previous = getattr(_TEXT, "value", None)
    _TEXT.value = text
    try:
        return parser.parse(text)
    finally:
        _TEXT.value = previous


def parse(source: SourceFile) -> Any:
    """Parse a source file into a Lark tree.

    Raises :class:`SyntaxFailure` carrying a located diagnostic on the first syntax error.
    """
    from lark.exceptions import UnexpectedInput

    from .syntax_errors import to_diagnostic

    try:
        return parse_text(source.text)
    except UnexpectedInput as exc:
        raise SyntaxFailure(to_diagnostic(exc, source)) from None
