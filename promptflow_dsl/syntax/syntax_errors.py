"""Readable syntax errors: what was found, what was expected, and the likely mistake.

Lark reports the unexpected token and the set of terminals the parser could
accept.  Common mistakes are recognised from that set (a missing comma, `=` for
`==`, a chained comparison, a bracket left open) wherever they occur; a few more
by Lark's ``match_examples`` against known bad programs.  Open brackets are found
with a small scanner that skips strings and comments, so an unclosed ``{`` is
reported where it was opened.
"""

from __future__ import annotations

import difflib
import re
from functools import lru_cache
from typing import Any

from ..diagnostics import Diagnostic, Span, error
from ..kinds.registry import KINDS
from .source import SourceFile

_TERMINAL_NAMES = {
    "NAME": "a name", "STRING": "a string", "RAW_STRING": "a raw string",
    "LONG_STRING": 'a """text""" string', "INT": "an integer", "FLOAT": "a number",
    "$END": "end of file",
}
DECL_WORDS = ("MODEL", "TYPE", "IMPORT", "PROMPT", "TOOL", "FLOW", "DECOMPOSE", "ROUTE",
              "SKETCH", "HOOK", "TEST", "EVAL")
_EVAL_ITEMS = frozenset({"DATA", "RUN", "METRIC", "THRESHOLD"})
_VALUE_START = {"NAME", "STRING", "RAW_STRING", "LONG_STRING", "INT", "FLOAT", "TRUE", "FALSE",
                "NONE", "LSQB", "LBRACE", "LPAR", "MINUS", "NOT"}
_COMPARISON = {"LESSTHAN", "MORETHAN", "__ANON_1", "__ANON_2", "__ANON_3", "__ANON_4", "IN",
               "CONTAINS"}
_CLOSERS = {"(": ")", "[": "]", "{": "}"}
# What may start a statement of a flow or a test body, or end the body.
_STATEMENT_START = frozenset({"NAME", "RBRACE", "RETURN", "MOCK", "EXPECT"})
_CLOSER_TERMINAL = {")": "RPAR", "]": "RSQB", "}": "RBRACE"}

# Mistakes recognised by the parser state they leave it in (same nesting as written).
_EXAMPLES: dict[str, list[str]] = {
    "a handler needs a return type: write `name(params) -> Type`": [
        "prompt p(x: str) { }", "prompt p(x: str) = \"hi\"", "flow f(x: str) { }",
        "tool t(x: str) = python \"m:f\"", "sketch s(x: str) { }", "route r(x: str) { }",
        "decompose d(x: str) { }",
    ],
    "a tool is declared as `tool name(params) -> Type = python \"module:function\"`": [
        "tool t(x: str) -> str = \"m:f\"", "tool t(x: str) -> str { }",
    ],
}

_KEYWORD_RE = re.compile(r"^[a-z_]+$")


@lru_cache(maxsize=1)
def _terminal_display() -> dict[str, str]:
    from .parser import get_parser

    out = dict(_TERMINAL_NAMES)
    for term in get_parser().terminals:
        if term.name not in out and term.pattern.type == "str":
            out[term.name] = f"'{term.pattern.value}'"
    return out


def describe_expected(expected: set[str], skip: tuple[str, ...] = ()) -> str:
    names = _terminal_display()
    shown = sorted({names.get(t, t) for t in expected if t not in skip})
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
    if tok.type in ("STRING", "RAW_STRING", "LONG_STRING"):
        first = value.split("\n")[0]
        return "string " + (first[:27] + "..." if len(first) > 30 else first)
    if len(value) > 30:
        value = value[:27] + "..."
    return f"'{value}'"


def _point(uri: str, text: str, offset: int, length: int = 1) -> Span:
    before = text[:offset]
    line = before.count("\n") + 1
    col = offset - (before.rfind("\n") + 1) + 1
    return Span.point(uri, line, col, length)


