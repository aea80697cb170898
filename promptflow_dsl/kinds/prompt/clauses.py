"""The syntax of ``prompt`` (build stage): ``prompt NAME(params) -> T { clauses }`` or
``prompt NAME(params) -> T = "user message"``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...syntax.clauses import COMMON, ClauseSpec, Repeated, as_bool, as_int, as_refs, as_str
from .ast import Message, PromptDecl

if TYPE_CHECKING:  # pragma: no cover
    from ...syntax.builder import Builder


def _message(clause: Any, text: Any) -> Message:
    return Message(clause.span, clause.word, text)


CLAUSES: dict[str, ClauseSpec] = {
    "prompt": {**COMMON, "system": Repeated("messages", as_str, _message),
               "user": Repeated("messages", as_str, _message),
               "assistant": Repeated("messages", as_str, _message), "demos": ("demos", as_str),
               "retries": ("retries", as_int), "hooks": ("hooks", as_refs),
               "cache": ("cache", as_bool)},
}


def prompt_block(b: Builder, meta: Any, children: list[Any]) -> PromptDecl:
    head = b.header(meta, children)
    fields = b.clauses("prompt", head["name"], children[3:])
    if not fields.get("messages"):
        b.error(head["name_span"],
                f"prompt '{head['name']}' has no message: add a `user` (or `system`) clause")
    return PromptDecl(**head, **fields)


def prompt_short(b: Builder, meta: Any, children: list[Any]) -> PromptDecl:
    head = b.header(meta, children)
    text = children[3]
    return PromptDecl(**head, messages=(Message(text.span, "user", text),), short=True)


RULES = {"prompt_block": prompt_block, "prompt_short": prompt_short}
