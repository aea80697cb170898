"""``PflowLexer``: a Pygments lexer for ``.pflow`` files.

Registered as the Pygments plugin ``pflow`` (entry point in ``pyproject.toml``), so
``pygmentize -l pflow FILE``, Sphinx and mkdocs (Python-Markdown's ``codehilite``,
pymdownx) highlight ```` ```pflow ```` blocks once the package is installed.

What gets which token type:

=============================================  =====================================
declaration keywords (``prompt``, ``type``...)  ``Keyword.Declaration``
handler, hook and eval names where declared     ``Name.Function``
type names where declared, capitalised names    ``Name.Class``
model names where declared                      ``Name.Constant``
control words, test words, other keywords       ``Keyword``
clause words (``user``, ``retries``...)         ``Keyword.Pseudo``
``and or not in contains``                      ``Operator.Word``
``true false none``                             ``Keyword.Constant``
built-in types / functions and test counters    ``Keyword.Type`` / ``Name.Builtin``
``"..."``, ``r"..."``, ``\"\"\"...\"\"\"``      ``String.Double``, ``String`` (``r``:
                                                ``String.Affix``), escapes
                                                ``String.Escape``
``#`` comments                                  ``Comment.Single``
Jinja in templates: ``{{ }}`` ``{% %}``         ``Comment.Preproc`` delimiters,
                                                ``Keyword`` statements,
                                                ``Name.Variable`` variables,
                                                ``Name.Function`` filters;
                                                ``{# #}`` ``Comment.Multiline``
sketch holes ``[name options]``                 ``String.Interpol`` brackets,
                                                ``Name.Variable`` name,
                                                ``Name.Attribute`` options
=============================================  =====================================

Which strings are templates follows the language: the ``system``, ``user``,
``assistant`` and ``completion`` clauses and the short form ``prompt p(...) -> T =
"..."`` are Jinja templates; a sketch's ``template`` clause is one with holes; any
other string is plain text (a ``{{`` in it is just characters).  A character the
language does not allow (a ``'`` quote, ``$``...) is an ``Error`` token.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pygments.lexer import RegexLexer, bygroups, default, include, words
from pygments.token import (
    Comment,
    Error,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    Text,
    Whitespace,
)

from . import words as w

__all__ = ["PflowLexer"]

NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_NOT_AFTER = r"(?<![\w.])"
_ESCAPE = (r"\\(?:[\\\"'abfnrtv\n]|[0-7]{1,3}|x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4}"
           r"|U[0-9A-Fa-f]{8}|N\{[^}]*\})")
# a clause word is followed by its value: not by `=`, `:`, `,`, a closing bracket,
# an operator or a word that continues an expression
_CLAUSE_VALUE = (r"(?=[ \t]+(?!(?:and|or|in|if|else|for|not|contains)\b)[^\s=:,)\]}|+\-*/%<>!?.]"
                 r"|[ \t]*[\[{\"])")

State = list[Any]


def _strings(kind: str, prefix: str = "", prefix_tokens: tuple[Any, ...] = ()) -> State:
    """Rules that open each string spelling, optionally led by ``prefix`` (a clause
    word and spaces, ``=``); ``kind`` is ``plain``, ``template`` or ``sketch``."""
    return [
        (prefix + r'(""")', bygroups(*prefix_tokens, String), f"tq-{kind}"),
        (prefix + r'(r)(")', bygroups(*prefix_tokens, String.Affix, String.Double), f"raw-{kind}"),
        (prefix + r'(")', bygroups(*prefix_tokens, String.Double), f"dq-{kind}"),
    ]


def _string_states() -> dict[str, State]:
    """The states inside strings: three spellings times plain / template / sketch."""
    out: dict[str, State] = {}
    for kind, extra in (("plain", ()), ("template", ("jinja",)), ("sketch", ("jinja", "holes"))):
        inner: list[Any] = [include(f"{e}-tq") for e in extra]
        out[f"tq-{kind}"] = [(r'"""', String, "#pop"), *inner, (r'[^"{\[]+|["{\[]', String)]
        inner = [include(f"{e}-line") for e in extra]
        out[f"raw-{kind}"] = [
            (r'"', String.Double, "#pop"), (r"\n", Error, "#pop"), *inner,
            (r"\\.", String.Double), (r'[^"\\\n{\[]+|[{\[]', String.Double),
        ]
        out[f"dq-{kind}"] = [
            (r'"', String.Double, "#pop"), (r"\n", Error, "#pop"), *inner,
            (_ESCAPE, String.Escape), (r"\\.", String.Double),
            (r'[^"\\\n{\[]+|[{\[]', String.Double),
        ]
    return out