def open_brackets(text: str, upto: int) -> list[tuple[str, int]]:
    """The brackets still open at offset ``upto`` (innermost last), skipping strings and comments."""
    stack: list[tuple[str, int]] = []
    i, n = 0, min(upto, len(text))
    while i < n:
        c = text[i]
        if c == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith('"""', i):
            j = text.find('"""', i + 3)
            i = n if j < 0 else j + 3
        elif c == '"':
            j = i + 1
            while j < len(text) and text[j] not in '"\n':
                j += 2 if text[j] == "\\" else 1
            i = j + 1
        elif c in _CLOSERS:
            stack.append((c, i))
            i += 1
        elif c in ")]}":
            if stack and _CLOSERS[stack[-1][0]] == c:
                stack.pop()
            i += 1
        else:
            i += 1
    return stack


def _previous_word(text: str, offset: int) -> tuple[int, int] | None:
    j = offset
    while j > 0 and text[j - 1] in " \t\n":
        j -= 1
    k = j
    while k > 0 and (text[k - 1].isalnum() or text[k - 1] == "_"):
        k -= 1
    return (k, j - k) if j > k else None


def _last_word_of(text: str, offset: int, words: tuple[str, ...]) -> str | None:
    """Which of ``words`` occurs last as a whole word in ``text`` before ``offset``."""
    found = re.findall(r"\b(" + "|".join(words) + r")\b", text[:offset])
    return found[-1] if found else None


def _enclosing_body(text: str, offset: int) -> str | None:
    """The declaration keyword (flow, test, ...) of the innermost open `{` before ``offset``."""
    braces = [off for ch, off in open_brackets(text, offset) if ch == "{"]
    if not braces:
        return None
    words = re.findall(r"(?m)^[ \t]*([a-z]+)\b", text[: braces[0]])
    return words[-1] if words else None


def _unexpected_characters(exc: Any, source: SourceFile) -> Diagnostic:
    uri, text = source.uri, source.text
    span = Span.point(uri, exc.line, exc.column)
    ch, pos = exc.char, exc.pos_in_stream
    rest = text[pos:]
    if ch == "'":
        msg = "strings use double quotes: \"...\""
    elif ch == '"' and (rest.startswith('"""') or text[max(pos - 2, 0):pos + 1] == '"""'):
        start = pos if rest.startswith('"""') else pos - 2
        span = _point(uri, text, start, 3)
        msg = 'unterminated """ string: no closing """'
    elif ch == '"' or rest.startswith('r"'):
        msg = ("unterminated string: a \"...\" string must end on the same line "
               "(use \"\"\"...\"\"\" for text over several lines)")
    elif not ch.isprintable():
        msg = f"unexpected character {ch!r}"
    else:
        msg = f"unexpected character '{ch}'"
        expected = describe_expected(set(exc.allowed or ()))
        if expected:
            msg += f"; {expected}"
    return error(span, msg)


def _unclosed(uri: str, text: str, upto: int, found: str) -> Diagnostic | None:
    stack = open_brackets(text, upto)
    if not stack:
        return None
    opener, off = stack[-1]
    where = _point(uri, text, off)
    closer = _CLOSERS[opener]
    if found == "$END":
        return error(where, f"'{opener}' is never closed: expected '{closer}' before the end of file")
    return None


