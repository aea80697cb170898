"""The canonical layout: tokens (comments included) → formatted text.

Only the whitespace between tokens changes; every token, comment and string is
written back with its exact text.  The rules (see README.md):

* two spaces of indentation per open bracket, counted once per line however many
  brackets the line opens; a line that starts with a closing bracket lines up with
  the line that opened it; a line continuing an item of a body (a clause, a
  statement, a declaration) gets one more level;
* one item per line in a body: every top-level declaration, every clause of a
  prompt, route, expert, decompose, sketch or hook body, every statement of a flow or
  test, every item of an eval and every field of a type starts on a line of its own;
  an empty body is ``{}``; other line breaks are kept as written;
* blank lines: runs of blank lines become one; none after an opening or before a
  closing bracket; one around a top-level declaration that takes more than one line
  (put before the comments just above it);
* spaces: one around ``=`` ``->`` ``|`` and operators, none around ``=`` of a keyword
  argument, one after ``,`` and ``:``, none inside ``()`` ``[]`` and expression
  records ``{a: 1}``, one inside the records of a clause or a model (``{ a: 1 }``),
  none after a unary ``-``;
* a comment at the end of a line keeps its column when the code before it leaves
  room and the line starts as it did (two spaces at least); a comment on a line of its own takes the indentation
  of the code around it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .tokens import COMMENT, NUMBER, PUNCT, STRING, WORD, Token

INDENT = "  "

#: top-level declaration keywords; the ones with a body, and what kind of body
DECL_WORDS = frozenset({"model", "type", "import", "prompt", "tool", "flow", "decompose",
                        "route", "sketch", "hook", "test", "eval"})
BODY_OF = {"prompt": "clauses", "decompose": "clauses", "sketch": "clauses",
           "hook": "clauses", "route": "clauses", "flow": "stmts", "test": "stmts",
           "eval": "eval", "type": "fields"}

#: operator words: they never start an item
OPERATOR_WORDS = frozenset({"and", "or", "not", "in", "contains", "else", "for"})
#: the words that continue an item of the kind its first word names (elsewhere they
#: may be names: a flow variable ``replies``)
CONTINUING = {"mock": frozenset({"replies", "returns", "for"}), "expert": frozenset({"when"}),
              "experts": frozenset({"auto", "from", "max"}), "import": frozenset({"as"}),
              "data": frozenset({"as"}), "tool": frozenset({"python"})}
#: words that are keywords wherever they are
EXPRESSION_WORDS = OPERATOR_WORDS | frozenset({"if", "try"})
#: the words that are keywords as the first word of an item of a statement or eval body
ITEM_WORDS = {"stmts": frozenset({"return", "mock", "expect"}),
              "eval": frozenset({"data", "run", "metric", "threshold"})}
#: a keyword that makes the next word one: `expect error`, `mock model`
SECOND_WORDS = {"expect": "error", "mock": "model"}
_TIGHT_BEFORE = frozenset({",", ")", "]", ":", ".", "?"})
_VALUE_PUNCT = frozenset({")", "]", "}", "?"})


@dataclass
class _Frame:
    """An open bracket (or the file itself): where it opened and what it holds."""

    char: str
    body: str | None  # None: an expression bracket; else the kind of body
    indent: int  # indentation (spaces) of the line the bracket opened on
    inner: int  # column of the lines inside it
    padded: bool = False
    first: int | None = None  # token index of the current item's first token
    fresh: bool = True  # nothing written after the bracket yet
    item_indent: int = 0  # indentation of the line the current item starts on


@dataclass
class _Line:
    indent: int
    text: str
    blank: bool
    decl: int
    starts_decl: bool = False
    top: bool = False
    comment: bool = False
    opens: bool = False
    closes: bool = False
    as_written: bool = True  # starts where a line of the source started


@dataclass
class _State:
    tokens: list[Token]
    stack: list[_Frame] = field(default_factory=lambda: [_Frame("", "top", 0, 0)])
    lines: list[_Line] = field(default_factory=list)
    keywords: set[int] = field(default_factory=set)  # token indices read as keywords
    prev: int | None = None  # index of the previous code token
    closed: bool = True  # the current line ended with a comment: the next token starts a line
    glue: bool = False  # no space before the next token (after a unary `-` or a kwarg `=`)
    decl: int = 0


def layout(tokens: list[Token]) -> str:
    """The formatted text of ``tokens`` (as :func:`.tokens.lex` returns them)."""
    st = _State(tokens)
    for i, tok in enumerate(tokens):
        if tok.kind == COMMENT:
            _comment(st, tok)
        else:
            _code(st, i, tok)
    return _render(st.lines)


def _value_end(st: _State, i: int | None) -> bool:
    """Does token ``i`` end an operand?  (Then a word after it may start a new item, a
    ``-`` after it is binary and a ``(`` after it is a call.)  A word does unless it was
    read as a keyword: after a keyword an operand follows."""
    if i is None:
        return False
    tok = st.tokens[i]
    if tok.kind in (STRING, NUMBER):
        return True
    if tok.kind == PUNCT:
        return tok.text in _VALUE_PUNCT
    return i not in st.keywords


def _is_keyword(st: _State, frame: _Frame, tok: Token, item: bool) -> bool:
    """Is the word ``tok`` a keyword where it stands?  Most of the language's keywords
    are keywords in one place only (``data`` starts an eval item, ``max`` continues an
    ``experts`` clause) and names anywhere else (``data[0]``, ``max(a, b)``)."""
    if tok.kind != WORD:
        return False
    if tok.text in EXPRESSION_WORDS:
        return True
    if frame.body is None:
        return False
    if item:
        return frame.body in ("top", "clauses") or tok.text in ITEM_WORDS.get(frame.body, ())
    if frame.first is None or st.prev is None:
        return False
    if st.prev in st.keywords and SECOND_WORDS.get(st.tokens[st.prev].text) == tok.text:
        return True
    return tok.text in CONTINUING.get(st.tokens[frame.first].text, ())


def _starts_item(st: _State, frame: _Frame, i: int, tok: Token) -> bool:
    if frame.body is None or tok.is_closer:
        return False
    if frame.first is None:
        return True
    head = st.tokens[frame.first].text
    if tok.kind != WORD or tok.text in OPERATOR_WORDS or tok.text in CONTINUING.get(head, ()):
        prev = st.tokens[st.prev] if st.prev is not None else None
        return (frame.body == "fields" and tok.kind == WORD and prev is not None
                and prev.text == ",")
    if frame.body == "top":
        return tok.text in DECL_WORDS and _value_end(st, st.prev)
    if tok.text == "if" and frame.body != "clauses":
        return False
    prev = st.tokens[st.prev] if st.prev is not None else None
    if frame.body == "fields" and prev is not None and prev.text == ",":
        return True
    return _value_end(st, st.prev)


def _comment(st: _State, tok: Token) -> None:
    text = tok.text.rstrip()
    if tok.newlines == 0 and st.lines and not st.closed:
        line = st.lines[-1]
        full = " " * line.indent + line.text
        column = len(full) - (full.rfind("\n") + 1)
        keep = tok.col - 1 - column if line.as_written else 0
        line.text += " " * max(keep, 2) + text
    else:
        frame = st.stack[-1]
        st.lines.append(_Line(frame.inner, text, tok.newlines >= 2, st.decl,
                              top=len(st.stack) == 1, comment=True))
    st.closed = True


def _code(st: _State, i: int, tok: Token) -> None:
    frame = st.stack[-1]
    item = _starts_item(st, frame, i, tok)
    prev = st.tokens[st.prev] if st.prev is not None else None
    block_close = tok.is_closer and frame.body is not None and frame.first is not None
    empty_body = tok.is_closer and frame.body is not None and frame.first is None
    newline = st.closed or (not empty_body and (
        tok.newlines > 0 or (item and prev is not None) or block_close
        or (prev is not None and prev.is_opener and frame.body is not None)))
    if _is_keyword(st, frame, tok, item):
        st.keywords.add(i)
    if item:
        frame.first = i
        if frame.body == "top":
            st.decl += 1
    if newline:
        if tok.is_closer:
            indent = frame.indent
        else:
            continuing = frame.body is not None and not item and frame.first is not None
            indent = frame.inner + len(INDENT) * int(continuing)
        if item:
            frame.item_indent = indent
        st.lines.append(_Line(indent, tok.text, tok.newlines >= 2, st.decl,
                              starts_decl=item and frame.body == "top",
                              top=len(st.stack) == 1, closes=tok.is_closer,
                              as_written=tok.newlines > 0 or st.prev is None))
    else:
        line = st.lines[-1]
        line.text += _space(st, frame, prev, tok)
        if frame.fresh and frame.body is None and len(st.stack) > 1:
            frame.inner = _column(line)  # lines inside line up after the bracket
        line.text += tok.text
    frame.fresh = False
    st.closed = False
    st.glue = _glues(st, frame, prev, tok)
    if tok.is_opener:
        _open(st, frame, i, tok, prev)
    elif tok.is_closer and len(st.stack) > 1:
        st.stack.pop()
    st.lines[-1].opens = tok.is_opener
    st.prev = i


def _column(line: _Line) -> int:
    """The column where the next text written on ``line`` goes."""
    full = " " * line.indent + line.text
    return len(full) - (full.rfind("\n") + 1)


def _open(st: _State, frame: _Frame, i: int, tok: Token, prev: Token | None) -> None:
    indent = st.lines[-1].indent
    body = None
    padded = False
    if tok.text == "{" and frame.first is not None and prev is not None:
        head = st.tokens[frame.first].text
        after_value = _value_end(st, st.prev) or prev.kind == WORD
        if frame.body == "top":
            if head in BODY_OF and prev.text not in ("->", "=", "|"):
                body = BODY_OF[head]
            elif head == "model" and (prev.kind == STRING or prev.text == "embed"):
                padded = True
        elif frame.body == "clauses":
            if head == "expert" and after_value and st.prev != frame.first:
                body = "clauses"
            elif st.prev == frame.first:
                padded = True
    if body is not None:  # a body lines up with the start of its declaration or expert
        indent = frame.item_indent
    st.stack.append(_Frame(tok.text, body, indent, indent + len(INDENT), padded))


def _glues(st: _State, frame: _Frame, prev: Token | None, tok: Token) -> bool:
    """Is ``tok`` a unary minus or the ``=`` of a keyword argument (nothing after it)?"""
    if tok.kind != PUNCT:
        return False
    if tok.text == "-":
        return prev is None or not (_value_end(st, st.prev))
    return tok.text == "=" and _kwarg_equals(st, frame)


def _kwarg_equals(st: _State, frame: _Frame) -> bool:
    """Is the ``=`` at the current token the one of ``name=value`` in a call or type?"""
    if frame.char != "(" or st.prev is None:
        return False
    name = st.tokens[st.prev]
    before = _previous_code(st, st.prev)
    return name.kind == WORD and before is not None and before.text in ("(", ",")


def _previous_code(st: _State, i: int) -> Token | None:
    for j in range(i - 1, -1, -1):
        if st.tokens[j].kind != COMMENT:
            return st.tokens[j]
    return None


def _space(st: _State, frame: _Frame, prev: Token | None, tok: Token) -> str:
    """The space between ``prev`` and ``tok`` written on one line."""
    if prev is None or st.glue:
        return ""
    if tok.kind == PUNCT:
        if tok.text in _TIGHT_BEFORE:
            return ""
        if tok.text == "}":
            return " " if frame.padded and prev.text != "{" else ""
        if tok.text == "=" and _kwarg_equals(st, frame):
            return ""
    if prev.kind == PUNCT:
        if prev.text in ("(", "[", "."):
            return ""
        if prev.text == "{":
            return " " if st.stack[-1].padded or (frame.padded and tok.text != "}") else ""
    if tok.kind == PUNCT and tok.text in ("(", "["):
        return "" if _value_end(st, st.prev) else " "
    return " "


def _render(lines: list[_Line]) -> str:
    decl_lines: dict[int, int] = {}
    for line in lines:
        if not line.comment:
            weight = 2 if "\n" in line.text else 1
            decl_lines[line.decl] = decl_lines.get(line.decl, 0) + weight
    for n, line in enumerate(lines):
        if n == 0 or line.closes or lines[n - 1].opens:
            line.blank = False
    for n, line in enumerate(lines):
        if not line.starts_decl or line.decl <= 1:
            continue
        first = n
        while (first > 0 and lines[first - 1].comment and lines[first - 1].top
               and not lines[first].blank):
            first -= 1
        if first > 0 and (decl_lines.get(line.decl, 0) > 1
                          or decl_lines.get(line.decl - 1, 0) > 1):
            lines[first].blank = True
    out = []
    for line in lines:
        if line.blank:
            out.append("")
        out.append(" " * line.indent + line.text)
    return "\n".join(out) + "\n" if out else ""
