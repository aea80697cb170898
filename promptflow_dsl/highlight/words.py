"""The word lists highlighting uses, by role.

Both highlighters read them: the Pygments lexer (:mod:`.lexer`) at import, and the
TextMate grammar of the VS Code extension, which ``editors/vscode/syntaxes/generate.py``
writes from them.  ``tests/highlight/test_words.py`` keeps them equal to what the
language has: the keywords the Lark grammar spells out, the clause words of every
clause body (the kinds registry and the ``hook`` body), the built-in types, functions
and test counters of the checker.  Nothing here imports the rest of the package, so a
highlighter loads without the compiler.
"""

from __future__ import annotations

#: words that start a top-level declaration; ``eval`` only there (it is not reserved)
DECLARATIONS: tuple[str, ...] = (
    "model", "type", "import", "prompt", "tool", "flow", "decompose", "route", "sketch",
    "hook", "test", "eval",
)
#: the declarations that make a handler (the handler kinds)
HANDLER_KINDS: tuple[str, ...] = ("prompt", "tool", "flow", "decompose", "route", "sketch")
#: control flow in flows, expressions and comprehensions
CONTROL: tuple[str, ...] = ("return", "if", "else", "for", "in", "try")
#: operators spelled as words
OPERATORS: tuple[str, ...] = ("and", "or", "not", "in", "contains")
#: literal constants
CONSTANTS: tuple[str, ...] = ("true", "false", "none")
#: statements of a test body
TEST_WORDS: tuple[str, ...] = ("mock", "expect", "replies", "returns", "error")
#: the other words the grammar spells out: `import ... as`, `= python "..."`, `embed`
#: models, `live` tests, route experts (`expert`, `experts auto from "..." max N`,
#: `when`), eval items (`data`, `run`, `metric`, `threshold`)
OTHER: tuple[str, ...] = (
    "as", "python", "embed", "live", "expert", "experts", "auto", "from", "max", "when",
    "data", "run", "metric", "threshold",
)
#: words that start an item of an eval's body (keywords only there)
EVAL_ITEMS: tuple[str, ...] = ("data", "run", "metric", "threshold")

#: every word the grammar spells out
KEYWORDS: frozenset[str] = frozenset(
    DECLARATIONS + CONTROL + OPERATORS + CONSTANTS + TEST_WORDS + OTHER)

#: clause words of every clause body (prompt, decompose, route, expert, sketch, hook)
CLAUSES: tuple[str, ...] = (
    "action", "assistant", "by", "cache", "completion", "decoder", "demos", "embed",
    "handlers", "hooks", "if", "instruction", "max_calls", "max_depth", "max_fires",
    "max_steps", "model", "params", "prompt", "protocol", "retries", "run", "search",
    "shots", "stop", "system", "template", "user", "when",
)
#: clauses whose string is a Jinja template (a prompt's messages and completion text,
#: a sketch's template; the short form `prompt p(...) -> T = "..."` is one too)
TEMPLATE_CLAUSES: tuple[str, ...] = ("system", "user", "assistant", "completion", "template")
#: the clause whose template holds sketch holes (`[name ...]`)
HOLE_CLAUSES: tuple[str, ...] = ("template",)

#: built-in type names (`list[T]`, `dict[K, V]` are generic)
TYPES: tuple[str, ...] = ("str", "int", "float", "bool", "any", "list", "dict")
#: built-in functions, and the counters only tests have
FUNCTIONS: tuple[str, ...] = (
    "join", "len", "str", "int", "float", "json", "parse_json", "lower", "upper", "strip",
    "split", "flatten", "unique", "read_text", "read_jsonl",
)
COUNTERS: tuple[str, ...] = ("calls", "hook_fires", "routed", "evaluate")

#: the options of a sketch hole: `[name stop="\n" max_tokens=20]`, `[name keep_stop]`
HOLE_OPTIONS: tuple[str, ...] = (
    "stop", "max_tokens", "regex", "keep_stop", "max_chars", "min_chars",
)

#: Jinja's statement words (`{% for %}`, `{% endif %}`, ...)
JINJA_STATEMENTS: tuple[str, ...] = (
    "for", "endfor", "if", "elif", "else", "endif", "set", "endset", "macro", "endmacro",
    "call", "endcall", "filter", "endfilter", "block", "endblock", "with", "endwith",
    "raw", "endraw", "include", "import", "from", "extends", "break", "continue", "do",
    "autoescape", "endautoescape", "trans", "endtrans", "pluralize",
)
#: Jinja's operator words and constants inside `{{ }}` and `{% %}`
JINJA_OPERATORS: tuple[str, ...] = ("and", "or", "not", "in", "is", "if", "else", "recursive")
JINJA_CONSTANTS: tuple[str, ...] = ("true", "false", "none", "True", "False", "None")
