"""Write ``pflow.tmLanguage.json``, the TextMate grammar of ``.pflow`` files.

The word lists come from ``promptflow_dsl.highlight.words`` (the same lists the
Pygments lexer uses, kept equal to the language by ``tests/highlight/test_words.py``),
so after a keyword or clause is added to the language::

    python editors/vscode/syntaxes/generate.py          # rewrite the grammar
    python editors/vscode/syntaxes/generate.py --check  # exit 1 if it is out of date

``tests/highlight/test_textmate.py`` fails when the checked-in file differs from what
this script writes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from promptflow_dsl.highlight import words as w

OUT = Path(__file__).with_name("pflow.tmLanguage.json")
NAME = r"[A-Za-z_][A-Za-z0-9_]*"
Rule = dict[str, Any]


def alt(items: tuple[str, ...] | list[str]) -> str:
    """A regular-expression alternation of whole words, longest first."""
    return "|".join(sorted(set(items), key=lambda s: (-len(s), s)))


def inc(*names: str) -> list[Rule]:
    return [{"include": n if n.startswith("$") else f"#{n}"} for n in names]


# ------------------------------------------------------------------ strings

# A string form: how it opens and closes, its scope, whether it processes escapes, and
# the suffix of the Jinja/hole rules that fit inside it ("tq": inside """...""", where
# `"` is an ordinary character; "line": inside "..." or r"...", which a `"` ends).
FORMS: dict[str, dict[str, Any]] = {
    "tq": {"open": '"""', "close": '(""")', "scope": "string.quoted.triple.pflow",
           "escapes": False, "inner": "tq"},
    "raw": {"open": '(?:r)"', "close": '(")|$', "scope": "string.quoted.double.raw.pflow",
            "escapes": False, "inner": "line"},
    "dq": {"open": '"', "close": '(")|$', "scope": "string.quoted.double.pflow",
           "escapes": True, "inner": "line"},
}
ORDER = ("tq", "raw", "dq")  # """ before ", r" before a name


def string_rule(form: str, prefix: str = "", prefix_captures: dict[str, Rule] | None = None,
                content: tuple[str, ...] = (), extra: str = "") -> Rule:
    """One string form, optionally led by ``prefix`` (a clause word, ``=``), with the
    rules named in ``content`` (suffixed by the form's inner kind) inside it."""
    f = FORMS[form]
    scope = f["scope"] + (f" {extra}" if extra else "")
    n = prefix.count("(") - prefix.count("(?") - prefix.count("\\(")
    begin_captures = dict(prefix_captures or {})
    begin_captures[str(n + 1)] = {"name": f"{scope} punctuation.definition.string.begin.pflow"}
    patterns: list[Rule] = []
    if f["escapes"]:
        patterns += inc("escape")
    else:
        if form == "raw":
            patterns += inc("raw-escape")
    patterns += [{"include": f"#{c}-{f['inner']}"} for c in content]
    return {
        "begin": f"{prefix}({f['open']})",
        "beginCaptures": begin_captures,
        "end": f["close"],
        "endCaptures": {"1": {"name": f"{scope} punctuation.definition.string.end.pflow"}},
        "contentName": scope,
        "patterns": patterns,
    }


def strings(prefix: str = "", prefix_captures: dict[str, Rule] | None = None,
            content: tuple[str, ...] = (), extra: str = "") -> list[Rule]:
    return [string_rule(f, prefix, prefix_captures, content, extra) for f in ORDER]


# ------------------------------------------------------------------ Jinja and holes

def jinja(inner: str) -> dict[str, Rule]:
    """The three Jinja regions, for strings of the ``inner`` kind."""
    guard = '(?=""")' if inner == "tq" else r'(?<!\\)(?=")|$'
    region_end = lambda closer: f"((?:-|\\+)?{closer})|{guard}"  # noqa: E731
    if inner == "tq":
        jstrings: list[Rule] = [
            {"match": r'"(?:[^"\\]|\\.)*"', "name": "string.quoted.double.jinja"},
            {"match": r"'(?:[^'\\]|\\.)*'", "name": "string.quoted.single.jinja"},
        ]
    else:
        jstrings = [
            {"match": r'\\"(?:[^"\\]|\\[^"])*\\"', "name": "string.quoted.double.jinja"},
            {"match": r"'(?:[^'\\\"]|\\[^\"])*'", "name": "string.quoted.single.jinja"},
        ]
    body: list[Rule] = jstrings + [
        {"match": r"\b\d+(?:\.\d+)?\b", "name": "constant.numeric.jinja"},
        {"match": rf"\b(?:{alt(w.JINJA_CONSTANTS)})\b", "name": "constant.language.jinja"},
        {"match": rf"\b(is)\s+(?:(not)\s+)?({NAME})",
         "captures": {"1": {"name": "keyword.operator.word.jinja"},
                      "2": {"name": "keyword.operator.word.jinja"},
                      "3": {"name": "support.function.test.jinja"}}},
        {"match": rf"\b(?:{alt(w.JINJA_OPERATORS)})\b", "name": "keyword.operator.word.jinja"},
        {"match": rf"(\|)\s*({NAME})",
         "captures": {"1": {"name": "keyword.operator.filter.jinja"},
                      "2": {"name": "support.function.filter.jinja"}}},
        {"match": rf"(\.)\s*({NAME})",
         "captures": {"1": {"name": "punctuation.accessor.jinja"},
                      "2": {"name": "variable.other.property.jinja"}}},
        {"match": rf"{NAME}(?=\s*\()", "name": "entity.name.function.jinja"},
        {"match": NAME, "name": "variable.other.jinja"},
        {"match": r"==|!=|<=|>=|\*\*|//|[<>+\-*/%~=]", "name": "keyword.operator.jinja"},
        {"match": r"[,:]", "name": "punctuation.separator.jinja"},
        {"match": r"[()\[\]{}]", "name": "punctuation.section.jinja"},
    ]
    return {
        f"jinja-{inner}": {"patterns": inc(f"jinja-comment-{inner}", f"jinja-expression-{inner}",
                                           f"jinja-statement-{inner}")},
        f"jinja-comment-{inner}": {
            "name": "comment.block.jinja",
            "begin": r"\{#",
            "beginCaptures": {"0": {"name": "punctuation.definition.comment.begin.jinja"}},
            "end": f"(#\\}})|{guard}",
            "endCaptures": {"1": {"name": "punctuation.definition.comment.end.jinja"}},
        },
        f"jinja-expression-{inner}": {
            "name": "meta.embedded.expression.jinja",
            "begin": r"\{\{(?:-|\+)?",
            "beginCaptures": {"0": {"name": "punctuation.section.embedded.begin.jinja"}},
            "end": region_end(r"\}\}"),
            "endCaptures": {"1": {"name": "punctuation.section.embedded.end.jinja"}},
            "patterns": inc(f"jinja-body-{inner}"),
        },
        f"jinja-statement-{inner}": {
            "name": "meta.embedded.statement.jinja",
            "begin": rf"(\{{%(?:-|\+)?)\s*({NAME})?",
            "beginCaptures": {"1": {"name": "punctuation.section.embedded.begin.jinja"},
                              "2": {"name": "keyword.control.jinja"}},
            "end": region_end(r"%\}"),
            "endCaptures": {"1": {"name": "punctuation.section.embedded.end.jinja"}},
            "patterns": inc(f"jinja-body-{inner}"),
        },
        f"jinja-body-{inner}": {"patterns": body},
    }


def holes(inner: str) -> dict[str, Rule]:
    """Sketch holes ``[name options]`` and the literal ``[[``."""
    guard = '(?=""")' if inner == "tq" else r'(?<!\\)(?=")|$'
    quote = '"' if inner == "tq" else r'\\"'
    escape = r"\\[^\"]" if inner == "line" else r"\\."
    raw_string: Rule = {
        "name": "string.quoted.double.raw.hole.pflow",
        "begin": f"r{quote}",
        "beginCaptures": {"0": {"name": "punctuation.definition.string.begin.pflow"}},
        "end": f"({quote})|{guard}",
        "endCaptures": {"1": {"name": "punctuation.definition.string.end.pflow"}},
        "patterns": [{"match": escape}],  # kept as written; only stops the quote ending it
    }
    option_string: Rule = {
        "name": "string.quoted.double.hole.pflow",
        "begin": quote,
        "beginCaptures": {"0": {"name": "punctuation.definition.string.begin.pflow"}},
        "end": f"({quote})|{guard}",
        "endCaptures": {"1": {"name": "punctuation.definition.string.end.pflow"}},
        "patterns": [{"match": escape, "name": "constant.character.escape.pflow"}],
    }
    body: list[Rule] = [
        raw_string,
        option_string,
        {"match": rf"\b(?:{alt(w.HOLE_OPTIONS)})\b", "name": "variable.parameter.hole.pflow"},
        {"match": r"\bin\b", "name": "keyword.operator.word.pflow"},
        {"match": rf"\b(?:{alt(w.TYPES[:4])})\b", "name": "support.type.pflow"},
        {"match": r"\b\d+\b", "name": "constant.numeric.integer.pflow"},
        {"match": "=", "name": "keyword.operator.assignment.pflow"},
        {"match": "[:,]", "name": "punctuation.separator.pflow"},
        {"match": r"[{}]", "name": "punctuation.section.braces.pflow"},
        {"begin": r"\[", "end": rf"\]|{guard}",
         "patterns": [raw_string, option_string, {"match": ",", "name": "punctuation.separator.pflow"}]},
    ]
    return {
        f"holes-{inner}": {"patterns": [
            {"match": r"\[\[", "name": "constant.character.escape.hole.pflow"},
            {
                "name": "meta.hole.pflow",
                "begin": rf"(\[)({NAME})(?=[\]\s:])",
                "beginCaptures": {"1": {"name": "punctuation.section.hole.begin.pflow"},
                                  "2": {"name": "variable.other.hole.pflow"}},
                "end": rf"(\])|{guard}",
                "endCaptures": {"1": {"name": "punctuation.section.hole.end.pflow"}},
                "patterns": body,
            },
        ]},
    }


# ------------------------------------------------------------------ the grammar

def grammar() -> dict[str, Any]:
    not_after = r"(?<![\w.])"
    template_words = alt([c for c in w.TEMPLATE_CLAUSES if c not in w.HOLE_CLAUSES])
    hole_words = alt(w.HOLE_CLAUSES)
    other_handlers = alt([k for k in w.HANDLER_KINDS if k != "prompt"])
    clause_words = alt([c for c in w.CLAUSES if c != "if"])  # `if` is a keyword everywhere
    clause_cap = {"1": {"name": "keyword.other.clause.pflow"}}
    not_value = r"(?!(?:and|or|in|if|else|for|not|contains)\b)"

    repo: dict[str, Rule] = {
        "comment": {"match": "(#).*$", "name": "comment.line.number-sign.pflow",
                    "captures": {"1": {"name": "punctuation.definition.comment.pflow"}}},
        "escape": {"patterns": [
            {"match": r"\\(?:[\\\"'abfnrtv\n]|[0-7]{1,3}|x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4}"
                      r"|U[0-9A-Fa-f]{8}|N\{[^}]*\})",
             "name": "constant.character.escape.pflow"},
            {"match": r"\\.", "name": "constant.character.escape.unknown.pflow"},
        ]},
        "raw-escape": {"match": r"\\."},
        "strings": {"patterns": strings()},
        "template-strings": {"patterns": strings(
            rf"{not_after}({template_words})\s*", clause_cap, ("jinja",), "meta.template.pflow")},
        "sketch-template": {"patterns": strings(
            rf"{not_after}({hole_words})\s*", clause_cap, ("jinja", "holes"),
            "meta.template.sketch.pflow")},
        "short-prompt": {"patterns": strings(
            r"(=)\s*", {"1": {"name": "keyword.operator.assignment.pflow"}}, ("jinja",),
            "meta.template.pflow")},
        # `prompt p(...) -> T =` at the end of a line: the template is on a later line
        "short-prompt-next-line": {
            "begin": r"(=)(?=\s*(?:#.*)?$)",
            "beginCaptures": {"1": {"name": "keyword.operator.assignment.pflow"}},
            "end": r'(?<=")',
            "patterns": [*inc("comment"), *strings(content=("jinja",), extra="meta.template.pflow")],
        },
        "prompt-declaration": {
            "name": "meta.declaration.prompt.pflow",
            "begin": rf"{not_after}(prompt)\s+({NAME})(?=\s*\()",
            "beginCaptures": {"1": {"name": "storage.type.prompt.pflow"},
                              "2": {"name": "entity.name.function.pflow"}},
            "end": r'(?=\{)|(?<=")(?=\s*(?:#.*)?$)',
            "patterns": inc("comment", "parens", "brackets", "return-record", "short-prompt",
                            "short-prompt-next-line", "expression"),
        },
        "declarations": {"patterns": [
            {"match": rf"{not_after}({other_handlers})\s+({NAME})",
             "captures": {"1": {"name": "storage.type.$1.pflow"},
                          "2": {"name": "entity.name.function.pflow"}}},
            {"match": rf"{not_after}(hook)\s+({NAME})(?=\s*\{{)",
             "captures": {"1": {"name": "storage.type.hook.pflow"},
                          "2": {"name": "entity.name.function.hook.pflow"}}},
            {"match": rf"{not_after}(eval)\s+({NAME})(?=\s*\{{)",
             "captures": {"1": {"name": "storage.type.eval.pflow"},
                          "2": {"name": "entity.name.function.eval.pflow"}}},
            {"match": rf"{not_after}(type)\s+({NAME})(?=\s*[{{=])",
             "captures": {"1": {"name": "storage.type.type.pflow"},
                          "2": {"name": "entity.name.type.pflow"}}},
            {"match": rf"{not_after}(model)\s+({NAME})(?=\s*=)",
             "captures": {"1": {"name": "storage.type.model.pflow"},
                          "2": {"name": "variable.other.constant.model.pflow"}}},
            {"match": rf"{not_after}(test)\b(?=\s*\")",
             "captures": {"1": {"name": "storage.type.test.pflow"}}},
            {"match": r"(?<=\")\s*\b(live)\b(?=\s*\{)",
             "captures": {"1": {"name": "storage.modifier.live.pflow"}}},
            {"match": r"(?<=\")\s*\b(embed)\b",
             "captures": {"1": {"name": "storage.modifier.embed.pflow"}}},
            {"match": rf"{not_after}(import)\s+({NAME}(?:\.{NAME})*)?",
             "captures": {"1": {"name": "keyword.control.import.pflow"},
                          "2": {"name": "entity.name.namespace.pflow"}}},
            {"match": rf"{not_after}(as)\b(?!\s*:)",
             "captures": {"1": {"name": "keyword.control.import.pflow"}}},
            {"match": rf"{not_after}(python)\b(?=\s*r?\")",
             "captures": {"1": {"name": "keyword.other.python.pflow"}}},
        ]},
        "route-words": {"patterns": [
            {"match": rf"{not_after}(expert)\s+({NAME})",
             "captures": {"1": {"name": "keyword.other.expert.pflow"},
                          "2": {"name": "entity.name.function.expert.pflow"}}},
            {"match": rf"{not_after}(experts)\s+(auto)\s+(from)\b",
             "captures": {"1": {"name": "keyword.other.expert.pflow"},
                          "2": {"name": "keyword.other.expert.pflow"},
                          "3": {"name": "keyword.other.expert.pflow"}}},
            {"match": r"(?<=\")\s*\b(max)\b(?=\s*\d)",
             "captures": {"1": {"name": "keyword.other.expert.pflow"}}},
        ]},
        "eval-items": {"patterns": [
            {"match": r"^\s*(data)\b(?=\s*r?\")",
             "captures": {"1": {"name": "keyword.other.eval.pflow"}}},
            {"match": rf"^\s*(metric)\s+({NAME})(?=\s*=)",
             "captures": {"1": {"name": "keyword.other.eval.pflow"},
                          "2": {"name": "variable.other.metric.pflow"}}},
            {"match": rf"^\s*(threshold)\s+({NAME})",
             "captures": {"1": {"name": "keyword.other.eval.pflow"},
                          "2": {"name": "variable.other.metric.pflow"}}},
        ]},
        "test-statements": {"patterns": [
            {
                "name": "meta.mock.pflow",
                "begin": rf"{not_after}(mock)\b(?:\s+(model)\b)?",
                "beginCaptures": {"1": {"name": "keyword.other.test.pflow"},
                                  "2": {"name": "keyword.other.test.pflow"}},
                "end": r"\b(replies|returns)\b|(?=[#\"{}\[\]])",
                "endCaptures": {"1": {"name": "keyword.other.test.pflow"}},
                "patterns": [
                    {"match": r"\bfor\b", "name": "keyword.control.pflow"},
                    {"match": r"\.", "name": "punctuation.accessor.pflow"},
                    {"match": NAME, "name": "entity.name.function.pflow"},
                ],
            },
            {"match": rf"{not_after}(expect)\s+(error)\b",
             "captures": {"1": {"name": "keyword.other.test.pflow"},
                          "2": {"name": "keyword.other.test.pflow"}}},
            {"match": rf"{not_after}(expect)\b",
             "captures": {"1": {"name": "keyword.other.test.pflow"}}},
        ]},
        "field-name": {"match": rf"{not_after}({NAME})\s*(?=:)",
                       "captures": {"1": {"name": "variable.other.property.pflow"}}},
        "accessor": {"match": rf"(\.)\s*({NAME})",
                     "captures": {"1": {"name": "punctuation.accessor.pflow"},
                                  "2": {"name": "variable.other.property.pflow"}}},
        "clause-words": {
            "match": rf"{not_after}({clause_words})\b"
                     rf"(?=[ \t]+{not_value}[^\s=:,)\]}}|+\-*/%<>!?.]|[ \t]*[\[{{\"])",
            "captures": clause_cap,
        },
        "keywords": {"patterns": [
            {"match": rf"\b(?:{alt(w.CONSTANTS)})\b", "name": "constant.language.pflow"},
            {"match": rf"\b(?:{alt(w.OPERATORS)})\b", "name": "keyword.operator.word.pflow"},
            {"match": rf"\b(?:{alt([c for c in w.CONTROL if c not in w.OPERATORS])})\b",
             "name": "keyword.control.pflow"},
            {"match": rf"\b(?:{alt(w.DECLARATIONS)})\b", "name": "storage.type.pflow"},
        ]},
        "builtins": {"patterns": [
            {"match": rf"\b(?:{alt(w.COUNTERS)})\b(?=\s*\()", "name": "support.function.test.pflow"},
            {"match": rf"\b(?:{alt(w.TYPES)})\b", "name": "support.type.pflow"},
            {"match": rf"\b(?:{alt(w.FUNCTIONS)})\b(?=\s*\()", "name": "support.function.builtin.pflow"},
            {"match": rf"{NAME}(?=\s*\()", "name": "entity.name.function.call.pflow"},
            {"match": r"\b[A-Z][A-Za-z0-9_]*\b", "name": "entity.name.type.pflow"},
        ]},
        "numbers": {"patterns": [
            {"match": r"\b(?:\d+\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+)\b",
             "name": "constant.numeric.float.pflow"},
            {"match": r"\b\d+\b", "name": "constant.numeric.integer.pflow"},
        ]},
        "operators": {"patterns": [
            {"match": "->", "name": "keyword.operator.arrow.pflow"},
            {"match": r"==|!=|<=|>=|<|>", "name": "keyword.operator.comparison.pflow"},
            {"match": "=", "name": "keyword.operator.assignment.pflow"},
            {"match": r"[+\-*/%]", "name": "keyword.operator.arithmetic.pflow"},
            {"match": r"\|", "name": "keyword.operator.union.pflow"},
            {"match": r"\?", "name": "keyword.operator.optional.pflow"},
            {"match": ",", "name": "punctuation.separator.comma.pflow"},
            {"match": ":", "name": "punctuation.separator.colon.pflow"},
            {"match": r"[{}]", "name": "punctuation.section.braces.pflow"},
            {"match": r"[()]", "name": "punctuation.section.parens.pflow"},
            {"match": r"[\[\]]", "name": "punctuation.section.brackets.pflow"},
            {"match": r"\.", "name": "punctuation.accessor.pflow"},
        ]},
        "parens": {"begin": r"\(", "end": r"\)",
                   "beginCaptures": {"0": {"name": "punctuation.section.parens.begin.pflow"}},
                   "endCaptures": {"0": {"name": "punctuation.section.parens.end.pflow"}},
                   "patterns": inc("$self")},
        "brackets": {"begin": r"\[", "end": r"\]",
                     "beginCaptures": {"0": {"name": "punctuation.section.brackets.begin.pflow"}},
                     "endCaptures": {"0": {"name": "punctuation.section.brackets.end.pflow"}},
                     "patterns": inc("$self")},
        "braces": {"begin": r"\{", "end": r"\}",
                   "beginCaptures": {"0": {"name": "punctuation.section.braces.begin.pflow"}},
                   "endCaptures": {"0": {"name": "punctuation.section.braces.end.pflow"}},
                   "patterns": inc("$self")},
        "return-record": {"begin": r"(->)\s*(\{)", "end": r"\}",
                          "beginCaptures": {"1": {"name": "keyword.operator.arrow.pflow"},
                                            "2": {"name": "punctuation.section.braces.begin.pflow"}},
                          "endCaptures": {"0": {"name": "punctuation.section.braces.end.pflow"}},
                          "patterns": inc("braces", "$self")},
        # everything that may stand inside a declaration's parts
        "expression": {"patterns": inc(
            "comment", "test-statements", "template-strings", "sketch-template", "strings",
            "field-name", "accessor", "clause-words", "keywords", "builtins", "numbers",
            "operators")},
    }
    for inner in ("tq", "line"):
        repo.update(jinja(inner))
        repo.update(holes(inner))
    return {
        "$schema": "https://raw.githubusercontent.com/martinring/tmlanguage/master/tmlanguage.json",
        "name": "pflow",
        "scopeName": "source.pflow",
        "fileTypes": ["pflow"],
        "comment": "Written by generate.py from promptflow_dsl/highlight/words.py: edit those, "
                   "not this file.",
        "patterns": inc("comment", "prompt-declaration", "declarations", "route-words",
                        "eval-items", "expression"),
        "repository": repo,
    }


def render() -> str:
    return json.dumps(grammar(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT.name} is out of date: run python {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
