"""The AST of a ``prompt`` declaration (build stage)."""

from __future__ import annotations

from dataclasses import dataclass

from ...syntax.ast import Bool, HandlerDecl, Int, Node, RecordExpr, Ref, Str


@dataclass(frozen=True)
class Message(Node):
    role: str  # system | user | assistant
    text: Str


@dataclass(frozen=True)
class PromptDecl(HandlerDecl):
    messages: tuple[Message, ...]
    model: Ref | None = None
    settings: RecordExpr | None = None  # the `params { ... }` clause
    demos: Str | None = None
    retries: Int | None = None
    hooks: tuple[Ref, ...] = ()
    cache: Bool | None = None
    short: bool = False

    kind = "prompt"