def _jinja_states(inner: str) -> dict[str, State]:
    """Jinja's ``{{ }}``, ``{% %}`` and ``{# #}`` inside a ``tq`` string (where ``"`` is
    an ordinary character) or a ``line`` string (``"..."``/``r"..."``, ended by ``"``)."""
    guard = r'(?=""")' if inner == "tq" else r'(?<!\\)(?=")|(?=\n)'
    if inner == "tq":
        jstrings: State = [(r'"(?:[^"\\]|\\.)*"', String.Double), (r"'(?:[^'\\]|\\.)*'", String.Single)]
    else:
        jstrings = [(r'\\"(?:[^"\\]|\\[^"])*\\"', String.Double),
                    (r"'(?:[^'\\\"\n]|\\[^\"])*'", String.Single)]
    body: State = [
        (r"\s+", Whitespace),
        *jstrings,
        (r"\d+(?:\.\d+)?", Number),
        (words(w.JINJA_CONSTANTS, prefix=r"\b", suffix=r"\b"), Keyword.Constant),
        (rf"\b(is)(\s+)(?:(not)(\s+))?({NAME})",
         bygroups(Operator.Word, Whitespace, Operator.Word, Whitespace, Name.Function)),
        (words(w.JINJA_OPERATORS, prefix=r"\b", suffix=r"\b"), Operator.Word),
        (rf"(\|)(\s*)({NAME})", bygroups(Operator, Whitespace, Name.Function)),
        (rf"(\.)(\s*)({NAME})", bygroups(Punctuation, Whitespace, Name.Attribute)),
        (rf"{NAME}(?=\s*\()", Name.Function),
        (NAME, Name.Variable),
        (r"==|!=|<=|>=|\*\*|//|[<>+\-*/%~=]", Operator),
        (r"[,:()\[\]{}]", Punctuation),
    ]
    return {
        f"jinja-{inner}": [
            (r"\{#", Comment.Multiline, f"jinja-comment-{inner}"),
            (r"\{\{[-+]?", Comment.Preproc, f"jinja-expression-{inner}"),
            (rf"(\{{%[-+]?)(\s*)({NAME})?", bygroups(Comment.Preproc, Whitespace, Keyword),
             f"jinja-statement-{inner}"),
        ],
        f"jinja-comment-{inner}": [
            (r"#\}", Comment.Multiline, "#pop"), (guard, Text, "#pop"),
            (r'[^#"\n]+|[#"\n]', Comment.Multiline),
        ],
        f"jinja-expression-{inner}": [
            (r"[-+]?\}\}", Comment.Preproc, "#pop"), (guard, Text, "#pop"), *body,
        ],
        f"jinja-statement-{inner}": [
            (r"[-+]?%\}", Comment.Preproc, "#pop"), (guard, Text, "#pop"), *body,
        ],
    }


def _hole_states(inner: str) -> dict[str, State]:
    """Sketch holes ``[name options]`` and the literal ``[[``."""
    guard = r'(?=""")' if inner == "tq" else r'(?<!\\)(?=")|(?=\n)'
    quote = '"' if inner == "tq" else r'\\"'
    option_strings: State = [
        (rf"(r)({quote})", bygroups(String.Affix, String.Double), f"hole-raw-{inner}"),
        (quote, String.Double, f"hole-string-{inner}"),
    ]
    return {
        f"holes-{inner}": [
            (r"\[\[", String.Escape),
            (rf"(\[)({NAME})(?=[\]\s:])", bygroups(String.Interpol, Name.Variable), f"hole-{inner}"),
        ],
        f"hole-{inner}": [
            (r"\]", String.Interpol, "#pop"), (guard, Text, "#pop"),
            (r"\s+", Whitespace),
            *option_strings,
            (words(w.HOLE_OPTIONS, prefix=r"\b", suffix=r"\b"), Name.Attribute),
            (r"\bin\b", Operator.Word),
            (words(w.TYPES[:4], prefix=r"\b", suffix=r"\b"), Keyword.Type),
            (r"\d+", Number.Integer),
            (r"=", Operator),
            (r"[:,{}]", Punctuation),
            (r"\[", Punctuation, f"hole-list-{inner}"),
        ],
        f"hole-list-{inner}": [
            (r"\]", Punctuation, "#pop"), (guard, Text, "#pop"),
            (r"\s+", Whitespace), *option_strings, (r",", Punctuation),
        ],
        f"hole-string-{inner}": [
            (quote, String.Double, "#pop"), (guard, Text, "#pop"),
            (r"\\[^\"]" if inner == "line" else r"\\.", String.Escape),
            (r'[^"\\\n]+|\\', String.Double),
        ],
        f"hole-raw-{inner}": [
            (quote, String.Double, "#pop"), (guard, Text, "#pop"),
            (r"\\[^\"]" if inner == "line" else r"\\.", String.Double),
            (r'[^"\\\n]+|\\', String.Double),
        ],
    }


