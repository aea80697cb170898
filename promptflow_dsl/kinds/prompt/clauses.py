"""The syntax of ``prompt`` (build stage): ``prompt NAME(params) -> T { clauses }`` or
``prompt NAME(params) -> T = "user message"``.

A prompt is a chat prompt (``system`` / ``user`` / ``assistant`` messages) or a
completion prompt (one ``completion`` clause: raw text sent as it is, no chat
template), never both; ``shots`` (a text file, or the text itself) and ``stop`` (one
string or a list) fit either."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...syntax import ast
from ...syntax.clauses import (
    COMMON,
    Bad,
    ClauseSpec,
    Repeated,
    as_bool,
    as_int,
    as_refs,
    as_str,
)
from .ast import Message, PromptDecl

if TYPE_CHECKING:  # pragma: no cover
    from ...syntax.builder import Builder


def _message(clause: Any, text: Any) -> Message:
    return Message(clause.span, clause.word, text)


def as_strs(v: ast.Expr) -> tuple[ast.Str, ...]:
    """One string, or a non-empty list of strings."""
    if isinstance(v, ast.Str):
        return (v,)
    if isinstance(v, ast.ListExpr) and v.items and all(isinstance(i, ast.Str) for i in v.items):
        return tuple(i for i in v.items if isinstance(i, ast.Str))
    raise Bad('expected a string or a list of strings ["\\n", "Q:"]')


CLAUSES: dict[str, ClauseSpec] = {
    "prompt": {**COMMON, "system": Repeated("messages", as_str, _message),
               "user": Repeated("messages", as_str, _message),
               "assistant": Repeated("messages", as_str, _message), "demos": ("demos", as_str),
               "retries": ("retries", as_int), "hooks": ("hooks", as_refs),
               "cache": ("cache", as_bool), "completion": ("completion", as_str),
               "shots": ("shots", as_str), "stop": ("stop", as_strs)},
}


def prompt_block(b: Builder, meta: Any, children: list[Any]) -> PromptDecl:
    head = b.header(meta, children)
    fields = b.clauses("prompt", head["name"], children[3:])
    completion = fields.get("completion")
    if completion is not None and fields.get("messages"):
        first = fields["messages"][0]
        b.error(first.span,
                f"prompt '{head['name']}' is a completion prompt (its text is the `completion` "
                f"clause, sent without a chat template), so it takes no `{first.role}` message")
    elif completion is None and not fields.get("messages"):
        b.error(head["name_span"],
                f"prompt '{head['name']}' has no message: add a `user` (or `system`) clause")
    return PromptDecl(**head, **fields)


def prompt_short(b: Builder, meta: Any, children: list[Any]) -> PromptDecl:
    head = b.header(meta, children)
    text = children[3]
    return PromptDecl(**head, messages=(Message(text.span, "user", text),), short=True)


RULES = {"prompt_block": prompt_block, "prompt_short": prompt_short}
