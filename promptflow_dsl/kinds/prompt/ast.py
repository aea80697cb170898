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
    completion: Str | None = None  # the `completion` clause: raw text, no chat template
    shots: Str | None = None  # the `shots` clause: a text file (or text), as `{{ shots }}`
    stop: tuple[Str, ...] = ()  # the `stop` clause: one string or a list

    kind = "prompt"