def _heuristic(tok: Any, expected: set[str], source: SourceFile) -> tuple[str, Span | None] | None:
    text = source.text
    t = tok.type
    if t == "EQUAL" and "__ANON_1" in expected:
        return "use `==` to compare (found '=')", None
    if t == "TRY":
        return ("`try ... else ...` cannot be an operand here: put it in parentheses, "
                "`(try EXPR else FALLBACK)`"), None
    if t == "IF" and "ELSE" in expected and _last_word_of(text, tok.start_pos, ("try", "if")) == "try":
        return ("what `try` tries cannot be a conditional without parentheses: write "
                "`try (A if C else B) else FALLBACK`"), None
    if t in _VALUE_START and "COMMA" in expected:
        stack = open_brackets(text, tok.start_pos)
        inner = stack[-1][0] if stack else ""
        if inner == "(" and "RPAR" in expected:
            return "missing `,` between arguments", None
        if inner == "[" and "RSQB" in expected:
            return "missing `,` between list items", None
    if t in _COMPARISON and "PLUS" in expected and not (expected & _COMPARISON):
        return "chained comparisons are not supported: combine them with `and`", None
    if t == "NAME" and _EVAL_ITEMS <= expected:
        word = str(tok.value)
        close = difflib.get_close_matches(word, [w.lower() for w in _EVAL_ITEMS], n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return (f"unknown clause '{word}' in an eval{hint} (expected one of: data, run, metric, "
                f"threshold)"), None
    if all(w in expected for w in ("FLOW", "PROMPT")):
        if t in ("RBRACE", "RPAR", "RSQB"):
            return f"unmatched '{tok.value}': nothing is open here", None
        words = ("model", "type", "import", *KINDS, "hook", "test")
        return (f"expected a declaration ({', '.join(words)} or eval), "
                f"found {_token_text(tok)}"), None
    if expected == {"COLON"} and t in ("COMMA", "RPAR"):
        prev = _previous_word(text, tok.start_pos)
        span = _point(source.uri, text, prev[0], prev[1]) if prev else None
        return "a parameter needs a type: write `name: Type`", span
    statement_start = {"NAME", "RBRACE"} <= expected <= _STATEMENT_START
    if expected == {"EQUAL"} or (statement_start and t in _VALUE_START):
        body = _enclosing_body(text, tok.start_pos)
        form = {"flow": "a flow statement is `name = expression` or `return expression`",
                "test": "a test statement is `name = expression`, `mock ...` or `expect ...`",
                "eval": "a metric is `metric NAME = EXPRESSION`",
                }.get(body or "", "a statement is `name = expression`")
        if expected == {"EQUAL"}:
            prev = _previous_word(text, tok.start_pos)
            return form, _point(source.uri, text, prev[0], prev[1]) if prev else None
        return form, None
    if t in ("RBRACE", "RSQB", "RPAR"):
        stack = open_brackets(text, tok.start_pos)
        if stack:
            opener, off = stack[-1]
            closer = _CLOSERS[opener]
            if closer != tok.value and _CLOSER_TERMINAL[closer] in expected:
                line_col = _point(source.uri, text, off)
                return (f"missing '{closer}' to close the '{opener}' at line {line_col.line}, "
                        f"column {line_col.col}"), None
    return None


def _parser_expected(exc: Any) -> set[str]:
    """The terminals the parser could take where ``exc`` stopped it, from the parse
    table.  When the lexer stopped first, Lark's own set is what that state's lexer
    knew: ``NAME``, which every state lexes (so that keywords end at word boundaries),
    with the keywords folded into it."""
    try:
        state = exc.state
        return {t for t in state.parse_conf.parse_table.states[state.position] if t.isupper()}
    except (AttributeError, KeyError, TypeError):
        return set(exc.expected or ())


def to_diagnostic(exc: Any, source: SourceFile) -> Diagnostic:
    """Turn a Lark ``UnexpectedInput`` into one located, readable diagnostic."""
    from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedToken

    from .parser import parse_text

    uri, text = source.uri, source.text
    if isinstance(exc, UnexpectedCharacters):
        return _unexpected_characters(exc, source)
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken)
                                          and exc.token.type == "$END"):
        diag = _unclosed(uri, text, len(text), "$END")
        if diag is not None:
            return diag
        lines = text.split("\n")
        span = Span.point(uri, len(lines), len(lines[-1]) + 1)
        at_end = describe_expected(set(getattr(exc, "expected", ()) or ()))
        return error(span, "unexpected end of file" + (f"; {at_end}" if at_end else ""))
    assert isinstance(exc, UnexpectedToken)
    tok = exc.token
    expected = _parser_expected(exc)
    span = Span(uri, tok.line, tok.column, tok.end_line or tok.line, tok.end_column or tok.column + 1)
    if tok.type == "LONG_STRING":  # only the first line of a long token is underlined
        span = Span.point(uri, tok.line, tok.column, len(str(tok.value).split("\n")[0]))
    found = _token_text(tok)
    guess = _heuristic(tok, expected, source)
    if guess is not None:
        msg, where = guess
        if "found" not in msg and f"'{tok.value}'" not in msg:
            msg += f" (found {found})"
        return error(where or span, msg)
    try:
        label = exc.match_examples(parse_text, _EXAMPLES, use_accepts=True)
    except Exception:  # the examples are best effort; never let them mask the error
        label = None
    if label:
        return error(span, f"{label} (found {found})")
    skip = ("EMBED",) if "MODEL" in expected else ()
    described = describe_expected(expected, skip)
    return error(span, f"unexpected {found}" + (f"; {described}" if described else ""))