def _tokens() -> dict[str, State]:
    template_words = tuple(c for c in w.TEMPLATE_CLAUSES if c not in w.HOLE_CLAUSES)
    handlers = tuple(k for k in w.HANDLER_KINDS if k != "prompt")
    clause_words = tuple(c for c in w.CLAUSES if c != "if")  # `if` is a keyword everywhere
    tokens: dict[str, State] = {
        "root": [
            include("comment"),
            (rf"{_NOT_AFTER}(prompt)(\s+)({NAME})(?=\s*\()",
             bygroups(Keyword.Declaration, Whitespace, Name.Function), "prompt-head"),
            (rf"{_NOT_AFTER}({'|'.join(handlers)})(\s+)({NAME})",
             bygroups(Keyword.Declaration, Whitespace, Name.Function)),
            (rf"{_NOT_AFTER}(hook|eval)(\s+)({NAME})(?=\s*\{{)",
             bygroups(Keyword.Declaration, Whitespace, Name.Function)),
            (rf"{_NOT_AFTER}(type)(\s+)({NAME})(?=\s*[{{=])",
             bygroups(Keyword.Declaration, Whitespace, Name.Class)),
            (rf"{_NOT_AFTER}(model)(\s+)({NAME})(?=\s*=)",
             bygroups(Keyword.Declaration, Whitespace, Name.Constant)),
            (rf'{_NOT_AFTER}(test)\b(?=\s*")', Keyword.Declaration),
            (r'(?<=")(\s*)(live|embed)\b', bygroups(Whitespace, Keyword)),
            (rf"{_NOT_AFTER}(import)(\s+)({NAME}(?:\.{NAME})*)",
             bygroups(Keyword.Namespace, Whitespace, Name.Namespace)),
            (rf"{_NOT_AFTER}(import)\b", Keyword.Namespace),
            (rf"{_NOT_AFTER}(as)\b(?!\s*:)", Keyword.Namespace),
            (rf'{_NOT_AFTER}(python)\b(?=\s*r?")', Keyword),
            (rf"{_NOT_AFTER}(expert)(\s+)({NAME})", bygroups(Keyword, Whitespace, Name.Function)),
            (rf"{_NOT_AFTER}(experts)(\s+)(auto)(\s+)(from)\b",
             bygroups(Keyword, Whitespace, Keyword, Whitespace, Keyword)),
            (r'(?<=")(\s*)(max)\b(?=\s*\d)', bygroups(Whitespace, Keyword)),
            (r'^(\s*)(data)\b(?=\s*r?")', bygroups(Whitespace, Keyword)),
            (rf"^(\s*)(metric|threshold)(\s+)({NAME})",
             bygroups(Whitespace, Keyword, Whitespace, Name.Variable)),
            include("expression"),
        ],
        "comment": [(r"#[^\n]*", Comment.Single)],
        "expression": [
            (r"\s+", Whitespace),
            include("comment"),
            (rf"{_NOT_AFTER}(mock)(\s+)(?:(model)\b)?", bygroups(Keyword, Whitespace, Keyword), "mock"),
            (rf"{_NOT_AFTER}(expect)(\s+)(error)\b", bygroups(Keyword, Whitespace, Keyword)),
            (rf"{_NOT_AFTER}expect\b", Keyword),
            *_strings("template", rf"{_NOT_AFTER}({'|'.join(template_words)})(\s*)",
                      (Keyword.Pseudo, Whitespace)),
            *_strings("sketch", rf"{_NOT_AFTER}({'|'.join(w.HOLE_CLAUSES)})(\s*)",
                      (Keyword.Pseudo, Whitespace)),
            *_strings("plain"),
            (rf"{_NOT_AFTER}({NAME})(\s*)(?=:)", bygroups(Name.Attribute, Whitespace)),
            (rf"(\.)(\s*)({NAME})", bygroups(Punctuation, Whitespace, Name.Attribute)),
            (rf"{_NOT_AFTER}(?:{'|'.join(clause_words)})\b{_CLAUSE_VALUE}", Keyword.Pseudo),
            (words(w.CONSTANTS, prefix=r"\b", suffix=r"\b"), Keyword.Constant),
            (words(w.OPERATORS, prefix=r"\b", suffix=r"\b"), Operator.Word),
            (words(tuple(c for c in w.CONTROL if c not in w.OPERATORS), prefix=r"\b", suffix=r"\b"),
             Keyword),
            (words(w.DECLARATIONS, prefix=r"\b", suffix=r"\b"), Keyword.Declaration),
            (words(w.COUNTERS, prefix=r"\b", suffix=r"\b(?=\s*\()"), Name.Builtin),
            (words(w.TYPES, prefix=r"\b", suffix=r"\b"), Keyword.Type),
            (words(w.FUNCTIONS, prefix=r"\b", suffix=r"\b(?=\s*\()"), Name.Builtin),
            (rf"{NAME}(?=\s*\()", Name.Function),
            (r"\b[A-Z][A-Za-z0-9_]*\b", Name.Class),
            (NAME, Name),
            (r"\d+\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+", Number.Float),
            (r"\d+", Number.Integer),
            (r"->|==|!=|<=|>=|[<>=+\-*/%|?]", Operator),
            (r"[,:.(){}\[\]]", Punctuation),
        ],
        "mock": [
            (r"(replies|returns)\b", Keyword, "#pop"),
            (r"\bfor\b", Keyword),
            (r"\s+", Whitespace),
            (r"\.", Punctuation),
            (NAME, Name.Function),
            default("#pop"),
        ],
        # `prompt NAME(PARAMS) -> TYPE`, up to its body `{` or its short form `= "..."`
        "prompt-head": [
            (r"\{", Punctuation, "#pop"),
            (r"\(", Punctuation, "parens"),
            (r"\[", Punctuation, "brackets"),
            (r"(->)(\s*)(\{)", bygroups(Operator, Whitespace, Punctuation), "braces"),
            *[(rx, tok, ("#pop", state)) for rx, tok, state in
              _strings("template", r"(=)(\s*)", (Operator, Whitespace))],
            (r"=(?=[ \t]*(?:#[^\n]*)?\n)", Operator, ("#pop", "short-next-line")),
            include("expression"),
        ],
        # `prompt p(...) -> T =` at the end of a line: the template is on a later line
        "short-next-line": [
            (r"\s+", Whitespace),
            include("comment"),
            *[(rx, tok, ("#pop", state)) for rx, tok, state in _strings("template")],
            default("#pop"),
        ],
        "parens": [(r"\)", Punctuation, "#pop"), (r"\(", Punctuation, "#push"), include("root")],
        "brackets": [(r"\]", Punctuation, "#pop"), (r"\[", Punctuation, "#push"), include("root")],
        "braces": [(r"\}", Punctuation, "#pop"), (r"\{", Punctuation, "#push"), include("root")],
    }
    tokens.update(_string_states())
    for inner in ("tq", "line"):
        tokens.update(_jinja_states(inner))
        tokens.update(_hole_states(inner))
    return tokens


class PflowLexer(RegexLexer):
    """The ``.pflow`` language: declarations, expressions, strings with Jinja
    templates and sketch holes."""

    name = "pflow"
    aliases: ClassVar[list[str]] = ["pflow"]
    filenames: ClassVar[list[str]] = ["*.pflow"]
    mimetypes: ClassVar[list[str]] = ["text/x-pflow"]
    tokens = _tokens()
